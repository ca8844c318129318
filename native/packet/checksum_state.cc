#include "checksum_state.h"

#include "checksum.h"

namespace natlb::packet {

std::optional<PartialChecksum> partialChecksumOf(const Ipv4FrameView& view) {
  const uint8_t* ip = view.ip();
  if (ip[6] & 0x20) return std::nullopt;  // a first fragment: the pseudo header covers the whole datagram
  const uint16_t field = load16(view.frame + view.checksumOffset());
  if (view.protocol == kProtocolUdp && field == 0) return std::nullopt;  // "no checksum" (RFC 768)
  const uint32_t source = view.sourceIp(), destination = view.destinationIp();
  const uint64_t pseudoHeader = uint64_t(highWord(source)) + lowWord(source) + highWord(destination) +
                                lowWord(destination) + view.protocol + view.l4Length;
  if (field != foldSum(pseudoHeader)) return std::nullopt;
  return PartialChecksum{uint16_t(view.l4Offset), uint16_t(view.checksumOffset() - view.l4Offset)};
}

}  // namespace natlb::packet
