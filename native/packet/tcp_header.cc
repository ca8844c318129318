#include "tcp_header.h"

#include <algorithm>

namespace natlb::packet {

namespace {

constexpr uint8_t kOptionEnd = 0;
constexpr uint8_t kOptionNop = 1;
constexpr uint8_t kOptionWindowScale = 3;
constexpr uint8_t kMaxWindowScale = 14;  // RFC 7323: larger shifts are treated as 14

uint8_t windowScaleOption(const uint8_t* options, size_t length) {
  for (size_t i = 0; i < length;) {
    const uint8_t kind = options[i];
    if (kind == kOptionEnd) break;
    if (kind == kOptionNop) {
      ++i;
      continue;
    }
    if (i + 1 >= length) break;
    const uint8_t optionLength = options[i + 1];
    if (optionLength < 2 || i + optionLength > length) break;  // malformed: stop reading options
    if (kind == kOptionWindowScale && optionLength == 3) return std::min(options[i + 2], kMaxWindowScale);
    i += optionLength;
  }
  return kNoWindowScaleOption;
}

}  // namespace

std::optional<TcpHeaderFields> readTcpHeader(const Ipv4FrameView& view) {
  if (view.protocol != kProtocolTcp || view.l4Length < kTcpMinHeaderLength) return std::nullopt;
  const uint8_t* tcp = view.l4();
  const size_t headerLength = size_t(tcp[12] >> 4) * 4;
  if (headerLength < kTcpMinHeaderLength || headerLength > view.l4Length) return std::nullopt;
  const uint8_t flags = tcp[13];
  return TcpHeaderFields{load32(tcp + 4),
                         load32(tcp + 8),
                         load16(tcp + 14),
                         flags,
                         uint32_t(view.l4Length - headerLength),
                         (flags & kTcpSyn) ? windowScaleOption(tcp + kTcpMinHeaderLength, headerLength - kTcpMinHeaderLength)
                                           : kNoWindowScaleOption};
}

}  // namespace natlb::packet
