// The virtio-net header that PACKET_VNET_HDR puts in front of each frame (<linux/virtio_net.h> is not
// valid C++: it has a field named `class`). Fields are host-endian (the kernel's virtio16 on a
// little-endian host with the legacy layout).
#pragma once
#include <cstdint>

namespace natlb::io {

struct VirtioNetHeader {
  uint8_t flags;
  uint8_t gsoType;
  uint16_t headerLength;
  uint16_t gsoSize;
  uint16_t checksumStart;
  uint16_t checksumOffset;
};
static_assert(sizeof(VirtioNetHeader) == 10);

constexpr uint8_t kVnetNeedsChecksum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM: CHECKSUM_PARTIAL
constexpr uint8_t kVnetDataValid = 2;      // VIRTIO_NET_HDR_F_DATA_VALID

}  // namespace natlb::io
