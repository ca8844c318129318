// The Ethernet addresses of a frame about to leave: the next hop's MAC and the egress interface's. A
// NAT frame gets them after its IP rewrite; a direct-routing frame gets nothing else (LVS-DR).
#pragma once
#include <cstdint>
#include <cstring>

#include "wire.h"

namespace natlb::packet {

inline void readdressFrame(uint8_t* frame, const MacAddress& destination, const MacAddress& source) {
  std::memcpy(frame, destination.data(), destination.size());
  std::memcpy(frame + destination.size(), source.data(), source.size());
}

}  // namespace natlb::packet
