#include "frame_sender.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>

#include <cerrno>
#include <cstring>

#include "system_error.h"

namespace natlb::io {

namespace {

// Same flow and direction: IPv4 addresses and TCP ports equal.
bool sameFlow(const uint8_t* a, const uint8_t* b) {
  return std::memcmp(a + 14 + 12, b + 14 + 12, 8) == 0 && std::memcmp(a + 34, b + 34, 4) == 0;
}

bool isPlainTcp(const uint8_t* frame, size_t length) {
  return length >= 54 && frame[12] == 0x08 && frame[13] == 0x00 && frame[14] == 0x45 && frame[14 + 9] == 6;
}

// A super-frame is sent as a scatter list: its virtio-net header and rebuilt headers (in the arena),
// then each segment's payload where it was received, so its bytes are not copied in user space.
// Headers: Ethernet + IPv4 without options + TCP with options.
constexpr size_t kMaxHeaderBytes = 14 + 20 + 60;
constexpr size_t kArenaSlot = (sizeof(VirtioNetHeader) + kMaxHeaderBytes + 15) & ~size_t{15};
// Every group holds at least two frames, so one flush of kBatch frames closes at most kBatch / 2.
constexpr size_t kArenaBytes = FrameSender::kBatch * kArenaSlot;
// One scatter entry per single frame, 1 + segments per super-frame: never more than a message each
// plus one per queued frame.
constexpr size_t kScatterEntries = 2 * FrameSender::kBatch + FrameSender::kBatch * FrameSender::kBatch;

}  // namespace

FrameSender::FrameSender(int ifindex, bool coalesceTcp, uint32_t mark) : coalesceTcp_(coalesceTcp) {
  if (coalesceTcp_) arena_.resize(kArenaBytes);
  vectors_.resize(kScatterEntries);
  socket_ = UniqueFd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));  // protocol 0: this socket never receives
  if (!socket_.valid()) throwSystemError("socket(AF_PACKET) for transmit (needs CAP_NET_RAW)");
  const int one = 1;
  if (setsockopt(socket_.get(), SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0) {
    throwSystemError("PACKET_VNET_HDR on the transmit socket");
  }
  if (mark != 0 && setsockopt(socket_.get(), SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
    throwSystemError("SO_MARK on the transmit socket (needs CAP_NET_RAW and Linux 5.17 or later)");
  }
  sockaddr_ll where{};
  where.sll_family = AF_PACKET;
  where.sll_protocol = 0;
  where.sll_ifindex = ifindex;
  if (::bind(socket_.get(), reinterpret_cast<sockaddr*>(&where), sizeof where) != 0) {
    throwSystemError("bind(AF_PACKET) for transmit");
  }
  const int sendBuffer = 8 << 20;
  setsockopt(socket_.get(), SOL_SOCKET, SO_SNDBUF, &sendBuffer, sizeof sendBuffer);
}

void FrameSender::enqueue(const VirtioNetHeader* vnet, size_t length) {
  if (queued_ == kBatch) sendQueued();
  iovec* first = &vectors_[vectorsUsed_];
  vectors_[vectorsUsed_++] = iovec{const_cast<VirtioNetHeader*>(vnet), sizeof(VirtioNetHeader) + length};
  addMessage(first, 1, length);
}

void FrameSender::addMessage(iovec* vectors, size_t count, size_t frameLength) {
  lengths_[queued_] = uint32_t(frameLength);
  std::memset(&messages_[queued_], 0, sizeof(mmsghdr));
  messages_[queued_].msg_hdr.msg_iov = vectors;
  messages_[queued_].msg_hdr.msg_iovlen = count;
  ++queued_;
}

void FrameSender::enqueueSuperFrame(const Group& group) {
  if (queued_ == kBatch || vectorsUsed_ + 1 + group.count > vectors_.size()) sendQueued();
  auto* vnet = reinterpret_cast<VirtioNetHeader*>(arena_.data() + arenaUsed_);
  *vnet = VirtioNetHeader{};
  const packet::TcpSegment& first = group.segments[0];
  const size_t frameLength = packet::buildSuperFrameHeader(group.segments.data(), group.count,
                                                           arena_.data() + arenaUsed_ + sizeof(VirtioNetHeader), *vnet);
  arenaUsed_ += kArenaSlot;
  iovec* vectors = &vectors_[vectorsUsed_];
  vectors_[vectorsUsed_++] = iovec{vnet, sizeof(VirtioNetHeader) + first.headerLength};
  for (size_t i = 0; i < group.count; ++i) {
    const packet::TcpSegment& segment = group.segments[i];
    vectors_[vectorsUsed_++] = iovec{const_cast<uint8_t*>(segment.frame + segment.headerLength), segment.payloadLength};
  }
  pending_.coalesced += uint32_t(group.count);
  addMessage(vectors, 1 + group.count, frameLength);
}

FrameSender::Group* FrameSender::groupOf(const uint8_t* frame) {
  for (size_t i = 0; i < openGroups_; ++i) {
    if (sameFlow(groups_[i].segments[0].frame, frame)) return &groups_[i];
  }
  return nullptr;
}

void FrameSender::closeGroup(size_t index) {
  Group& group = groups_[index];
  const packet::TcpSegment& first = group.segments[0];
  if (group.count == 1 || first.headerLength > kMaxHeaderBytes || arenaUsed_ + kArenaSlot > arena_.size()) {
    for (size_t i = 0; i < group.count; ++i) {
      const packet::TcpSegment& segment = group.segments[i];
      const auto* vnet = reinterpret_cast<const VirtioNetHeader*>(segment.frame - sizeof(VirtioNetHeader));
      enqueue(vnet, segment.headerLength + segment.payloadLength);
    }
  } else {
    enqueueSuperFrame(group);
  }
  for (size_t i = index + 1; i < openGroups_; ++i) groups_[i - 1] = groups_[i];
  --openGroups_;
}

void FrameSender::closeGroupOf(const uint8_t* frame) {
  for (size_t i = 0; i < openGroups_; ++i) {
    if (sameFlow(groups_[i].segments[0].frame, frame)) {
      closeGroup(i);
      return;
    }
  }
}

void FrameSender::queue(const VirtioNetHeader* vnet, const uint8_t* frame, size_t length) {
  const auto segment = coalesceTcp_ ? packet::coalescibleSegment(frame, length, *vnet) : std::nullopt;
  if (!segment) {
    // Keep a flow's order: its open group goes out before this frame (a FIN, a pure ACK...).
    if (openGroups_ > 0 && isPlainTcp(frame, length)) closeGroupOf(frame);
    enqueue(vnet, length);
    return;
  }
  if (Group* group = groupOf(frame)) {
    const packet::TcpSegment& last = group->segments[group->count - 1];
    if (group->count < kBatch && packet::canAppend(group->segments[0], last, *segment, group->count, group->payload)) {
      group->segments[group->count++] = *segment;
      group->payload += segment->payloadLength;
      return;
    }
    closeGroup(size_t(group - groups_.data()));
  } else if (openGroups_ == kOpenGroups) {
    closeGroup(0);
  }
  Group& fresh = groups_[openGroups_++];
  fresh.vnet = vnet;
  fresh.segments[0] = *segment;
  fresh.count = 1;
  fresh.payload = segment->payloadLength;
}

void FrameSender::sendQueued() {
  const FlushResult result = sendBatch();
  pending_.sent += result.sent;
  pending_.failed += result.failed;
  pending_.bytes += result.bytes;
}

FrameSender::FlushResult FrameSender::flush() {
  while (openGroups_ > 0) closeGroup(0);
  sendQueued();
  const FlushResult result = pending_;
  pending_ = {0, 0, 0, 0};
  arenaUsed_ = 0;
  return result;
}

FrameSender::FlushResult FrameSender::sendBatch() {
  FlushResult result{0, 0, 0, 0};
  size_t offset = 0;
  while (offset < queued_) {
    const int sent = ::sendmmsg(socket_.get(), messages_.data() + offset, unsigned(queued_ - offset), 0);
    if (sent < 0) {
      if (errno == EINTR) continue;
      // The first message failed (EMSGSIZE, ENOBUFS, ...): count it and go on with the rest.
      ++result.failed;
      ++offset;
      continue;
    }
    for (int i = 0; i < sent; ++i) result.bytes += lengths_[offset + i];
    result.sent += uint32_t(sent);
    offset += size_t(sent);
  }
  queued_ = 0;
  vectorsUsed_ = 0;
  return result;
}

bool FrameSender::sendNow(const uint8_t* frame, size_t length) {
  uint8_t buffer[sizeof(VirtioNetHeader) + 64] = {};
  if (length > 64) return false;
  std::memcpy(buffer + sizeof(VirtioNetHeader), frame, length);
  return ::send(socket_.get(), buffer, sizeof(VirtioNetHeader) + length, 0) >= 0;
}

}  // namespace natlb::io
