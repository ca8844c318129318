#include "rx_ring.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>

#include "system_error.h"

namespace natlb::io {

namespace {

void setOption(int fd, int level, int name, const void* value, socklen_t length, const char* what) {
  if (setsockopt(fd, level, name, value, length) != 0) throwSystemError(what);
}

std::atomic_ref<uint32_t> statusOf(tpacket2_hdr* slot) {
  return std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(&slot->tp_status));
}

}  // namespace

RxRing::RxRing(int ifindex, const RingGeometry& geometry, const std::vector<sock_filter>& filter)
    : geometry_(geometry) {
  // Protocol 0: nothing is queued before the filter is attached and the socket bound.
  socket_ = UniqueFd(::socket(AF_PACKET, SOCK_RAW, 0));
  if (!socket_.valid()) throwSystemError("socket(AF_PACKET) (needs CAP_NET_RAW)");
  const int fd = socket_.get();
  const int one = 1;
  const int version = TPACKET_V2;
  setOption(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one, "PACKET_VNET_HDR");
  setOption(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version, "PACKET_VERSION");
  setOption(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one, "PACKET_IGNORE_OUTGOING");
  tpacket_req request{};
  request.tp_block_size = geometry.slotBytes;
  request.tp_block_nr = geometry.slotCount;
  request.tp_frame_size = geometry.slotBytes;
  request.tp_frame_nr = geometry.slotCount;
  setOption(fd, SOL_PACKET, PACKET_RX_RING, &request, sizeof request, "PACKET_RX_RING");
  const size_t length = size_t(geometry.slotBytes) * geometry.slotCount;
  void* address = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, fd, 0);
  if (address == MAP_FAILED) address = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (address == MAP_FAILED) throwSystemError("mmap(PACKET_RX_RING)");
  ring_ = MappedMemory(address, length);
  attachSocketFilter(fd, filter);
  sockaddr_ll where{};
  where.sll_family = AF_PACKET;
  where.sll_protocol = htons(ETH_P_ALL);
  where.sll_ifindex = ifindex;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&where), sizeof where) != 0) throwSystemError("bind(AF_PACKET)");
}

bool RxRing::next(ReceivedFrame& out) {
  if (takenCount_ == geometry_.slotCount) return false;
  auto* slot = reinterpret_cast<tpacket2_hdr*>(ring_.bytes() + size_t(cursor_) * geometry_.slotBytes);
  const uint32_t status = statusOf(slot).load(std::memory_order_acquire);
  if ((status & TP_STATUS_USER) == 0) return false;
  uint8_t* base = reinterpret_cast<uint8_t*>(slot);
  out.slot = slot;
  out.frame = base + slot->tp_mac;
  out.vnet = reinterpret_cast<VirtioNetHeader*>(out.frame - sizeof(VirtioNetHeader));
  out.length = slot->tp_snaplen;
  out.truncated = slot->tp_snaplen < slot->tp_len;
  out.vlanTagged = (status & TP_STATUS_VLAN_VALID) != 0;
  cursor_ = (cursor_ + 1) % geometry_.slotCount;
  ++takenCount_;
  return true;
}

void RxRing::releaseTaken() {
  for (; takenCount_ > 0; --takenCount_) {
    auto* slot = reinterpret_cast<tpacket2_hdr*>(ring_.bytes() + size_t(takenFrom_) * geometry_.slotBytes);
    statusOf(slot).store(TP_STATUS_KERNEL, std::memory_order_release);
    takenFrom_ = (takenFrom_ + 1) % geometry_.slotCount;
  }
}

void RxRing::wait(int timeoutMs) {
  pollfd descriptor{socket_.get(), POLLIN | POLLERR, 0};
  ::poll(&descriptor, 1, timeoutMs);
}

void RxRing::replaceFilter(const std::vector<sock_filter>& filter) { attachSocketFilter(socket_.get(), filter); }

RingStatistics RxRing::takeStatistics() {
  tpacket_stats stats{};
  socklen_t length = sizeof stats;
  if (getsockopt(socket_.get(), SOL_PACKET, PACKET_STATISTICS, &stats, &length) != 0) return {0, 0};
  return {stats.tp_packets, stats.tp_drops};
}

}  // namespace natlb::io
