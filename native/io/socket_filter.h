// Classic BPF programs that let the kernel hand the balancer only the frames it owns: filtering in the
// kernel, not in user space. Which frames those are is not decided here but by the kernel set-up
// (flow/reply_claims.h): the rings sit after it and accept what it marked "for another host" while
// addressed to this interface's MAC. Building is pure; attaching is one setsockopt.
#pragma once
#include <linux/filter.h>

#include <cstdint>
#include <vector>

#include "../packet/wire.h"

namespace natlb::io {

struct FilterSpec {
  packet::MacAddress ownMac{};            // the interface's MAC: what the kernel handed over is unicast to it
  bool acceptArp = true;
  bool acceptIcmp = false;                // every ICMP message (backend side: errors about NAT flows)
  // For the XDP program of an AF_XDP interface, which runs before the kernel's verdict: frames to these
  // addresses (the VIPs) are natlb's; frames to the gateway's own addresses never are.
  std::vector<uint32_t> destinationIps;
  std::vector<uint32_t> localIps;
};

// The program accepts a frame (whole) when any clause matches and drops it otherwise.
std::vector<sock_filter> buildSocketFilter(const FilterSpec& spec);

// Attaches (or atomically replaces) the filter on a socket.
void attachSocketFilter(int fd, const std::vector<sock_filter>& program);

}  // namespace natlb::io
