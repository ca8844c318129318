#include "claim_signal.h"

#include <cstring>

#include "checksum.h"

namespace natlb::packet {

size_t buildClaimSignal(uint8_t* out, const MacAddress& ownMac, const ReplyTuple& tuple) {
  std::memset(out, 0, kClaimSignalLength);
  std::memcpy(out, ownMac.data(), 6);
  std::memcpy(out + 6, ownMac.data(), 6);
  store16(out + 12, kEtherTypeIPv4);
  const size_t l4Length = tuple.protocol == kProtocolTcp ? kTcpMinHeaderLength : kUdpHeaderLength;
  uint8_t* ip = out + kEthernetHeaderLength;
  ip[0] = 0x45;
  store16(ip + 2, uint16_t(kIPv4MinHeaderLength + l4Length));
  ip[8] = 1;
  ip[9] = tuple.protocol;
  store32(ip + 12, tuple.clientIp);
  store32(ip + 16, tuple.realIp);
  store16(ip + 10, uint16_t(~ipv4HeaderChecksum(ip, kIPv4MinHeaderLength)));  // deliberately wrong
  uint8_t* l4 = ip + kIPv4MinHeaderLength;
  store16(l4, tuple.clientPort);
  store16(l4 + 2, tuple.realPort);
  if (tuple.protocol == kProtocolTcp) {
    l4[12] = 5 << 4;  // data offset; no flags: a TCP receiver drops a segment without ACK
  } else {
    store16(l4 + 4, kUdpHeaderLength);
  }
  return kEthernetHeaderLength + kIPv4MinHeaderLength + l4Length;
}

}  // namespace natlb::packet
