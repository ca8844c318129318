// One AF_XDP socket in copy mode, bound to one receive queue, with its own UMEM: the XDP program
// (native/xdp) redirects the frames the balancer owns here, before the kernel builds or routes them.
// Receive only: frames leave through the AF_PACKET senders, which take GSO super-frames and let the
// kernel finish partial checksums (an AF_XDP transmit carries neither).
#pragma once
#include <linux/if_xdp.h>

#include <cstdint>

#include "mapped_memory.h"
#include "received_frame.h"
#include "unique_fd.h"

namespace natlb::io {

struct XskGeometry {
  uint32_t frameCount;    // UMEM chunks; every one is either in the fill ring, the RX ring or taken
  uint32_t frameBytes;    // chunk size (2048 or a page); the kernel puts a frame 256 bytes into it
  uint32_t receiveSlots;  // RX ring entries (a power of two)
};

// As many frames as the AF_PACKET small-frame ring: with 4096 the 4-connection MTU download lost
// frames to a full ring (and TCP slowed down); 32 MiB of UMEM either way.
constexpr uint32_t kXskKernelHeadroom = 256, kXskEthernetHeader = 14;
constexpr uint32_t kMaxXskMtu = 4096 - kXskKernelHeadroom - kXskEthernetHeader;
constexpr XskGeometry xskGeometryForMtu(uint32_t mtu) {
  return mtu + kXskEthernetHeader + kXskKernelHeadroom <= 2048 ? XskGeometry{16384, 2048, 8192}
                                                               : XskGeometry{8192, 4096, 4096};
}

// A single-producer single-consumer ring shared with the kernel (producer and consumer indexes run
// freely and are masked; user space owns one of the two).
template <typename Entry>
struct XskRing {
  MappedMemory mapping;
  uint32_t* producer = nullptr;
  uint32_t* consumer = nullptr;
  Entry* entries = nullptr;
  uint32_t mask = 0;
};

class XskSocket {
 public:
  XskSocket(int ifindex, uint32_t queue, const XskGeometry& geometry);
  XskSocket(const XskSocket&) = delete;
  XskSocket& operator=(const XskSocket&) = delete;

  int fd() const { return socket_.get(); }
  // The next received frame, without taking it. A virtio-net header is written in front of it, so the
  // rest of the data plane treats it like a frame from an AF_PACKET ring.
  bool peek(ReceivedFrame& out);
  void take();
  // Hands the taken frames' chunks back to the kernel (fill ring). Send anything pointing into them first.
  void releaseTaken();
  // Frames the kernel could not deliver since the last call (RX ring full, no free chunk, too long).
  RingStatistics takeStatistics();

 private:
  void mapRings(const xdp_mmap_offsets& offsets, const XskGeometry& geometry);

  XskGeometry geometry_;
  MappedMemory umem_;
  UniqueFd socket_;
  XskRing<xdp_desc> receive_;
  XskRing<uint64_t> fill_;
  XskRing<uint64_t> completion_;  // required by the UMEM, unused: this socket does not transmit
  uint32_t receiveCursor_ = 0;    // next RX entry to read
  uint32_t receiveReleased_ = 0;  // RX entries handed back (the consumer index the kernel sees)
  uint32_t fillProducer_ = 0;
  uint64_t droppedSoFar_ = 0;
};

}  // namespace natlb::io
