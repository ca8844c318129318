// The fields of a TCP header that connection tracking needs (sequence, acknowledgement, window, flags,
// payload length, the window-scale option of a SYN); pure, bounds-checked over one parsed frame.
#pragma once
#include <cstdint>
#include <optional>

#include "ipv4_frame.h"

namespace natlb::packet {

constexpr uint8_t kNoWindowScaleOption = 0xff;

struct TcpHeaderFields {
  uint32_t sequence;
  uint32_t acknowledgement;
  uint16_t window;           // as sent: scaled by the sender's shift except on SYN segments
  uint8_t flags;
  uint32_t payloadLength;    // of the whole (super-)frame
  uint8_t windowScale;       // the option's shift (at most 14), kNoWindowScaleOption when absent
};

// nullopt when the TCP header does not fit in the IP payload (data offset below 5 or past its end).
std::optional<TcpHeaderFields> readTcpHeader(const Ipv4FrameView& view);

}  // namespace natlb::packet
