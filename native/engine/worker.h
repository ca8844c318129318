// A worker is one thread serving the receivers of one or more interfaces (engine.h says which):
// rx batch -> classify -> flow lookup or schedule -> rewrite -> tx batch. It never calls into
// JavaScript and never blocks on the control plane.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>
#include <poll.h>
#include <thread>

#include <optional>

#include "../flow/tcp_state.h"
#include "../flow/tcp_window.h"
#include "../packet/icmp_error.h"
#include "../packet/ipv4_frame.h"
#include "engine_context.h"
#include "fragment_table.h"
#include "frames_awaiting_neighbour.h"
#include "interface_receiver.h"
#include "token_bucket.h"
#include "neighbour_cache.h"
#include "sender_set.h"

namespace natlb::engine {

class Worker {
 public:
  Worker(EngineContext& context, std::vector<std::unique_ptr<InterfaceReceiver>> receivers);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  void join();
  const std::vector<std::unique_ptr<InterfaceReceiver>>& receivers() const { return receivers_; }
  const Counters& counters() const { return counters_; }
  const RealStatsBlock& realStats() const { return realStats_; }

 private:
  void run();
  bool nextFrame(io::ReceivedFrame& frame);
  // The interface the frame in hand arrived on.
  const InterfaceConfig& arrivedOn() const { return current_->interface(); }
  void waitForFrames(int timeoutMs);
  void handle(const io::ReceivedFrame& frame);
  void handleArp(const io::ReceivedFrame& frame);
  void handleIpv4(const io::ReceivedFrame& frame);
  void settleChecksumState(const io::ReceivedFrame& frame, const packet::Ipv4FrameView& view);
  void handleIcmp(const io::ReceivedFrame& frame);
  bool isVip(uint32_t ip) const;
  void forwardToReal(const io::ReceivedFrame& frame, const packet::Ipv4FrameView& view, const Service& service);
  void replyToClient(const io::ReceivedFrame& frame, const packet::Ipv4FrameView& view, uint32_t flowRef);
  void replyToClientFullNat(const io::ReceivedFrame& frame, const packet::Ipv4FrameView& view, uint32_t flowRef);
  void forwardLaterFragment(const io::ReceivedFrame& frame, bool toVip);
  void rememberIfFirstFragment(const packet::Ipv4FrameView& view, FragmentTarget target);
  bool hasHopsLeft(const io::ReceivedFrame& frame, const packet::Ipv4FrameView& view);
  bool fitsEgress(const io::ReceivedFrame& frame, const packet::Ipv4FrameView& view, uint32_t destinationIp);
  void sendIcmpError(const io::ReceivedFrame& frame, packet::IcmpErrorSpec spec, Counter sent);
  void transmit(const io::ReceivedFrame& frame, uint32_t destinationIp);
  void forwardDirect(const io::ReceivedFrame& frame, const packet::Ipv4FrameView& view, uint32_t ref,
                     const flow::FlowEntry& entry);
  void transmitDirect(const io::ReceivedFrame& frame, uint32_t realIp);
  void sendTowards(const io::ReceivedFrame& frame, uint32_t destinationIp, SenderSet& senders, bool onLinkOnly);
  bool sendToNeighbour(const io::ReceivedFrame& frame, uint32_t nextHop, const InterfaceConfig& egress, io::FrameSender& sender);
  void askForNeighbour(uint32_t nextHop, const InterfaceConfig& egress, io::FrameSender& sender);
  void resolveHeldFrames();
  void primeNeighbour(uint32_t clientIp);
  void claimRepliesForXdp(const flow::FlowEntry& entry);
  std::optional<flow::SegmentVerdict> trackTcp(const flow::FlowEntry& entry, const packet::Ipv4FrameView& view,
                                               flow::Direction direction);
  bool admit(const flow::FlowEntry& entry, const packet::Ipv4FrameView& view, flow::Direction direction,
             flow::SegmentVerdict& verdict);
  void recordPacket(const flow::FlowEntry& entry, const packet::Ipv4FrameView& view, flow::Direction direction,
                    flow::SegmentVerdict verdict);
  void offloadIfEstablished(uint32_t ref, const flow::FlowEntry& entry);
  void syncFlow(const flow::FlowEntry& entry);
  void readKernelEvents();
  void flushSenders();
  uint64_t nextRandom();

  EngineContext& context_;
  std::vector<std::unique_ptr<InterfaceReceiver>> receivers_;
  InterfaceReceiver* current_ = nullptr;  // the frame in hand's
  size_t nextReceiver_ = 0;                // the receivers take turns, so none starves the others
  std::vector<pollfd> pollDescriptors_;
  SenderSet senders_;
  SenderSet directSenders_;  // direct-routing frames: no reply to claim (flow/reply_claims.h)
  NeighbourView neighbours_;
  size_t flowReader_;  // this worker's reader slot in the flow map
  sync::FlowEventQueue* syncEvents_;  // this worker's queue to the flow sync (nullptr: no slot left)
  std::shared_ptr<const ServiceTable> services_;
  std::shared_ptr<const RouteTable> routes_;
  uint64_t nowMs_ = 0;
  GatewayRole gatewayRole_ = GatewayRole::Master;  // as of this batch
  uint64_t random_;
  Counters counters_;
  RealStatsBlock realStats_;  // this worker's per-real traffic (one writer)
  FragmentTable fragments_;
  FramesAwaitingNeighbour awaitingNeighbour_;
  TokenBucket icmpErrors_{1000, 50};
  // ICMP errors this worker originates in a batch (sent with it, reused after the flush).
  std::array<std::array<uint8_t, sizeof(io::VirtioNetHeader) + packet::kIcmpErrorFrameCapacity>, 32> originated_{};
  size_t originatedUsed_ = 0;
  std::thread thread_;
};

}  // namespace natlb::engine
