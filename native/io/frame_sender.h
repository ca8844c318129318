// Transmit side of one interface: an AF_PACKET socket with virtio-net headers, so 64 KB GSO frames go
// out whole and the kernel segments them (or not) on egress; frames are queued and sent in batches.
#pragma once
#include "virtio_net_header.h"
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "unique_fd.h"

namespace natlb::io {

class FrameSender {
 public:
  static constexpr size_t kBatch = 64;

  explicit FrameSender(int ifindex);
  FrameSender(const FrameSender&) = delete;
  FrameSender& operator=(const FrameSender&) = delete;

  // Queues a frame whose virtio-net header sits right in front of it (as in the RX ring).
  // The bytes must stay valid until flush(). Flushes by itself when the batch is full.
  void queue(const VirtioNetHeader* vnet, const uint8_t* frame, size_t length);
  // Sends one small frame with an empty vnet header at once (ARP).
  bool sendNow(const uint8_t* frame, size_t length);
  struct FlushResult {
    uint32_t sent;
    uint32_t failed;
    uint64_t bytes;
  };
  FlushResult flush();

 private:
  UniqueFd socket_;
  std::array<iovec, kBatch> vectors_{};
  std::array<mmsghdr, kBatch> messages_{};
  std::array<uint32_t, kBatch> lengths_{};
  size_t queued_ = 0;
  FlushResult pending_{0, 0, 0};
};

}  // namespace natlb::io
