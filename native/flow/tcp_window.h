// Sequence-number tracking of a NAT flow, so a blind attacker cannot drive its state: a RST or FIN is
// acted on only when its sequence number fits the connection, as conntrack's window tracking and
// RFC 5961 require of endpoints. Pure: the caller reads each side from the flow entry and writes back
// what `afterSegment` returns (each side has one writer, the worker that receives its segments).
//
// What is checked (the README's "What natlb checks of TCP"):
//   - a side's sequence end is the highest seq + payload (+1 for SYN, +1 for FIN) it has sent;
//   - a segment fits when its sequence number lies within the receiver's window (the largest it
//     advertised, at least 64 KiB) on either side of the sender's sequence end: the range a receiver
//     could still accept with segments in flight. Only fitting segments move the tracking, so spoofed
//     segments with random sequence numbers cannot drag it away; a RST or FIN that does not fit is
//     dropped, any other segment that does not fit is passed on untracked (its receiver drops it);
//   - a side that has sent nothing yet (the real before its SYN-ACK) may only reset by acknowledging
//     exactly what the other side sent (a refused connection's RST+ACK);
//   - a RST closes the flow only when it carries exactly the sender's sequence end (RFC 5961's
//     exact match): an in-window but inexact RST is passed on, and the endpoint answers it with a
//     challenge ACK, but natlb keeps the flow, so a later SYN on the same ports is not re-scheduled;
//   - one RST fits no window and still passes: the client's answer to a bare ACK the real sent instead
//     of its SYN-ACK (a TIME_WAIT on the same tuple that took the SYN as old), whose sequence number is
//     that ACK's acknowledgement (RFC 793). It ends the TIME_WAIT; conntrack lets it through as well
//     (nf_conntrack_proto_tcp.c, "RST sent to invalid SYN or ACK"). It is passed on only: the client
//     stays in SYN_SENT, so the flow stays in its handshake and the SYN retransmitted a second later
//     goes on in it, to the same real from the same (full-NAT) local port, whose TIME_WAIT is gone. Had
//     it closed the flow, that SYN would start a new one: full NAT's next local port, maybe in TIME_WAIT too.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>

#include "../packet/tcp_header.h"
#include "../packet/wire.h"
#include "flow_layout.h"

namespace natlb::flow {

struct TcpSide {
  uint32_t sequenceEnd = 0;
  uint32_t windowBytes = 0;            // largest window advertised, in bytes
  uint8_t windowScale = kNoWindowScale;  // the shift its SYN offered
  bool seen = false;                   // it has sent at least one segment
  // Before it was seen: the acknowledgement of the last bare ACK it sent (see afterUntrackedSegment).
  std::optional<uint32_t> strayAcknowledgement;
};

// Windows smaller than this are not trusted to bound the check (a window may open before we see it).
constexpr uint32_t kMinimumCheckedWindow = 65535;

constexpr bool sequenceAfter(uint32_t a, uint32_t b) { return int32_t(a - b) > 0; }

// The window shift that applies to `side`'s non-SYN segments: its own offer when both sides offered
// one (RFC 7323), otherwise none.
constexpr uint8_t effectiveScale(const TcpSide& side, const TcpSide& other) {
  return side.windowScale != kNoWindowScale && other.windowScale != kNoWindowScale ? side.windowScale : 0;
}

// The sender's side after it sent `segment`.
constexpr TcpSide afterSegment(TcpSide sender, const TcpSide& receiver, const packet::TcpHeaderFields& segment) {
  const bool syn = segment.flags & packet::kTcpSyn;
  const uint32_t end = segment.sequence + segment.payloadLength + (syn ? 1 : 0) + ((segment.flags & packet::kTcpFin) ? 1 : 0);
  if (!sender.seen || sequenceAfter(end, sender.sequenceEnd)) sender.sequenceEnd = end;
  if (syn) sender.windowScale = segment.windowScale;
  // A SYN's window is never scaled; later ones are, once both sides offered a shift.
  const uint64_t window = syn ? segment.window : uint64_t{segment.window} << effectiveScale(sender, receiver);
  sender.windowBytes = uint32_t(std::min<uint64_t>(std::max<uint64_t>(sender.windowBytes, window), 0x7fffffff));
  sender.seen = true;
  return sender;
}

// The sender's side after a segment that was not tracked: a side not seen yet that sends a bare ACK
// (a TIME_WAIT answering the other side's SYN with its old connection's ACK) has its acknowledgement
// kept, the one sequence number the other side's reset to it may carry (judgeSegment).
constexpr TcpSide afterUntrackedSegment(TcpSide sender, const packet::TcpHeaderFields& segment) {
  const uint8_t handshakeFlags = packet::kTcpSyn | packet::kTcpRst | packet::kTcpFin | packet::kTcpAck;
  if (!sender.seen && (segment.flags & handshakeFlags) == packet::kTcpAck) sender.strayAcknowledgement = segment.acknowledgement;
  return sender;
}

// A direct-routing flow shows natlb the client's segments alone (tcp_state.h): nothing is judged, but
// two numbers are kept, the ones a reset to each end must carry (deadRealFlows "reset").
// The client's side after its segment: its sequence end, raised (windows stay untracked).
constexpr TcpSide afterClientOnlySegment(TcpSide client, const packet::TcpHeaderFields& segment) {
  const uint32_t end = segment.sequence + segment.payloadLength + ((segment.flags & packet::kTcpSyn) ? 1 : 0) +
                       ((segment.flags & packet::kTcpFin) ? 1 : 0);
  if (!client.seen || sequenceAfter(end, client.sequenceEnd)) client.sequenceEnd = end;
  client.seen = true;
  return client;
}

// The real's side as the client's segment shows it: its sequence end is the client's latest
// acknowledgement, the client's next expected sequence number (RFC 5961: a reset carrying exactly that
// takes at once). A dead real sends nothing more, so the client's last ACK is that number.
constexpr TcpSide acknowledgedByClient(TcpSide real, const packet::TcpHeaderFields& segment) {
  if ((segment.flags & (packet::kTcpAck | packet::kTcpRst)) != packet::kTcpAck) return real;
  if (!real.seen || sequenceAfter(segment.acknowledgement, real.sequenceEnd)) real.sequenceEnd = segment.acknowledgement;
  real.seen = true;
  return real;
}

enum class SegmentVerdict : uint8_t {
  Track,        // fits: forward it, track it, let it change the flow's state
  PassOnly,     // forward it, but it neither moves the tracking nor the state (an in-window inexact
                // RST, a segment outside the window that is not a RST or FIN: the endpoint judges it;
                // the client's RST to a TIME_WAIT's bare ACK)
  OutOfWindow,  // a RST or FIN that does not fit: drop it
};

// Judges a segment from `sender` to `receiver`, as they were before it. `midStreamStart`: the flow's
// handshake was not seen here (flags::kMidStreamStart: synced from a peer, or picked up mid-stream), so
// a side's first segment need not be its SYN: tracking starts from whatever the side sends, but a RST,
// which could be blind, is passed on for its endpoint to judge and changes nothing here.
constexpr SegmentVerdict judgeSegment(const TcpSide& sender, const TcpSide& receiver, const packet::TcpHeaderFields& segment,
                                      bool midStreamStart = false) {
  const bool reset = segment.flags & packet::kTcpRst;
  const bool stateChanging = reset || (segment.flags & packet::kTcpFin);
  if (!sender.seen && midStreamStart) return reset ? SegmentVerdict::PassOnly : SegmentVerdict::Track;
  if (!sender.seen) {
    // Its first segment is its SYN (or SYN-ACK); a reset only as the refusal of the other side's SYN:
    // RST+ACK acknowledging exactly what that side sent.
    if (reset) {
      const bool refusal = (segment.flags & packet::kTcpAck) && receiver.seen && segment.acknowledgement == receiver.sequenceEnd;
      return refusal ? SegmentVerdict::Track : SegmentVerdict::OutOfWindow;
    }
    if (segment.flags & packet::kTcpSyn) return SegmentVerdict::Track;
    return stateChanging ? SegmentVerdict::OutOfWindow : SegmentVerdict::PassOnly;
  }
  // The client's reset answering the real's bare ACK (RFC 793: seq = that ACK's acknowledgement):
  // outside any window, but it must reach the TIME_WAIT that sent the ACK, or every retransmitted SYN
  // meets that again. Only before the real has sent anything else, and only that exact number. It
  // neither closes the flow nor moves the client's tracking (its sequence end stays its SYN's): the
  // client's retransmitted SYN continues this flow, on the tuple whose TIME_WAIT the reset ended.
  if (reset && !receiver.seen && receiver.strayAcknowledgement == segment.sequence) return SegmentVerdict::PassOnly;
  const uint32_t window = std::max(receiver.windowBytes, kMinimumCheckedWindow);
  const int64_t offset = int64_t(int32_t(segment.sequence - sender.sequenceEnd));
  if (offset < -int64_t{window} || offset > int64_t{window}) {
    return stateChanging ? SegmentVerdict::OutOfWindow : SegmentVerdict::PassOnly;
  }
  if (reset && offset != 0) return SegmentVerdict::PassOnly;
  return SegmentVerdict::Track;
}

}  // namespace natlb::flow
