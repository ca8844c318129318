#include "icmp.h"

#include "checksum.h"
#include "wire.h"

namespace natlb::packet {

namespace {

constexpr uint8_t kFreshTtl = 64;

void finishIpHeader(uint8_t* ip) {
  const size_t headerLength = size_t(ip[0] & 0x0f) * 4;
  store16(ip + 10, ipv4HeaderChecksum(ip, headerLength));
}

void finishIcmp(const IcmpView& icmp) {
  uint8_t* message = icmp.frame + icmp.icmpOffset;
  store16(message + 2, 0);
  store16(message + 2, uint16_t(~foldSum(sumWords(message, icmp.icmpLength))));
}

}  // namespace

std::optional<IcmpView> parseIcmp(uint8_t* frame, size_t frameLength) {
  if (frameLength < kEthernetHeaderLength + kIPv4MinHeaderLength || load16(frame + 12) != kEtherTypeIPv4) {
    return std::nullopt;
  }
  uint8_t* ip = frame + kEthernetHeaderLength;
  const size_t headerLength = size_t(ip[0] & 0x0f) * 4;
  const size_t totalLength = load16(ip + 2);
  if ((ip[0] >> 4) != 4 || headerLength < kIPv4MinHeaderLength || totalLength < headerLength + 8 ||
      kEthernetHeaderLength + totalLength > frameLength || ip[9] != kProtocolIcmp || (load16(ip + 6) & 0x3fff) != 0) {
    return std::nullopt;  // also refuses any fragment (MF set or offset), whose ICMP body is incomplete
  }
  const size_t icmpOffset = kEthernetHeaderLength + headerLength;
  return IcmpView{frame, kEthernetHeaderLength, icmpOffset, totalLength - headerLength, frame[icmpOffset],
                  frame[icmpOffset + 1]};
}

void turnIntoEchoReply(const IcmpView& icmp) {
  uint8_t* ip = icmp.frame + icmp.l3Offset;
  const uint32_t source = load32(ip + 12);
  store32(ip + 12, load32(ip + 16));
  store32(ip + 16, source);
  ip[8] = kFreshTtl;
  finishIpHeader(ip);
  icmp.frame[icmp.icmpOffset] = kIcmpEchoReply;
  finishIcmp(icmp);
}

bool isIcmpError(uint8_t type) {
  return type == kIcmpDestinationUnreachable || type == kIcmpTimeExceeded || type == kIcmpParameterProblem;
}

std::optional<QuotedPacket> quotedPacket(const IcmpView& icmp) {
  const size_t quotedL3 = icmp.icmpOffset + 8;
  const size_t available = icmp.icmpLength - 8;
  if (available < kIPv4MinHeaderLength) return std::nullopt;
  const uint8_t* ip = icmp.frame + quotedL3;
  const size_t headerLength = size_t(ip[0] & 0x0f) * 4;
  if ((ip[0] >> 4) != 4 || headerLength < kIPv4MinHeaderLength || available < headerLength + 8) return std::nullopt;
  if ((load16(ip + 6) & 0x1fff) != 0) return std::nullopt;  // a later fragment quotes no ports
  const uint8_t protocol = ip[9];
  if (protocol != kProtocolTcp && protocol != kProtocolUdp) return std::nullopt;
  const uint8_t* l4 = ip + headerLength;
  return QuotedPacket{quotedL3, quotedL3 + headerLength, protocol, load32(ip + 12), load32(ip + 16), load16(l4),
                      load16(l4 + 2)};
}

bool translateIcmpError(const IcmpView& icmp, const QuotedPacket& quoted, const IcmpTranslation& translation) {
  uint8_t* ip = icmp.frame + icmp.l3Offset;
  if (ip[8] <= 1) return false;
  ip[8] -= 1;
  if (translation.outerSource != 0) store32(ip + 12, translation.outerSource);
  if (translation.outerDestination != 0) store32(ip + 16, translation.outerDestination);
  finishIpHeader(ip);

  uint8_t* inner = icmp.frame + quoted.l3Offset;
  uint8_t* innerL4 = icmp.frame + quoted.l4Offset;
  const size_t quotedEnd = icmp.icmpOffset + icmp.icmpLength;
  // The quoted UDP checksum is within the first 8 bytes; TCP's only when the quote is long enough.
  const size_t checkOffset = quoted.protocol == kProtocolTcp ? 16 : 6;
  const auto rewriteQuoted = [&](QuotedSide side, uint32_t newIp, uint16_t newPort) {
    const bool source = side == QuotedSide::Source;
    const uint32_t oldIp = source ? quoted.source : quoted.destination;
    const uint16_t oldPort = source ? quoted.sourcePort : quoted.destinationPort;
    if (quoted.l4Offset + checkOffset + 2 <= quotedEnd) {
      uint8_t* check = innerL4 + checkOffset;
      const uint16_t value = load16(check);
      if (!(quoted.protocol == kProtocolUdp && value == 0)) {
        uint16_t updated = adjustComplete16(adjustComplete32(value, oldIp, newIp), oldPort, newPort);
        if (quoted.protocol == kProtocolUdp && updated == 0) updated = 0xffff;  // RFC 768
        store16(check, updated);
      }
    }
    store32(inner + (source ? 12 : 16), newIp);
    store16(innerL4 + (source ? 0 : 2), newPort);
  };
  rewriteQuoted(translation.side, translation.ip, translation.port);
  if (translation.otherIp != 0) {
    rewriteQuoted(translation.side == QuotedSide::Source ? QuotedSide::Destination : QuotedSide::Source, translation.otherIp,
                  translation.otherPort);
  }
  finishIpHeader(inner);
  finishIcmp(icmp);
  return true;
}

}  // namespace natlb::packet
