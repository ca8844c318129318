// The XDP program of one interface (native/bpf/steer_to_socket.bpf.c): loaded from the copy built into
// the addon, attached through a BPF link, so it goes away with the link's file descriptor, even when
// natlb is killed. Its maps say which frames go to the AF_XDP sockets (the same FilterSpec as the
// AF_PACKET socket filter).
// Needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN: the AF_XDP path is an opt-in per interface.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "../bpf/kernel_flow.h"
#include "bpf_object.h"
#include "socket_filter.h"
#include "unique_fd.h"

namespace natlb::io {

class XdpSteering {
 public:
  // Frames longer than `maxFrameBytes` (what an AF_XDP chunk holds) are left to the kernel.
  // `kernelFlowsFd`: the kernel fast path's flow map, whose segments pass to the kernel; -1 without it.
  XdpSteering(int ifindex, const std::string& interfaceName, uint32_t maxFrameBytes, int kernelFlowsFd, uint32_t maxFlows);
  ~XdpSteering();
  XdpSteering(const XdpSteering&) = delete;
  XdpSteering& operator=(const XdpSteering&) = delete;

  // Frames that arrive on `queue` and match go to this AF_XDP socket.
  void bindSocket(uint32_t queue, int socketFd);
  // Steers what `spec` selects from now on (adds before it removes, so no owned frame slips through).
  void update(const FilterSpec& spec);
  // Replies of one flow (as they arrive: real -> client) go to the sockets from now on, or no longer.
  // Until claimed here they reach natlb through the kernel's verdict and the AF_PACKET rings.
  bool claimReply(const kernel_flow_key& reply);
  void releaseReply(const kernel_flow_key& reply);
  // "native" (the driver runs the program) or "generic" (after the kernel built the skb).
  const char* mode() const { return nativeMode_ ? "native" : "generic"; }

 private:
  BpfObject object_;
  UniqueFd link_;
  bool nativeMode_ = false;
  // Owned by object_.
  int receiveSockets_ = -1, vips_ = -1, localAddresses_ = -1, claimedReplies_ = -1;
  FilterSpec current_;
};

}  // namespace natlb::io
