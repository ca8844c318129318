// A worker owns the receive rings of one interface: rx batch -> classify -> flow lookup or schedule ->
// rewrite -> tx batch. It never calls into JavaScript and never blocks on the control plane.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>
#include <poll.h>
#include <thread>

#include "../flow/tcp_state.h"
#include "../io/rx_ring.h"
#include "../io/xdp_receiver.h"
#include "../packet/ipv4_frame.h"
#include "engine_context.h"
#include "fragment_table.h"
#include "neighbour_cache.h"
#include "sender_set.h"

namespace natlb::engine {

class Worker {
 public:
  // `selection` names the frames this interface hands to the balancer (socket filter, XDP maps).
  Worker(EngineContext& context, const InterfaceConfig& interface, const io::FilterSpec& selection);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  void join();
  // Both rings (small frames, GSO super-frames) get the same socket filter; the XDP program the same
  // selection.
  void replaceSelection(const io::FilterSpec& selection);
  io::RingStatistics takeStatistics();
  const InterfaceConfig& interface() const { return interface_; }
  const Counters& counters() const { return counters_; }
  const io::XdpReceiver* xdpReceiver() const { return xdp_.get(); }

 private:
  void run();
  bool nextFrame(io::ReceivedFrame& frame);
  bool nextRingFrame(io::ReceivedFrame& frame);
  void waitForFrames(int timeoutMs);
  void handle(const io::ReceivedFrame& frame);
  void handleArp(const io::ReceivedFrame& frame);
  void handleIpv4(const io::ReceivedFrame& frame);
  void settleChecksumState(const io::ReceivedFrame& frame, const packet::Ipv4FrameView& view);
  void handleIcmp(const io::ReceivedFrame& frame);
  bool isVip(uint32_t ip) const;
  void forwardToReal(const io::ReceivedFrame& frame, const packet::Ipv4FrameView& view, const Service& service);
  void replyToClient(const io::ReceivedFrame& frame, const packet::Ipv4FrameView& view, uint32_t flowRef);
  void passThrough(const io::ReceivedFrame& frame, const packet::Ipv4FrameView& view);
  void forwardLaterFragment(const io::ReceivedFrame& frame, bool toVip);
  void rememberIfFirstFragment(const packet::Ipv4FrameView& view, uint32_t rewrittenIp);
  void transmit(const io::ReceivedFrame& frame, uint32_t destinationIp);
  void recordPacket(const flow::FlowEntry& entry, const packet::Ipv4FrameView& view, flow::Direction direction);
  void offloadIfEstablished(uint32_t ref, const flow::FlowEntry& entry);
  void learnIfOnLink(const io::ReceivedFrame& frame, uint32_t sourceIp);
  void flushSenders();
  uint64_t nextRandom();

  EngineContext& context_;
  const InterfaceConfig& interface_;
  io::RxRing smallFrames_;
  io::RxRing largeFrames_;
  std::unique_ptr<io::RxRing> arpFrames_;  // with the kernel fast path: the IP rings are bound after TC
  std::unique_ptr<io::XdpReceiver> xdp_;  // the AF_XDP path, when the interface uses it
  bool ringsFirst_ = false;                // alternates, so neither path starves the other
  std::vector<pollfd> pollDescriptors_;
  SenderSet senders_;
  NeighbourView neighbours_;
  std::shared_ptr<const ServiceTable> services_;
  std::shared_ptr<const RouteTable> routes_;
  uint64_t nowMs_ = 0;
  uint64_t random_;
  Counters counters_;
  FragmentTable fragments_;
  std::thread thread_;
};

}  // namespace natlb::engine
