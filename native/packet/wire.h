// Byte-order helpers and wire constants. Frames are raw bytes; nothing here assumes alignment.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

namespace natlb::packet {

using MacAddress = std::array<uint8_t, 6>;

constexpr uint16_t kEtherTypeIPv4 = 0x0800;
constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint8_t kProtocolIcmp = 1;
constexpr uint8_t kProtocolTcp = 6;
constexpr uint8_t kProtocolUdp = 17;
constexpr size_t kEthernetHeaderLength = 14;
constexpr size_t kIPv4MinHeaderLength = 20;
constexpr size_t kTcpMinHeaderLength = 20;
constexpr size_t kUdpHeaderLength = 8;

inline uint16_t load16(const uint8_t* p) { return uint16_t((uint16_t{p[0]} << 8) | p[1]); }
inline uint32_t load32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline void store16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
inline void store32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

// TCP flag bits (byte 13 of the TCP header).
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpRst = 0x04;
constexpr uint8_t kTcpAck = 0x10;

}  // namespace natlb::packet
