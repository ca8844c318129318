// Which kind of TCP/UDP checksum a received frame carries, for receive paths that do not say
// (AF_XDP has no virtio-net header). A frame the sender left CHECKSUM_PARTIAL (every TCP frame from a
// veth: docs/architecture.md, "Checksums") holds the pseudo-header sum in its checksum field; the checksum is then
// finished on transmit (virtio-net NEEDS_CSUM). Pure, no I/O.
#pragma once
#include <cstdint>
#include <optional>

#include "ipv4_frame.h"

namespace natlb::packet {

// Where the transmit side must finish the checksum, counted from the MAC header.
struct PartialChecksum {
  uint16_t start;   // first byte summed: the L4 header
  uint16_t offset;  // where the result goes, from `start`
};

// The frame's checksum field holds the seed when it equals the folded pseudo-header sum. A complete
// checksum can equal it by chance (1 in 65536): finishing it from the seed again is still correct,
// because the seed is the exact pseudo-header sum. Fragments and UDP without checksum are complete.
std::optional<PartialChecksum> partialChecksumOf(const Ipv4FrameView& view);

}  // namespace natlb::packet
