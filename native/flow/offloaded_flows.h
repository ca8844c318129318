// Flows whose established segments the kernel forwards (entry flag kOffloaded, set by the worker that
// hands them over). The workers no longer see those segments, so the flow map asks the kernel how
// active they are (for expiry and per-flow counters) and takes them back from the kernel when it
// removes them. Implemented by the engine over the kernel fast path (engine/kernel_offload.h).
#pragma once
#include <cstdint>
#include <optional>

namespace natlb::flow {

class FlowEntry;

struct OffloadedActivity {
  uint64_t lastSeenMs;  // CLOCK_MONOTONIC, as the entry's kLastSeenMs
  uint64_t packetsIn, bytesIn, packetsOut, bytesOut;  // what the kernel forwarded since the hand-over
  // TCP tracking of what it forwarded (kernel_flow.h): sequence ends and unscaled window fields.
  uint32_t clientSequenceEnd, realSequenceEnd, clientWindowField, realWindowField;
};

// What a read-back found the kernel forwarded of one flow since the previous read-back.
struct KernelTrafficAdded {
  uint64_t packetsIn, bytesIn, packetsOut, bytesOut;
};

class OffloadedFlows {
 public:
  virtual ~OffloadedFlows() = default;
  virtual std::optional<OffloadedActivity> activityOf(const FlowEntry& entry) = 0;
  virtual void withdraw(const FlowEntry& entry) = 0;
  // Each increment of a flow's kernel counts, once, whichever thread read it back: the engine adds it
  // to the flow's real's totals (engine/real_stats.h).
  virtual void counted(uint16_t /*realId*/, const KernelTrafficAdded& /*added*/) {}
};

}  // namespace natlb::flow
