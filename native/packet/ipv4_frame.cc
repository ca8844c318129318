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
    case ParseError::BadOptions: return "malformed IPv4 options";
    case ParseError::BadTransportHeader: return "TCP data offset out of range";
  }
  return "unknown";
}

namespace {

// Option lists as RFC 791 has them: end (0), no-operation (1), or type, length (>= 2), data.
bool optionsWellFormed(const uint8_t* options, size_t length) {
  for (size_t i = 0; i < length;) {
    const uint8_t type = options[i];
    if (type == 0) return true;
    if (type == 1) {
      ++i;
      continue;
    }
    if (i + 1 >= length) return false;
    const uint8_t optionLength = options[i + 1];
    if (optionLength < 2 || i + optionLength > length) return false;
    i += optionLength;
  }
  return true;
}

}  // namespace

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
  if (!optionsWellFormed(ip + kIPv4MinHeaderLength, headerLength - kIPv4MinHeaderLength)) {
    return fail(ParseError::BadOptions);
  }
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
  if (protocol == kProtocolTcp) {
    const size_t tcpHeaderLength = size_t(ip[headerLength + 12] >> 4) * 4;
    if (tcpHeaderLength < kTcpMinHeaderLength || tcpHeaderLength > l4Length) return fail(ParseError::BadTransportHeader);
  }
  result.view = Ipv4FrameView{frame, frameLength, kEthernetHeaderLength,
                              kEthernetHeaderLength + headerLength, l4Length, protocol};
  return result;
}

}  // namespace natlb::packet
