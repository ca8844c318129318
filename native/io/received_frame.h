// A received frame as the workers see it, whichever receive path (AF_PACKET ring or AF_XDP socket)
// it came from; it stays owned by that path until released.
#pragma once
#include <cstdint>

#include "virtio_net_header.h"

namespace natlb::io {

struct ReceivedFrame {
  VirtioNetHeader* vnet;  // directly in front of the MAC header, writable
  uint8_t* frame;         // MAC header
  uint32_t length;        // bytes captured (== wire length unless truncated)
  bool truncated;
  bool vlanTagged;        // the kernel stripped an 802.1Q tag we would have to restore
  uint64_t timestampNs;   // when the kernel received it (AF_PACKET): merges two rings in arrival order
  // The kernel's verdict: PACKET_OTHERHOST. Handed over to natlb when the destination MAC is the
  // interface's own (flow/reply_claims.h), seen only in promiscuous mode otherwise.
  bool markedForOtherHost;
  // Received through AF_XDP. Such a frame says nothing of its L4 checksum (complete or partial): its
  // vnet header is blank until the worker classifies the frame (packet/checksum_state.h).
  bool steeredByXdp;
};

struct RingStatistics {
  uint64_t packets;
  uint64_t drops;
};

}  // namespace natlb::io
