// Classic BPF programs that let the kernel hand the balancer only the frames it owns (DESIGN.md
// section 2: filter in the kernel, not in user space). Building is pure; attaching is one setsockopt.
#pragma once
#include <linux/filter.h>

#include <cstdint>
#include <vector>

namespace natlb::io {

struct FilterSpec {
  bool acceptArp = true;
  bool acceptIcmp = false;                // all ICMP (errors about NAT flows are translated)
  std::vector<uint32_t> destinationIps;   // IPv4 frames to these addresses (VIPs)
  std::vector<uint16_t> tcpSourcePorts;   // TCP from these ports (real servers' replies)
  std::vector<uint32_t> udpSourceIps;     // all UDP from these addresses, fragments included (UDP reals)
  // The gateway's own addresses: the XDP program leaves frames to them to the kernel (the socket filter
  // does not need them: on the AF_PACKET path the kernel gets its copy anyway).
  std::vector<uint32_t> localIps;
};

// The program accepts a frame (whole) when any clause matches and drops it otherwise.
std::vector<sock_filter> buildSocketFilter(const FilterSpec& spec);

// Attaches (or atomically replaces) the filter on a socket.
void attachSocketFilter(int fd, const std::vector<sock_filter>& program);

}  // namespace natlb::io
