#include "xsk_socket.h"

#include <sys/socket.h>

#include <atomic>
#include <cstring>

#include "system_error.h"

namespace natlb::io {

namespace {

uint32_t loadAcquire(uint32_t* index) { return std::atomic_ref<uint32_t>(*index).load(std::memory_order_acquire); }
void storeRelease(uint32_t* index, uint32_t value) {
  std::atomic_ref<uint32_t>(*index).store(value, std::memory_order_release);
}

void setOption(int fd, int name, const void* value, socklen_t length, const char* what) {
  if (setsockopt(fd, SOL_XDP, name, value, length) != 0) throwSystemError(what);
}

template <typename Entry>
XskRing<Entry> mapRing(int fd, const xdp_ring_offset& offsets, uint32_t size, off_t page, const char* what) {
  const size_t length = offsets.desc + size_t(size) * sizeof(Entry);
  void* address = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, page);
  if (address == MAP_FAILED) throwSystemError(what);
  XskRing<Entry> ring;
  ring.mapping = MappedMemory(address, length);
  uint8_t* base = ring.mapping.bytes();
  ring.producer = reinterpret_cast<uint32_t*>(base + offsets.producer);
  ring.consumer = reinterpret_cast<uint32_t*>(base + offsets.consumer);
  ring.entries = reinterpret_cast<Entry*>(base + offsets.desc);
  ring.mask = size - 1;
  return ring;
}

}  // namespace

XskSocket::XskSocket(int ifindex, uint32_t queue, const XskGeometry& geometry)
    : geometry_(geometry) {
  const size_t umemLength = size_t(geometry.frameCount) * geometry.frameBytes;
  void* umem = ::mmap(nullptr, umemLength, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (umem == MAP_FAILED) throwSystemError("mmap(UMEM)");
  umem_ = MappedMemory(umem, umemLength);
  // The kernel pins these pages: without this, every fork() of the process (Node spawns `ip` every few
  // seconds) would copy all of them into the child.
  if (::madvise(umem, umemLength, MADV_DONTFORK) != 0) throwSystemError("madvise(UMEM, MADV_DONTFORK)");

  socket_ = UniqueFd(::socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!socket_.valid()) throwSystemError("socket(AF_XDP) (needs CAP_NET_RAW)");
  const int fd = socket_.get();
  xdp_umem_reg registration{};
  registration.addr = reinterpret_cast<uint64_t>(umem);
  registration.len = umemLength;
  registration.chunk_size = geometry.frameBytes;
  registration.headroom = 0;  // the kernel leaves XDP_PACKET_HEADROOM in front: room for the vnet header
  setOption(fd, XDP_UMEM_REG, &registration, sizeof registration,
            "XDP_UMEM_REG (pins the UMEM: needs CAP_IPC_LOCK or RLIMIT_MEMLOCK)");
  const uint32_t fillSlots = geometry.frameCount, completionSlots = 64;
  setOption(fd, XDP_UMEM_FILL_RING, &fillSlots, sizeof fillSlots, "XDP_UMEM_FILL_RING");
  setOption(fd, XDP_UMEM_COMPLETION_RING, &completionSlots, sizeof completionSlots, "XDP_UMEM_COMPLETION_RING");
  setOption(fd, XDP_RX_RING, &geometry.receiveSlots, sizeof geometry.receiveSlots, "XDP_RX_RING");

  xdp_mmap_offsets offsets{};
  socklen_t offsetsLength = sizeof offsets;
  if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &offsets, &offsetsLength) != 0) throwSystemError("XDP_MMAP_OFFSETS");
  receive_ = mapRing<xdp_desc>(fd, offsets.rx, geometry.receiveSlots, XDP_PGOFF_RX_RING, "mmap(XDP RX ring)");
  fill_ = mapRing<uint64_t>(fd, offsets.fr, fillSlots, XDP_UMEM_PGOFF_FILL_RING, "mmap(XDP fill ring)");
  completion_ = mapRing<uint64_t>(fd, offsets.cr, completionSlots, XDP_UMEM_PGOFF_COMPLETION_RING,
                                  "mmap(XDP completion ring)");

  // Every chunk starts in the fill ring: the kernel copies received frames into them.
  for (uint32_t i = 0; i < geometry.frameCount; ++i) {
    fill_.entries[i & fill_.mask] = uint64_t(i) * geometry.frameBytes;
  }
  fillProducer_ = geometry.frameCount;
  storeRelease(fill_.producer, fillProducer_);

  sockaddr_xdp where{};
  where.sxdp_family = AF_XDP;
  where.sxdp_ifindex = uint32_t(ifindex);
  where.sxdp_queue_id = queue;
  where.sxdp_flags = XDP_COPY;  // veth has no zero-copy mode; on a NIC copy mode works everywhere
  if (::bind(fd, reinterpret_cast<sockaddr*>(&where), sizeof where) != 0) throwSystemError("bind(AF_XDP)");
}

bool XskSocket::peek(ReceivedFrame& out) {
  if (receiveCursor_ == loadAcquire(receive_.producer)) return false;
  const xdp_desc& descriptor = receive_.entries[receiveCursor_ & receive_.mask];
  uint8_t* frame = umem_.bytes() + descriptor.addr;
  const uint64_t offsetInChunk = descriptor.addr % geometry_.frameBytes;
  out.frame = frame;
  out.length = descriptor.len;
  // The kernel leaves 256 bytes of headroom in copy mode; a chunk without room for the header is
  // reported as truncated (the worker counts and drops it).
  out.truncated = offsetInChunk < sizeof(VirtioNetHeader);
  out.vnet = out.truncated ? nullptr : reinterpret_cast<VirtioNetHeader*>(frame - sizeof(VirtioNetHeader));
  if (out.vnet != nullptr) std::memset(out.vnet, 0, sizeof(VirtioNetHeader));
  out.vlanTagged = false;  // the XDP program steers untagged IPv4 only
  out.timestampNs = 0;
  // Steered away from the kernel's stack by the XDP program: handed over, like a frame the kernel marks.
  out.markedForOtherHost = true;
  out.steeredByXdp = true;
  return true;
}

void XskSocket::take() { ++receiveCursor_; }

void XskSocket::releaseTaken() {
  if (receiveReleased_ == receiveCursor_) return;
  // The fill ring holds every chunk, so there is always room for the ones coming back.
  for (; receiveReleased_ != receiveCursor_; ++receiveReleased_) {
    const uint64_t address = receive_.entries[receiveReleased_ & receive_.mask].addr;
    fill_.entries[fillProducer_++ & fill_.mask] = address - address % geometry_.frameBytes;
  }
  storeRelease(fill_.producer, fillProducer_);
  storeRelease(receive_.consumer, receiveReleased_);
}

RingStatistics XskSocket::takeStatistics() {
  xdp_statistics stats{};
  socklen_t length = sizeof stats;
  if (getsockopt(socket_.get(), SOL_XDP, XDP_STATISTICS, &stats, &length) != 0) return {0, 0};
  // A frame lost for want of a chunk counts in rx_dropped too: rx_fill_ring_empty_descs is not added.
  const uint64_t dropped = stats.rx_dropped + stats.rx_ring_full;
  const uint64_t delta = dropped - droppedSoFar_;
  droppedSoFar_ = dropped;
  return {0, delta};
}

}  // namespace natlb::io
