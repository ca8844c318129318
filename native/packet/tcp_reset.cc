#include "tcp_reset.h"

#include <cstring>

#include "checksum.h"

namespace natlb::packet {

size_t buildTcpReset(uint8_t* out, const TcpResetSpec& spec) {
  std::memset(out, 0, kTcpResetFrameLength);
  store16(out + 12, kEtherTypeIPv4);
  uint8_t* ip = out + kEthernetHeaderLength;
  ip[0] = 0x45;
  store16(ip + 2, uint16_t(kIPv4MinHeaderLength + kTcpMinHeaderLength));
  ip[6] = 0x40;  // DF, as Linux sends its resets
  ip[8] = 64;
  ip[9] = kProtocolTcp;
  store32(ip + 12, spec.sourceIp);
  store32(ip + 16, spec.destinationIp);
  store16(ip + 10, ipv4HeaderChecksum(ip, kIPv4MinHeaderLength));
  uint8_t* tcp = ip + kIPv4MinHeaderLength;
  store16(tcp, spec.sourcePort);
  store16(tcp + 2, spec.destinationPort);
  store32(tcp + 4, spec.sequence);
  tcp[12] = 5 << 4;
  tcp[13] = kTcpRst;
  // Pseudo-header (addresses, protocol, TCP length) and the header itself.
  uint64_t sum = sumWords(ip + 12, 8) + kProtocolTcp + kTcpMinHeaderLength + sumWords(tcp, kTcpMinHeaderLength);
  store16(tcp + 16, uint16_t(~foldSum(sum)));
  return kTcpResetFrameLength;
}

}  // namespace natlb::packet
