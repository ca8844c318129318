// Where a flow's TCP tracking (tcp_window.h) lives in its entry: each side read into a TcpSide and
// written back, and what the kernel fast path tracked of an offloaded flow merged in.
#pragma once
#include "flow_table.h"
#include "offloaded_flows.h"
#include "tcp_state.h"
#include "tcp_window.h"

namespace natlb::flow {

struct SideFields {
  size_t sequenceEnd, window, windowScale;
  uint16_t trackedFlag;
};

constexpr SideFields fieldsOf(Direction side) {
  return side == Direction::FromClient
             ? SideFields{entry::kClientSequenceEnd, entry::kClientWindow, entry::kClientWindowScale, flags::kClientTracked}
             : SideFields{entry::kRealSequenceEnd, entry::kRealWindow, entry::kRealWindowScale, flags::kRealTracked};
}

inline TcpSide readSide(const FlowEntry& e, Direction side) {
  const SideFields f = fieldsOf(side);
  TcpSide out;
  out.sequenceEnd = e.load<uint32_t>(f.sequenceEnd);
  out.windowBytes = e.load<uint32_t>(f.window);
  out.windowScale = e.load<uint8_t>(f.windowScale);
  out.seen = (e.flags() & f.trackedFlag) != 0;
  if (side == Direction::FromReal && (e.flags() & flags::kRealStrayAck)) out.strayAcknowledgement = e.load<uint32_t>(entry::kRealStrayAck);
  return out;
}

// Stores what an untracked segment left of its sender (afterUntrackedSegment): the real's bare ACK
// before its SYN-ACK. The field first, then the flag that makes readers take it (the flag is cleared
// whenever the entry is linked again).
inline void writeUntrackedSide(const FlowEntry& e, Direction which, const TcpSide& side) {
  if (which != Direction::FromReal || !side.strayAcknowledgement) return;
  e.store<uint32_t>(entry::kRealStrayAck, *side.strayAcknowledgement);
  e.setFlags(flags::kRealStrayAck);
}

// Stores a side after a tracked segment: its first one as it is, later ones as raises (the
// housekeeper may raise it too, from the kernel's tracking).
inline void writeSide(const FlowEntry& e, Direction which, const TcpSide& side) {
  const SideFields f = fieldsOf(which);
  e.store<uint8_t>(f.windowScale, side.windowScale);
  if (!(e.flags() & f.trackedFlag)) {
    e.store<uint32_t>(f.sequenceEnd, side.sequenceEnd);
    e.store<uint32_t>(f.window, side.windowBytes);
    e.setFlags(f.trackedFlag);
    return;
  }
  e.raiseSequence(f.sequenceEnd, side.sequenceEnd);
  e.raise32(f.window, side.windowBytes);
}

// Folds in what the kernel forwarded of an offloaded flow.
inline void mergeKernelTracking(const FlowEntry& e, const OffloadedActivity& kernel) {
  // Offloaded flows are established: both sides are tracked.
  const TcpSide client = readSide(e, Direction::FromClient);
  const TcpSide real = readSide(e, Direction::FromReal);
  e.raiseSequence(entry::kClientSequenceEnd, kernel.clientSequenceEnd);
  e.raiseSequence(entry::kRealSequenceEnd, kernel.realSequenceEnd);
  e.raise32(entry::kClientWindow, uint32_t(std::min<uint64_t>(uint64_t{kernel.clientWindowField} << effectiveScale(client, real), 0x7fffffff)));
  e.raise32(entry::kRealWindow, uint32_t(std::min<uint64_t>(uint64_t{kernel.realWindowField} << effectiveScale(real, client), 0x7fffffff)));
}

}  // namespace natlb::flow
