// A TPACKET_V2 receive ring on one interface, with virtio-net headers (DESIGN.md section 2: V2 has no
// block-retire timeout, so a lone SYN is seen at once; the vnet header carries GSO and checksum state).
#pragma once
#include <linux/if_packet.h>
#include "virtio_net_header.h"

#include <cstddef>
#include <cstdint>
#include <vector>

#include "mapped_memory.h"
#include "socket_filter.h"
#include "unique_fd.h"

namespace natlb::io {

struct RingGeometry {
  uint32_t slotCount = 512;
  uint32_t slotBytes = 69632;  // 17 pages: a 64 KB GSO frame + tpacket header + vnet header
};

// One received frame, still owned by the ring until release().
struct ReceivedFrame {
  tpacket2_hdr* slot;
  VirtioNetHeader* vnet;  // directly in front of the MAC header
  uint8_t* frame;        // MAC header
  uint32_t length;       // bytes captured (== wire length unless truncated)
  bool truncated;
  bool vlanTagged;       // the kernel stripped an 802.1Q tag we would have to restore
};

struct RingStatistics {
  uint64_t packets;
  uint64_t drops;
};

class RxRing {
 public:
  RxRing(int ifindex, const RingGeometry& geometry, const std::vector<sock_filter>& filter);
  RxRing(const RxRing&) = delete;
  RxRing& operator=(const RxRing&) = delete;

  int fd() const { return socket_.get(); }
  // The next frame the kernel has filled, or false.
  bool next(ReceivedFrame& out);
  // Hands the oldest taken frames back to the kernel (in order). Send anything pointing into them first.
  void releaseTaken();
  // Waits up to timeoutMs for a frame.
  void wait(int timeoutMs);
  void replaceFilter(const std::vector<sock_filter>& filter);
  RingStatistics takeStatistics();

 private:
  UniqueFd socket_;
  MappedMemory ring_;
  RingGeometry geometry_;
  uint32_t cursor_ = 0;      // next slot to read
  uint32_t takenFrom_ = 0;   // first slot not yet released
  uint32_t takenCount_ = 0;
};

}  // namespace natlb::io
