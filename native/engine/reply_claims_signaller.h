// Releases and renews reply claims in the kernel's list (flow/reply_claims.h) with control frames sent
// through one backend interface (the list is the same for all of them). Called by the flow map under
// its writers' lock, so the two sockets need no lock of their own.
#pragma once
#include <atomic>
#include <cstdint>

#include "../flow/reply_claims.h"
#include <vector>

#include "../io/control_frame_socket.h"
#include "../io/xdp_steering.h"
#include "interface_config.h"

namespace natlb::engine {

class ReplyClaimsSignaller final : public flow::ReplyClaims {
 public:
  explicit ReplyClaimsSignaller(const InterfaceConfig& backend);
  void release(const flow::FlowEntry& entry) override;
  void renew(const flow::FlowEntry& entry) override;
  // Backend interfaces on the AF_XDP path steer claimed replies themselves: released there too.
  void alsoReleaseFrom(io::XdpSteering& steering) { xdpSteerings_.push_back(&steering); }
  uint64_t signalsSent() const { return sent_.load(std::memory_order_relaxed); }
  uint64_t signalErrors() const { return errors_.load(std::memory_order_relaxed); }

 private:
  void signal(io::ControlFrameSocket& socket, const flow::FlowEntry& entry);

  packet::MacAddress mac_;
  io::ControlFrameSocket renew_;
  io::ControlFrameSocket release_;
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> errors_{0};
  std::vector<io::XdpSteering*> xdpSteerings_;
};

}  // namespace natlb::engine
