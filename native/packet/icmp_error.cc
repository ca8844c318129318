#include "icmp_error.h"

#include <algorithm>
#include <cstring>

#include "checksum.h"
#include "icmp.h"
#include "wire.h"

namespace natlb::packet {

namespace {

constexpr uint8_t kErrorTtl = 64;

}  // namespace

bool dontFragment(const uint8_t* ip) { return (ip[6] & 0x40) != 0; }

size_t buildIcmpError(uint8_t* out, const uint8_t* originalIp, size_t available, const IcmpErrorSpec& spec) {
  if (available < kIPv4MinHeaderLength || (originalIp[0] >> 4) != 4) return 0;
  const size_t headerLength = size_t(originalIp[0] & 0x0f) * 4;
  if (headerLength < kIPv4MinHeaderLength || headerLength > available) return 0;
  const size_t quoted = std::min(available, headerLength + 8);
  if (originalIp[9] == kProtocolIcmp) {
    // Errors may answer queries (echo), never other errors; a quote too short to tell is refused too.
    if (quoted < headerLength + 1) return 0;
    const uint8_t type = originalIp[headerLength];
    if (type != kIcmpEchoRequest && type != kIcmpEchoReply) return 0;
  }
  std::memset(out, 0, kEthernetHeaderLength);
  store16(out + 12, kEtherTypeIPv4);
  uint8_t* ip = out + kEthernetHeaderLength;
  const size_t icmpLength = 8 + quoted;
  ip[0] = 0x45;
  ip[1] = 0xc0;  // precedence "internetwork control", as Linux sends its ICMP errors
  store16(ip + 2, uint16_t(kIPv4MinHeaderLength + icmpLength));
  store16(ip + 4, 0);
  store16(ip + 6, 0);
  ip[8] = kErrorTtl;
  ip[9] = kProtocolIcmp;
  store16(ip + 10, 0);
  store32(ip + 12, spec.source);
  std::memcpy(ip + 16, originalIp + 12, 4);  // back to the offending packet's source
  store16(ip + 10, ipv4HeaderChecksum(ip, kIPv4MinHeaderLength));
  uint8_t* icmp = ip + kIPv4MinHeaderLength;
  icmp[0] = spec.type;
  icmp[1] = spec.code;
  store16(icmp + 2, 0);
  store16(icmp + 4, 0);
  store16(icmp + 6, spec.nextHopMtu);
  std::memcpy(icmp + 8, originalIp, quoted);
  store16(icmp + 2, uint16_t(~foldSum(sumWords(icmp, icmpLength))));
  return kEthernetHeaderLength + kIPv4MinHeaderLength + icmpLength;
}

}  // namespace natlb::packet
