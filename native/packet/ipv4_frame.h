// Parsing of Ethernet/IPv4/TCP|UDP frames into a view of offsets; pure, no I/O, no allocation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "wire.h"

namespace natlb::packet {

enum class ParseError : uint8_t {
  None,
  Truncated,
  NotIPv4,
  BadHeaderLength,
  BadTotalLength,
  Fragment,
  UnsupportedProtocol,
  BadOptions,           // an IPv4 option whose length does not fit (the kernel drops these too)
  BadTransportHeader,   // a TCP data offset below 5 words or past the segment
};

std::string_view describe(ParseError error);

// Offsets into one frame that starts at the MAC header. Valid only while the frame bytes live.
struct Ipv4FrameView {
  uint8_t* frame = nullptr;
  size_t frameLength = 0;
  size_t l3Offset = 0;
  size_t l4Offset = 0;
  size_t l4Length = 0;  // from the IPv4 total length, excluding Ethernet padding
  uint8_t protocol = 0;

  uint8_t* ip() const { return frame + l3Offset; }
  uint8_t* l4() const { return frame + l4Offset; }
  uint32_t sourceIp() const { return load32(ip() + 12); }
  uint32_t destinationIp() const { return load32(ip() + 16); }
  uint16_t sourcePort() const { return load16(l4()); }
  uint16_t destinationPort() const { return load16(l4() + 2); }
  uint8_t ttl() const { return ip()[8]; }
  uint8_t tcpFlags() const { return protocol == kProtocolTcp ? l4()[13] : 0; }
  size_t checksumOffset() const { return l4Offset + (protocol == kProtocolTcp ? 16 : 6); }
};

struct ParsedFrame {
  ParseError error = ParseError::None;
  Ipv4FrameView view;
};

// Accepts an IPv4 frame carrying a first (or only) fragment of TCP or UDP with complete L4 headers and
// well-formed IPv4 options (each one's length fits; their meaning is the endpoints' business).
ParsedFrame parseIpv4Frame(uint8_t* frame, size_t frameLength);

inline uint16_t etherType(const uint8_t* frame) { return load16(frame + 12); }

}  // namespace natlb::packet
