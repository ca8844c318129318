// A TPACKET_V2 receive ring on one interface, with virtio-net headers (docs/architecture.md, "Path 1": V2 has no
// block-retire timeout, so a lone SYN is seen at once; the vnet header carries GSO and checksum state).
#pragma once
#include <linux/if_packet.h>
#include "virtio_net_header.h"

#include <cstddef>
#include <cstdint>
#include <vector>

#include "mapped_memory.h"
#include "received_frame.h"
#include "socket_filter.h"
#include "unique_fd.h"

namespace natlb::io {

struct RingGeometry {
  uint32_t slotCount;
  uint32_t slotBytes;  // a multiple of 16 that divides a page, or a multiple of the page size
};

// A ring of MTU-sized slots for ordinary frames and one of 68 KB slots for GSO super-frames: sized by
// frame count and by bytes respectively (docs/architecture.md, "Path 1"), 49 MiB instead of 1 GiB of 68 KB slots.
constexpr RingGeometry kSmallFrameRing{16384, 2048};
constexpr RingGeometry kLargeFrameRing{256, 69632};  // 17 pages: 64 KB + tpacket and vnet headers
constexpr uint32_t kLargeFrameThreshold = 1600;     // L3 bytes; larger frames go to the large ring
// Beside an AF_XDP path the rings carry only what the XDP program passes on (ARP, ICMP, later TCP
// fragments): small ones do.
constexpr RingGeometry kSmallFrameRingBesideXdp{1024, 2048};
constexpr RingGeometry kLargeFrameRingBesideXdp{16, 69632};

// ARP only, beside the IPv4 rings (a handful of frames a second).
constexpr RingGeometry kArpFrameRing{64, 2048};

// Which frames a ring taps: one protocol's, after TC and netfilter ingress, so it sees the kernel's
// verdict on each frame (flow/reply_claims.h: natlb's frames come marked "for another host") and never
// what the kernel fast path redirected at TC. (A protocol handler runs after the kernel's own IP
// input, bound to a device or not: on recent kernels unbound packet sockets sit on a per-namespace list
// walked after ptype_base too.)
enum class RingBinding : uint8_t { Ipv4, Arp };

class RxRing {
 public:
  RxRing(int ifindex, const RingGeometry& geometry, const std::vector<sock_filter>& filter, RingBinding binding);
  // Splits one interface's frames between two rings by size (PACKET_FANOUT with a classic BPF
  // selector, in a group of its own): frames with more than kLargeFrameThreshold L3 bytes go to `large`.
  static void splitBySize(RxRing& small, RxRing& large);
  RxRing(const RxRing&) = delete;
  RxRing& operator=(const RxRing&) = delete;

  int fd() const { return socket_.get(); }
  // The next frame the kernel has filled, without taking it, or false.
  bool peek(ReceivedFrame& out) const;
  // Takes the frame peek() returned.
  void take();
  bool next(ReceivedFrame& out) {
    if (!peek(out)) return false;
    take();
    return true;
  }
  // Hands the oldest taken frames back to the kernel (in order). Send anything pointing into them first.
  void releaseTaken();
  // Waits up to timeoutMs for a frame.
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
