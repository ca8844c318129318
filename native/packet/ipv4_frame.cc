#include "ipv4_frame.h"

namespace natlb::packet {

std::string_view describe(ParseError error) {
  switch (error) {
    case ParseError::None: return "none";
    case ParseError::Truncated: return "truncated frame";
    case ParseError::NotIPv4: return "not an IPv4 frame";
    case ParseError::BadHeaderLength: return "bad IPv4 header length";
    case ParseError::BadTotalLength: return "IPv4 total length exceeds the frame";
    case ParseError::Fragment: return "non-first fragment (no ports)";
    case ParseError::UnsupportedProtocol: return "protocol is neither TCP nor UDP";
  }
  return "unknown";
}

ParsedFrame parseIpv4Frame(uint8_t* frame, size_t frameLength) {
  ParsedFrame result;
  auto fail = [&](ParseError error) {
    result.error = error;
    return result;
  };
  if (frameLength < kEthernetHeaderLength + kIPv4MinHeaderLength) return fail(ParseError::Truncated);
  if (etherType(frame) != kEtherTypeIPv4) return fail(ParseError::NotIPv4);
  const uint8_t* ip = frame + kEthernetHeaderLength;
  if ((ip[0] >> 4) != 4) return fail(ParseError::NotIPv4);
  const size_t headerLength = size_t(ip[0] & 0x0f) * 4;
  if (headerLength < kIPv4MinHeaderLength) return fail(ParseError::BadHeaderLength);
  const size_t totalLength = load16(ip + 2);
  if (totalLength < headerLength) return fail(ParseError::BadTotalLength);
  if (kEthernetHeaderLength + totalLength > frameLength) return fail(ParseError::BadTotalLength);
  const uint16_t fragment = load16(ip + 6);
  if ((fragment & 0x1fff) != 0) return fail(ParseError::Fragment);
  const uint8_t protocol = ip[9];
  const size_t l4Length = totalLength - headerLength;
  size_t minimumL4 = 0;
  if (protocol == kProtocolTcp) {
    minimumL4 = kTcpMinHeaderLength;
  } else if (protocol == kProtocolUdp) {
    minimumL4 = kUdpHeaderLength;
  } else {
    return fail(ParseError::UnsupportedProtocol);
  }
  if (l4Length < minimumL4) return fail(ParseError::Truncated);
  result.view = Ipv4FrameView{frame, frameLength, kEthernetHeaderLength,
                              kEthernetHeaderLength + headerLength, l4Length, protocol};
  return result;
}

}  // namespace natlb::packet
