// Coalescing of consecutive MTU-sized TCP segments of one flow into one GSO super-frame before
// transmit ("GRO in user space"). The kernel segments it again on egress (or hands it whole to a
// GSO-capable peer), so one send carries up to ~44 segments instead of one: at MTU frames the
// per-frame transmit path, not the rewrite, is the data plane's cost (docs/architecture.md, "Measurements behind the design").
//
// Only segments that GSO can rebuild bit for bit are merged: equal MAC addresses, IPv4 without options or fragmentation,
// TCP with ACK (PSH allowed on the last one), equal TTL/TOS/DF/ack/window/options, consecutive
// sequence numbers and IP ids, all but the last carrying exactly gso_size bytes, and a
// CHECKSUM_PARTIAL checksum (the kernel computes every segment's checksum; frames with a complete
// checksum are sent as they are, so a corrupted one is never re-checksummed).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>

#include "../io/virtio_net_header.h"

namespace natlb::packet {

struct TcpSegment {
  const uint8_t* frame;      // Ethernet frame
  size_t headerLength;       // Ethernet + IPv4 + TCP headers
  size_t payloadLength;
  uint32_t sequence;
  uint16_t ipId;
  uint8_t tcpFlags;
};

constexpr size_t kMaxCoalescedSegmentFrame = 9018;  // jumbo frames at most; larger ones are sent as they are
constexpr size_t kMaxSuperFrameIpLength = 65535;

// The segment view of a frame that may be coalesced, or nullopt.
std::optional<TcpSegment> coalescibleSegment(const uint8_t* frame, size_t frameLength, const io::VirtioNetHeader& vnet);

// Whether `next` may follow `last` in a group that started with `first`, `count` segments so far.
bool canAppend(const TcpSegment& first, const TcpSegment& last, const TcpSegment& next, size_t count,
               size_t groupPayload);

// Writes the super-frame of segments[0..count) into `out` (at least headerLength + payloads bytes)
// and its virtio-net header into `vnet`; returns the frame length.
size_t buildSuperFrame(const TcpSegment* segments, size_t count, uint8_t* out, io::VirtioNetHeader& vnet);

// The same, headers only: writes segments[0].headerLength bytes into `out` and the virtio-net header;
// returns the whole super-frame's length. The payloads follow in place (the sender's scatter list).
size_t buildSuperFrameHeader(const TcpSegment* segments, size_t count, uint8_t* out, io::VirtioNetHeader& vnet);

}  // namespace natlb::packet
