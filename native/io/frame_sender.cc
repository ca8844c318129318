#include "frame_sender.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>

#include <cerrno>
#include <cstring>

#include "system_error.h"

namespace natlb::io {

FrameSender::FrameSender(int ifindex) {
  socket_ = UniqueFd(::socket(AF_PACKET, SOCK_RAW, 0));  // protocol 0: this socket never receives
  if (!socket_.valid()) throwSystemError("socket(AF_PACKET) for transmit (needs CAP_NET_RAW)");
  const int one = 1;
  if (setsockopt(socket_.get(), SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0) {
    throwSystemError("PACKET_VNET_HDR on the transmit socket");
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

void FrameSender::queue(const VirtioNetHeader* vnet, const uint8_t* frame, size_t length) {
  if (queued_ == kBatch) {
    const FlushResult result = flush();
    pending_.sent += result.sent;
    pending_.failed += result.failed;
    pending_.bytes += result.bytes;
  }
  vectors_[queued_] = iovec{const_cast<VirtioNetHeader*>(vnet), sizeof(VirtioNetHeader) + length};
  (void)frame;  // the frame follows the vnet header contiguously
  lengths_[queued_] = uint32_t(length);
  std::memset(&messages_[queued_], 0, sizeof(mmsghdr));
  messages_[queued_].msg_hdr.msg_iov = &vectors_[queued_];
  messages_[queued_].msg_hdr.msg_iovlen = 1;
  ++queued_;
}

FrameSender::FlushResult FrameSender::flush() {
  FlushResult result = pending_;
  pending_ = {0, 0, 0};
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
  return result;
}

bool FrameSender::sendNow(const uint8_t* frame, size_t length) {
  uint8_t buffer[sizeof(VirtioNetHeader) + 64] = {};
  if (length > 64) return false;
  std::memcpy(buffer + sizeof(VirtioNetHeader), frame, length);
  return ::send(socket_.get(), buffer, sizeof(VirtioNetHeader) + length, 0) >= 0;
}

}  // namespace natlb::io
