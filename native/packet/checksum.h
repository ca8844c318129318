// Ones' complement arithmetic for IPv4/TCP/UDP checksums (RFC 1071, RFC 1624).
// Values are 16-bit words in host order as read big-endian from the wire.
#pragma once
#include <cstddef>
#include <cstdint>

namespace natlb::packet {

constexpr uint16_t foldSum(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// Sum of the big-endian 16-bit words of `data` (odd tail padded with zero).
inline uint64_t sumWords(const uint8_t* data, size_t length) {
  uint64_t sum = 0;
  size_t i = 0;
  for (; i + 1 < length; i += 2) sum += (uint32_t{data[i]} << 8) | data[i + 1];
  if (i < length) sum += uint32_t{data[i]} << 8;
  return sum;
}

constexpr uint32_t highWord(uint32_t value) { return value >> 16; }
constexpr uint32_t lowWord(uint32_t value) { return value & 0xffff; }

// A complete checksum after one 32-bit field changed: HC' = ~(~HC + ~m + m') (RFC 1624 eq. 3).
constexpr uint16_t adjustComplete32(uint16_t check, uint32_t oldValue, uint32_t newValue) {
  uint64_t sum = uint16_t(~check);
  sum += uint16_t(~highWord(oldValue)) + uint16_t(~lowWord(oldValue));
  sum += highWord(newValue) + lowWord(newValue);
  return uint16_t(~foldSum(sum));
}

constexpr uint16_t adjustComplete16(uint16_t check, uint16_t oldValue, uint16_t newValue) {
  uint64_t sum = uint16_t(~check);
  sum += uint16_t(~oldValue);
  sum += newValue;
  return uint16_t(~foldSum(sum));
}

// A CHECKSUM_PARTIAL frame carries the non-complemented pseudo-header sum ("seed") in the L4
// checksum field; the NIC (or the kernel) finishes it. Only address changes enter it: P' = P + ~m + m'.
constexpr uint16_t adjustSeed32(uint16_t seed, uint32_t oldValue, uint32_t newValue) {
  uint64_t sum = seed;
  sum += uint16_t(~highWord(oldValue)) + uint16_t(~lowWord(oldValue));
  sum += highWord(newValue) + lowWord(newValue);
  return foldSum(sum);
}

// The IPv4 header checksum computed from scratch (the field itself must be zero or is skipped).
inline uint16_t ipv4HeaderChecksum(const uint8_t* header, size_t headerLength) {
  uint64_t sum = sumWords(header, headerLength);
  sum -= (uint32_t{header[10]} << 8) | header[11];  // exclude the checksum field
  return uint16_t(~foldSum(sum));
}

}  // namespace natlb::packet
