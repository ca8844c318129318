// The Internet checksum (RFC 1071) computed independently of natlb's native/packet/checksum.h, to
// check its output from scratch: a plain sum of 16-bit words taken modulo 0xffff, which is ones'
// complement addition with +0 and -0 as one value (so 0x0000 and 0xffff compare equal).
#pragma once
#include <cstddef>
#include <cstdint>

namespace natlb::fuzz {

constexpr uint32_t kOnesModulus = 0xffff;

inline uint32_t onesSum(const uint8_t* data, size_t length) {
  uint64_t sum = 0;
  for (size_t i = 0; i < length; ++i) sum += (i % 2 == 0) ? uint64_t{data[i]} << 8 : uint64_t{data[i]};
  return uint32_t(sum % kOnesModulus);
}

inline uint32_t onesAdd(uint32_t a, uint32_t b) { return (a + b) % kOnesModulus; }
inline uint32_t onesSubtract(uint32_t a, uint32_t b) { return (a % kOnesModulus + kOnesModulus - b % kOnesModulus) % kOnesModulus; }
inline uint32_t onesOfWord(uint32_t word16) { return word16 % kOnesModulus; }
inline uint32_t onesOf32(uint32_t value) { return onesAdd(onesOfWord(value >> 16), onesOfWord(value & 0xffff)); }

inline uint32_t read16(const uint8_t* p) { return uint32_t{p[0]} << 8 | p[1]; }
inline uint32_t read32(const uint8_t* p) { return read16(p) << 16 | read16(p + 2); }

// A header or message whose checksum field is right sums to zero (RFC 1071 verification).
inline bool verifies(const uint8_t* data, size_t length) { return onesSum(data, length) == 0; }

// The TCP/UDP pseudo-header sum of the IPv4 header at `ip` for an L4 length of `l4Length`.
inline uint32_t pseudoHeaderSum(const uint8_t* ip, size_t l4Length) {
  return (onesSum(ip + 12, 8) + ip[9] + uint32_t(l4Length)) % kOnesModulus;
}

// What the TCP/UDP checksum over the segment (with its pseudo header) adds up to: 0 when it is right.
inline uint32_t transportResidual(const uint8_t* ip, const uint8_t* l4, size_t l4Length) {
  return onesAdd(pseudoHeaderSum(ip, l4Length), onesSum(l4, l4Length));
}

// The CHECKSUM_PARTIAL seed as it is written into the field: the folded pseudo-header sum (never 0).
inline uint32_t seedValue(const uint8_t* ip, size_t l4Length) {
  const uint32_t sum = pseudoHeaderSum(ip, l4Length);
  return sum == 0 ? 0xffff : sum;
}

}  // namespace natlb::fuzz
