#include "nat_rewrite.h"

#include "checksum.h"

namespace natlb::packet {

std::string_view describe(RewriteError error) {
  switch (error) {
    case RewriteError::None: return "none";
    case RewriteError::TtlExpired: return "ttl expired";
  }
  return "unknown";
}

namespace {

enum class Endpoint : uint8_t { Source, Destination };

// The TTL is one byte of the 16-bit word (TTL, protocol); the IP checksum is recomputed from scratch
// afterwards because the header is small and this also repairs nothing silently: we only get here
// for headers the parser accepted.
void finishIpHeader(const Ipv4FrameView& view) {
  uint8_t* ip = view.ip();
  const size_t headerLength = view.l4Offset - view.l3Offset;
  store16(ip + 10, ipv4HeaderChecksum(ip, headerLength));
}

// Rewrites one endpoint's address and port and the L4 checksum; the caller handles TTL and IP checksum.
void rewriteEndpointFields(const Ipv4FrameView& view, Endpoint endpoint, uint32_t newIp, uint16_t newPort,
                           ChecksumMode mode) {
  uint8_t* ip = view.ip();

  uint8_t* ipField = ip + (endpoint == Endpoint::Source ? 12 : 16);
  uint8_t* portField = view.l4() + (endpoint == Endpoint::Source ? 0 : 2);
  const uint32_t oldIp = load32(ipField);
  const uint16_t oldPort = load16(portField);
  uint8_t* checkField = view.frame + view.checksumOffset();
  const uint16_t check = load16(checkField);
  const bool udpWithoutChecksum = view.protocol == kProtocolUdp && check == 0;

  if (!udpWithoutChecksum) {
    uint16_t updated;
    if (mode == ChecksumMode::Partial) {
      updated = adjustSeed32(check, oldIp, newIp);
    } else {
      updated = adjustComplete16(adjustComplete32(check, oldIp, newIp), oldPort, newPort);
      if (view.protocol == kProtocolUdp && updated == 0) updated = 0xffff;  // RFC 768
    }
    store16(checkField, updated);
  }
  store32(ipField, newIp);
  store16(portField, newPort);
}

RewriteError rewriteEndpoint(const Ipv4FrameView& view, Endpoint endpoint, uint32_t newIp,
                             uint16_t newPort, ChecksumMode mode) {
  uint8_t* ip = view.ip();
  if (ip[8] <= 1) return RewriteError::TtlExpired;
  ip[8] -= 1;
  rewriteEndpointFields(view, endpoint, newIp, newPort, mode);
  finishIpHeader(view);
  return RewriteError::None;
}

}  // namespace

RewriteError rewriteBoth(const Ipv4FrameView& view, uint32_t sourceIp, uint16_t sourcePort, uint32_t destinationIp,
                         uint16_t destinationPort, ChecksumMode mode) {
  uint8_t* ip = view.ip();
  if (ip[8] <= 1) return RewriteError::TtlExpired;
  ip[8] -= 1;
  rewriteEndpointFields(view, Endpoint::Source, sourceIp, sourcePort, mode);
  rewriteEndpointFields(view, Endpoint::Destination, destinationIp, destinationPort, mode);
  finishIpHeader(view);
  return RewriteError::None;
}

RewriteError rewriteFragmentAddresses(uint8_t* frame, uint32_t source, uint32_t destination) {
  uint8_t* header = frame + kEthernetHeaderLength;
  if (header[8] <= 1) return RewriteError::TtlExpired;
  header[8] -= 1;
  store32(header + 12, source);
  store32(header + 16, destination);
  store16(header + 10, ipv4HeaderChecksum(header, size_t(header[0] & 0x0f) * 4));
  return RewriteError::None;
}

RewriteError rewriteDestination(const Ipv4FrameView& view, uint32_t ip, uint16_t port, ChecksumMode mode) {
  return rewriteEndpoint(view, Endpoint::Destination, ip, port, mode);
}

RewriteError rewriteSource(const Ipv4FrameView& view, uint32_t ip, uint16_t port, ChecksumMode mode) {
  return rewriteEndpoint(view, Endpoint::Source, ip, port, mode);
}

RewriteError decrementTtl(const Ipv4FrameView& view) {
  uint8_t* ip = view.ip();
  if (ip[8] <= 1) return RewriteError::TtlExpired;
  ip[8] -= 1;
  finishIpHeader(view);
  return RewriteError::None;
}

RewriteError rewriteFragmentAddress(uint8_t* frame, AddressField field, uint32_t ip) {
  uint8_t* header = frame + kEthernetHeaderLength;
  if (header[8] <= 1) return RewriteError::TtlExpired;
  header[8] -= 1;
  store32(header + (field == AddressField::Source ? 12 : 16), ip);
  store16(header + 10, ipv4HeaderChecksum(header, size_t(header[0] & 0x0f) * 4));
  return RewriteError::None;
}

}  // namespace natlb::packet
