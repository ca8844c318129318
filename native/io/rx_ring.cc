#include "rx_ring.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <poll.h>
#include <sys/socket.h>

#include <unistd.h>

#include <atomic>
#include <iterator>

#include "system_error.h"

namespace natlb::io {

namespace {

void setOption(int fd, int level, int name, const void* value, socklen_t length, const char* what) {
  if (setsockopt(fd, level, name, value, length) != 0) throwSystemError(what);
}

// PACKET_FANOUT_FLAG_IGNORE_OUTGOING, newer than this system's <linux/if_packet.h>.
constexpr int kFanoutIgnoreOutgoing = 0x4000;

std::atomic_ref<uint32_t> statusOf(tpacket2_hdr* slot) {
  return std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(&slot->tp_status));
}

}  // namespace

namespace {

uint16_t etherTypeOf(RingBinding binding) { return binding == RingBinding::Arp ? ETH_P_ARP : ETH_P_IP; }

}  // namespace

RxRing::RxRing(int ifindex, const RingGeometry& geometry, const std::vector<sock_filter>& filter, RingBinding binding)
    : geometry_(geometry) {
  // Protocol 0: nothing is queued before the filter is attached and the socket bound.
  socket_ = UniqueFd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!socket_.valid()) throwSystemError("socket(AF_PACKET) (needs CAP_NET_RAW)");
  const int fd = socket_.get();
  const int one = 1;
  const int version = TPACKET_V2;
  setOption(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one, "PACKET_VNET_HDR");
  setOption(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version, "PACKET_VERSION");
  setOption(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one, "PACKET_IGNORE_OUTGOING");
  const uint32_t page = uint32_t(sysconf(_SC_PAGESIZE));
  const uint32_t blockBytes = geometry.slotBytes >= page ? geometry.slotBytes : page;
  if (geometry.slotBytes % 16 != 0 || blockBytes % page != 0 || blockBytes % geometry.slotBytes != 0 ||
      geometry.slotCount % (blockBytes / geometry.slotBytes) != 0) {
    throw SystemError("ring geometry: slot size must divide a page or be a multiple of it", EINVAL);
  }
  tpacket_req request{};
  request.tp_block_size = blockBytes;
  request.tp_block_nr = geometry.slotCount / (blockBytes / geometry.slotBytes);
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
  where.sll_protocol = htons(etherTypeOf(binding));
  where.sll_ifindex = ifindex;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&where), sizeof where) != 0) throwSystemError("bind(AF_PACKET)");
}

bool RxRing::peek(ReceivedFrame& out) const {
  if (takenCount_ == geometry_.slotCount) return false;
  auto* slot = reinterpret_cast<tpacket2_hdr*>(ring_.bytes() + size_t(cursor_) * geometry_.slotBytes);
  const uint32_t status = statusOf(slot).load(std::memory_order_acquire);
  if ((status & TP_STATUS_USER) == 0) return false;
  uint8_t* base = reinterpret_cast<uint8_t*>(slot);
  out.frame = base + slot->tp_mac;
  out.vnet = reinterpret_cast<VirtioNetHeader*>(out.frame - sizeof(VirtioNetHeader));
  out.length = slot->tp_snaplen;
  out.truncated = slot->tp_snaplen < slot->tp_len;
  out.vlanTagged = (status & TP_STATUS_VLAN_VALID) != 0;
  out.timestampNs = uint64_t(slot->tp_sec) * 1000000000ULL + slot->tp_nsec;
  // The link-layer address follows the header. A frame "for another host" is either one the kernel
  // handed over (to this interface's MAC) or one seen in promiscuous mode (a tcpdump on the interface),
  // which is not ours to forward: the worker tells them apart by the MAC.
  const auto* link = reinterpret_cast<const sockaddr_ll*>(base + TPACKET_ALIGN(sizeof(tpacket2_hdr)));
  out.markedForOtherHost = link->sll_pkttype == PACKET_OTHERHOST;
  out.steeredByXdp = false;
  return true;
}

void RxRing::take() {
  cursor_ = (cursor_ + 1) % geometry_.slotCount;
  ++takenCount_;
}

void RxRing::splitBySize(RxRing& small, RxRing& large) {
  // The kernel picks a group id no other socket in the namespace uses; the second ring joins it.
  // A fanout group has its own tap, which PACKET_IGNORE_OUTGOING on the sockets does not cover: without
  // the group flag every frame the gateway sends is cloned into the tap and filtered out again.
  int flags = PACKET_FANOUT_CBPF | kFanoutIgnoreOutgoing;
  int unique = (flags | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
  if (setsockopt(small.fd(), SOL_PACKET, PACKET_FANOUT, &unique, sizeof unique) != 0) {
    if (errno != EINVAL) throwSystemError("PACKET_FANOUT (unique id)");
    flags = PACKET_FANOUT_CBPF;  // a kernel before the flag: the outgoing frames still pass the filter
    unique = (flags | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
    if (setsockopt(small.fd(), SOL_PACKET, PACKET_FANOUT, &unique, sizeof unique) != 0) {
      throwSystemError("PACKET_FANOUT (unique id)");
    }
  }
  int assigned = 0;
  socklen_t length = sizeof assigned;
  if (getsockopt(small.fd(), SOL_PACKET, PACKET_FANOUT, &assigned, &length) != 0) throwSystemError("PACKET_FANOUT id");
  const int join = (assigned & 0xffff) | (flags << 16);
  if (setsockopt(large.fd(), SOL_PACKET, PACKET_FANOUT, &join, sizeof join) != 0) throwSystemError("PACKET_FANOUT join");
  // Socket 0 (small) unless the packet is longer than the threshold. The selector sees the frame
  // from the network header on, so len is the L3 length.
  sock_filter selector[] = {
      {BPF_LD | BPF_W | BPF_LEN, 0, 0, 0},
      {BPF_JMP | BPF_JGT | BPF_K, 0, 1, kLargeFrameThreshold},
      {BPF_RET | BPF_K, 0, 0, 1},
      {BPF_RET | BPF_K, 0, 0, 0},
  };
  sock_fprog program{static_cast<unsigned short>(std::size(selector)), selector};
  if (setsockopt(small.fd(), SOL_PACKET, PACKET_FANOUT_DATA, &program, sizeof program) != 0) {
    throwSystemError("PACKET_FANOUT_DATA");
  }
}

void RxRing::releaseTaken() {
  for (; takenCount_ > 0; --takenCount_) {
    auto* slot = reinterpret_cast<tpacket2_hdr*>(ring_.bytes() + size_t(takenFrom_) * geometry_.slotBytes);
    statusOf(slot).store(TP_STATUS_KERNEL, std::memory_order_release);
    takenFrom_ = (takenFrom_ + 1) % geometry_.slotCount;
  }
}

void RxRing::replaceFilter(const std::vector<sock_filter>& filter) { attachSocketFilter(socket_.get(), filter); }

RingStatistics RxRing::takeStatistics() {
  tpacket_stats stats{};
  socklen_t length = sizeof stats;
  if (getsockopt(socket_.get(), SOL_PACKET, PACKET_STATISTICS, &stats, &length) != 0) return {0, 0};
  return {stats.tp_packets, stats.tp_drops};
}

}  // namespace natlb::io
