// Transmit side of one interface: an AF_PACKET socket with virtio-net headers, so 64 KB GSO frames go
// out whole and the kernel segments them (or not) on egress; frames are queued and sent in batches.
#pragma once
#include "virtio_net_header.h"
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../packet/tcp_coalesce.h"
#include "unique_fd.h"

namespace natlb::io {

class FrameSender {
 public:
  static constexpr size_t kBatch = 64;

  // With `coalesceTcp`, consecutive MTU-sized segments of a TCP flow queued between two flushes go
  // out as one GSO super-frame (packet/tcp_coalesce.h). Every frame carries `mark` (SO_MARK; 0: none).
  FrameSender(int ifindex, bool coalesceTcp, uint32_t mark);
  FrameSender(const FrameSender&) = delete;
  FrameSender& operator=(const FrameSender&) = delete;

  // Queues a frame whose virtio-net header sits right in front of it (as in the RX ring).
  // The bytes must stay valid until flush(). Sends by itself when the batch is full.
  void queue(const VirtioNetHeader* vnet, const uint8_t* frame, size_t length);
  // Sends one small frame with an empty vnet header at once (ARP).
  bool sendNow(const uint8_t* frame, size_t length);
  struct FlushResult {
    uint32_t sent;
    uint32_t failed;
    uint64_t bytes;
    uint32_t coalesced;  // segments that went out inside super-frames
  };
  FlushResult flush();

 private:
  static constexpr size_t kOpenGroups = 8;
  struct Group {
    const VirtioNetHeader* vnet;
    std::array<packet::TcpSegment, kBatch> segments;
    size_t count;
    size_t payload;
  };
  void enqueue(const VirtioNetHeader* vnet, size_t length);
  void enqueueSuperFrame(const Group& group);
  void addMessage(iovec* vectors, size_t count, size_t frameLength);
  void sendQueued();
  FlushResult sendBatch();
  void closeGroup(size_t index);
  void closeGroupOf(const uint8_t* frame);
  Group* groupOf(const uint8_t* frame);

  bool coalesceTcp_;
  std::array<Group, kOpenGroups> groups_{};
  size_t openGroups_ = 0;
  std::vector<uint8_t> arena_;
  size_t arenaUsed_ = 0;

  UniqueFd socket_;
  std::vector<iovec> vectors_;  // scatter lists of the queued messages
  size_t vectorsUsed_ = 0;
  std::array<mmsghdr, kBatch> messages_{};
  std::array<uint32_t, kBatch> lengths_{};
  size_t queued_ = 0;
  FlushResult pending_{0, 0, 0, 0};
};

}  // namespace natlb::io
