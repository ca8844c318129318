// The gateway interfaces the engine works on, as the control plane describes them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../packet/wire.h"

namespace natlb::engine {

enum class InterfaceRole : uint8_t { Client, Backend };

// How the frames the balancer owns are received: AF_PACKET rings (the kernel's stack also sees them,
// and routes/rules drop its copy) or AF_XDP (an XDP program steers them away from the stack).
enum class ReceivePath : uint8_t { AfPacket, AfXdp };

struct InterfaceAddress {
  uint32_t ip;
  uint8_t prefixLength;
  bool contains(uint32_t other) const {
    const uint32_t mask = prefixLength == 0 ? 0 : ~uint32_t{0} << (32 - prefixLength);
    return (ip & mask) == (other & mask);
  }
};

struct InterfaceConfig {
  std::string name;
  int ifindex = 0;
  packet::MacAddress mac{};
  InterfaceRole role = InterfaceRole::Client;
  ReceivePath receivePath = ReceivePath::AfPacket;
  std::vector<InterfaceAddress> addresses;

  // The interface's own address in the subnet holding `ip`, or 0.
  uint32_t addressFacing(uint32_t ip) const {
    for (const InterfaceAddress& a : addresses) {
      if (a.contains(ip)) return a.ip;
    }
    return 0;
  }
  bool ownsAddress(uint32_t ip) const {
    for (const InterfaceAddress& a : addresses) {
      if (a.ip == ip) return true;
    }
    return false;
  }
};

}  // namespace natlb::engine
