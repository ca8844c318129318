// TCP tracking of a NAT flow (native/flow/tcp_window.h, tcp_state.h) fed with the header the worker
// reads off the wire (packet/tcp_header.h). Checked:
//   - a RST or FIN is never judged "pass only", and an out-of-window verdict is only for them;
//   - a RST is tracked only on an exact match: the sender's sequence end, or, before the sender
//     sent anything, a RST+ACK acknowledging exactly what the other side sent (RFC 5961);
//   - after a segment: the side has been seen, its window is the larger of before and now and at most
//     2^31 - 1, its shift is the SYN's (0..14 or none), and its sequence end only moves forward
//     (or takes the segment's end as its first);
//   - the state machine: a RST closes, a FIN never reopens, flags are only added.
// Input: [sender 10][receiver 10][state][flow flags 2][direction][frame...], each side as
// [sequence end 4][window 4][shift][seen].
#include "flow/tcp_state.h"
#include "flow/tcp_window.h"
#include "fuzz_input.h"
#include "invariant.h"
#include "packet/ipv4_frame.h"
#include "packet/tcp_header.h"

using namespace natlb;
using namespace natlb::fuzz;

namespace {

flow::TcpSide sideFrom(FuzzInput& input) {
  flow::TcpSide side;
  side.sequenceEnd = input.u32();
  side.windowBytes = input.u32() & 0x7fffffff;  // what writeSide can have stored
  const uint8_t shift = input.byte();
  side.windowScale = shift > 14 ? flow::kNoWindowScale : shift;
  side.seen = input.byte() & 1;
  return side;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  const flow::TcpSide sender = sideFrom(input);
  const flow::TcpSide receiver = sideFrom(input);
  const auto state = flow::FlowState(input.byte() % 6);
  const uint16_t flowFlags = input.u16();
  const auto direction = (input.byte() & 1) ? flow::Direction::FromReal : flow::Direction::FromClient;
  size_t frameLength = input.remaining();
  const uint8_t* bytes = input.take(frameLength);
  ExactBuffer frame(bytes, frameLength);
  const packet::ParsedFrame parsed = packet::parseIpv4Frame(frame.get(), frame.size);
  if (parsed.error != packet::ParseError::None) return 0;
  const auto segment = packet::readTcpHeader(parsed.view);
  if (!segment) return 0;

  const bool reset = segment->flags & packet::kTcpRst;
  const bool finish = segment->flags & packet::kTcpFin;
  // A synced or picked-up flow (kMidStreamStart) starts a side's tracking at whatever it sends first.
  const flow::SegmentVerdict verdict =
      flow::judgeSegment(sender, receiver, *segment, (flowFlags & flow::flags::kMidStreamStart) != 0);
  if (verdict == flow::SegmentVerdict::OutOfWindow) require(reset || finish, "only a RST or FIN is dropped as out of window");
  if (reset && verdict == flow::SegmentVerdict::Track) {
    const bool exact = sender.seen ? segment->sequence == sender.sequenceEnd
                                   : (segment->flags & packet::kTcpAck) && receiver.seen && segment->acknowledgement == receiver.sequenceEnd;
    require(exact, "a RST is tracked only on an exact match (RFC 5961)");
  }

  flow::TcpSide after = flow::afterSegment(sender, receiver, *segment);
  if (kMutant) after.windowBytes = after.windowBytes / 2;  // a tracker that shrinks the window
  const bool syn = segment->flags & packet::kTcpSyn;
  require(after.seen, "a side that sent a segment has been seen");
  require(after.windowBytes >= sender.windowBytes && after.windowBytes <= 0x7fffffff, "the window only grows, below 2^31");
  require(after.windowBytes >= std::min<uint32_t>(syn ? segment->window : 0, 0x7fffffff), "a SYN's window is taken as it is");
  require(after.windowScale == (syn ? segment->windowScale : sender.windowScale), "the shift is the SYN's");
  require(after.windowScale <= 14 || after.windowScale == flow::kNoWindowScale, "a shift is 0..14 or none");
  if (sender.seen) require(!flow::sequenceAfter(sender.sequenceEnd, after.sequenceEnd), "the sequence end only moves forward");

  const flow::TcpTransition next = flow::advanceTcpState(state, flowFlags, direction, segment->flags);
  require((next.flags & flowFlags) == flowFlags, "flow flags are only added");
  if (reset) require(next.state == flow::FlowState::Close, "a RST closes the flow");
  if (finish && !reset) require(next.state != flow::FlowState::Established && next.state != flow::FlowState::SynRecv, "a FIN never reopens");
  return 0;
}
