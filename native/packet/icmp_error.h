// ICMP errors that natlb originates as the router on the paths it forwards (RFC 1812): "fragmentation
// needed" for a packet with DF set that is too long for the egress link (path-MTU discovery), and
// "time exceeded" for one whose TTL runs out. Pure: builds a whole frame from the offending packet.
#pragma once
#include <cstddef>
#include <cstdint>

namespace natlb::packet {

constexpr uint8_t kIcmpCodeFragmentationNeeded = 4;  // with type 3, destination unreachable
constexpr uint8_t kIcmpCodeTtlExceeded = 0;          // with type 11, time exceeded

struct IcmpErrorSpec {
  uint8_t type;
  uint8_t code;
  uint16_t nextHopMtu;  // fragmentation needed only (RFC 1191), else 0
  uint32_t source;      // the gateway's address that sends it
};

// The offending packet's IPv4 header and the first 8 bytes after it are quoted (RFC 792); its
// source becomes the error's destination. `out` receives an Ethernet frame (MAC addresses left zero
// for the sender to fill); returns its length, or 0 when `originalIp` (of `available` bytes) holds no
// valid IPv4 header, or quotes an ICMP error (never an error about an error, RFC 1122).
constexpr size_t kIcmpErrorFrameCapacity = 14 + 20 + 8 + 60 + 8;
size_t buildIcmpError(uint8_t* out, const uint8_t* originalIp, size_t available, const IcmpErrorSpec& spec);

// Whether the IPv4 header at `ip` has Don't Fragment set.
bool dontFragment(const uint8_t* ip);

}  // namespace natlb::packet
