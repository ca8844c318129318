#include "tcp_coalesce.h"

#include <cstring>

#include "checksum.h"
#include "wire.h"

namespace natlb::packet {

namespace {

constexpr uint8_t kVirtioGsoTcpV4 = 1;
constexpr uint8_t kTcpPsh = 0x08;

const uint8_t* ipOf(const TcpSegment& s) { return s.frame + kEthernetHeaderLength; }
const uint8_t* tcpOf(const TcpSegment& s) { return s.frame + kEthernetHeaderLength + kIPv4MinHeaderLength; }

}  // namespace

std::optional<TcpSegment> coalescibleSegment(const uint8_t* frame, size_t frameLength, const io::VirtioNetHeader& vnet) {
  if (!(vnet.flags & io::kVnetNeedsChecksum) || vnet.gsoType != 0) return std::nullopt;
  if (frameLength > kMaxCoalescedSegmentFrame || frameLength < kEthernetHeaderLength + 40) return std::nullopt;
  if (load16(frame + 12) != kEtherTypeIPv4) return std::nullopt;
  const uint8_t* ip = frame + kEthernetHeaderLength;
  if (ip[0] != 0x45 || ip[9] != kProtocolTcp) return std::nullopt;  // IPv4 without options, TCP
  if ((load16(ip + 6) & 0x3fff) != 0) return std::nullopt;            // neither MF nor an offset
  const size_t totalLength = load16(ip + 2);
  if (kEthernetHeaderLength + totalLength != frameLength) return std::nullopt;  // no padding, nothing missing
  const uint8_t* tcp = ip + kIPv4MinHeaderLength;
  const size_t tcpHeaderLength = size_t(tcp[12] >> 4) * 4;
  if (tcpHeaderLength < kTcpMinHeaderLength || kIPv4MinHeaderLength + tcpHeaderLength >= totalLength) {
    return std::nullopt;  // no payload
  }
  const uint8_t flags = tcp[13];
  if ((flags & ~kTcpPsh) != kTcpAck) return std::nullopt;  // plain data: no SYN/FIN/RST/URG/ECE/CWR
  const size_t headerLength = kEthernetHeaderLength + kIPv4MinHeaderLength + tcpHeaderLength;
  return TcpSegment{frame, headerLength, frameLength - headerLength, load32(tcp + 4), load16(ip + 4), flags};
}

bool canAppend(const TcpSegment& first, const TcpSegment& last, const TcpSegment& next, size_t count,
               size_t groupPayload) {
  const size_t mss = first.payloadLength;
  if (last.tcpFlags & kTcpPsh) return false;                 // PSH ends a group
  if (count > 1 && last.payloadLength != mss) return false;  // only the last may be short
  if (next.payloadLength > mss || next.headerLength != first.headerLength) return false;
  if (first.headerLength - kEthernetHeaderLength + groupPayload + next.payloadLength > kMaxSuperFrameIpLength) {
    return false;
  }
  if (next.sequence != last.sequence + uint32_t(last.payloadLength)) return false;
  if (next.ipId != uint16_t(last.ipId + 1)) return false;
  // Ethernet: the super-frame carries the first one's MAC addresses for every segment.
  if (std::memcmp(first.frame, next.frame, 12) != 0) return false;
  const uint8_t* a = ipOf(first);
  const uint8_t* b = ipOf(next);
  // IP: version/IHL, TOS, flags, TTL, protocol, addresses equal (length, id and checksum may differ).
  if (a[0] != b[0] || a[1] != b[1] || a[6] != b[6] || a[8] != b[8] || a[9] != b[9] ||
      std::memcmp(a + 12, b + 12, 8) != 0) {
    return false;
  }
  // TCP: ports, ack, offset, window, urgent pointer and options equal (sequence, flags' PSH and the
  // checksum may differ).
  const uint8_t* ta = tcpOf(first);
  const uint8_t* tb = tcpOf(next);
  const size_t tcpHeaderLength = first.headerLength - kEthernetHeaderLength - kIPv4MinHeaderLength;
  return std::memcmp(ta, tb, 4) == 0 && std::memcmp(ta + 8, tb + 8, 5) == 0 && std::memcmp(ta + 14, tb + 14, 2) == 0 &&
         std::memcmp(ta + 18, tb + 18, tcpHeaderLength - 18) == 0;
}

size_t buildSuperFrame(const TcpSegment* segments, size_t count, uint8_t* out, io::VirtioNetHeader& vnet) {
  const size_t length = buildSuperFrameHeader(segments, count, out, vnet);
  size_t at = segments[0].headerLength;
  for (size_t i = 0; i < count; ++i) {
    std::memcpy(out + at, segments[i].frame + segments[i].headerLength, segments[i].payloadLength);
    at += segments[i].payloadLength;
  }
  return length;
}

size_t buildSuperFrameHeader(const TcpSegment* segments, size_t count, uint8_t* out, io::VirtioNetHeader& vnet) {
  const TcpSegment& first = segments[0];
  std::memcpy(out, first.frame, first.headerLength);
  size_t length = first.headerLength;
  for (size_t i = 0; i < count; ++i) length += segments[i].payloadLength;
  uint8_t* ip = out + kEthernetHeaderLength;
  uint8_t* tcp = ip + kIPv4MinHeaderLength;
  const size_t ipLength = length - kEthernetHeaderLength;
  store16(ip + 2, uint16_t(ipLength));
  store16(ip + 10, ipv4HeaderChecksum(ip, kIPv4MinHeaderLength));
  tcp[13] = uint8_t(first.tcpFlags | (segments[count - 1].tcpFlags & kTcpPsh));
  // CHECKSUM_PARTIAL seed over the whole TCP length; GSO adjusts it per segment.
  const uint32_t tcpLength = uint32_t(ipLength - kIPv4MinHeaderLength);
  uint64_t seed = sumWords(ip + 12, 8) + kProtocolTcp + tcpLength;
  store16(tcp + 16, foldSum(seed));
  vnet.flags = io::kVnetNeedsChecksum;
  vnet.gsoType = kVirtioGsoTcpV4;
  vnet.headerLength = uint16_t(first.headerLength);
  vnet.gsoSize = uint16_t(first.payloadLength);
  vnet.checksumStart = uint16_t(kEthernetHeaderLength + kIPv4MinHeaderLength);
  vnet.checksumOffset = 16;
  return length;
}

}  // namespace natlb::packet
