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

// A direct-routing flow's client segment (tcp_window.h: afterClientOnlySegment, acknowledgedByClient):
// the client's sequence end and its latest acknowledgement, in the fields flow_layout.h gives them.
// Written only when they move, so most segments cost two loads.
inline void trackClientOnly(const FlowEntry& e, const packet::TcpHeaderFields& segment) {
  const TcpSide client = readSide(e, Direction::FromClient);
  const TcpSide clientAfter = afterClientOnlySegment(client, segment);
  if (!client.seen || clientAfter.sequenceEnd != client.sequenceEnd) writeSide(e, Direction::FromClient, clientAfter);
  const TcpSide real = readSide(e, Direction::FromReal);
  const TcpSide realAfter = acknowledgedByClient(real, segment);
  if (realAfter.seen && (!real.seen || realAfter.sequenceEnd != real.sequenceEnd)) writeSide(e, Direction::FromReal, realAfter);
}

// Folds in what the kernel forwarded of an offloaded flow.
inline void mergeKernelTracking(const FlowEntry& e, const OffloadedActivity& kernel) {
  if (e.flags() & flags::kDirectRouting) {
    // The client's side alone: its sequence end, and its latest acknowledgement (reported as the real's
    // sequence end, as the entry keeps it). Only over values user space had when it handed the flow over.
    if (e.flags() & flags::kClientTracked) e.raiseSequence(entry::kClientSequenceEnd, kernel.clientSequenceEnd);
    if (e.flags() & flags::kRealTracked) e.raiseSequence(entry::kRealSequenceEnd, kernel.realSequenceEnd);
    return;
  }
  // Offloaded flows are established: both sides are tracked.
  const TcpSide client = readSide(e, Direction::FromClient);
  const TcpSide real = readSide(e, Direction::FromReal);
  e.raiseSequence(entry::kClientSequenceEnd, kernel.clientSequenceEnd);
  e.raiseSequence(entry::kRealSequenceEnd, kernel.realSequenceEnd);
  e.raise32(entry::kClientWindow, uint32_t(std::min<uint64_t>(uint64_t{kernel.clientWindowField} << effectiveScale(client, real), 0x7fffffff)));
  e.raise32(entry::kRealWindow, uint32_t(std::min<uint64_t>(uint64_t{kernel.realWindowField} << effectiveScale(real, client), 0x7fffffff)));
}

}  // namespace natlb::flow
