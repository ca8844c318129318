// Idle timeouts by flow state, in profiles: profile 0 holds the global timeouts (config `timeouts`),
// the others a service's own (config services[].timeouts). A flow carries its profile's number
// (entry::kTimeoutProfile), so the sweep judges it by its service's timeouts without looking the
// service up. A service's profile leaves 0 where it has no value of its own: the global one applies,
// also after the global timeouts change.
#pragma once
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "flow_layout.h"

namespace natlb::flow {

constexpr size_t kTimeoutProfileCount = 256;  // what the entry's u8 can name
constexpr uint8_t kGlobalTimeoutProfile = 0;

// Seconds by FlowState; 0 in a service's profile: the global value.
using StateSeconds = std::array<uint32_t, kFlowStateCount>;

// The timeouts by their config names (config `timeouts`), in seconds; the defaults are IPVS's.
struct TimeoutSeconds {
  uint32_t tcpSynRecv = 60;
  uint32_t tcpEstablished = 900;
  uint32_t tcpFinWait = 120;
  uint32_t tcpTimeWait = 120;
  uint32_t tcpClose = 10;
  uint32_t udp = 300;
};

// The same by flow state, as the sweep reads them (a reset flow and one without state: tcpClose).
constexpr StateSeconds secondsByState(const TimeoutSeconds& t) {
  StateSeconds seconds{};
  seconds[size_t(FlowState::None)] = t.tcpClose;
  seconds[size_t(FlowState::SynRecv)] = t.tcpSynRecv;
  seconds[size_t(FlowState::Established)] = t.tcpEstablished;
  seconds[size_t(FlowState::FinWait)] = t.tcpFinWait;
  seconds[size_t(FlowState::TimeWait)] = t.tcpTimeWait;
  seconds[size_t(FlowState::Close)] = t.tcpClose;
  seconds[size_t(FlowState::Udp)] = t.udp;
  return seconds;
}

// A service's timeouts as the control plane gives them (0: the global value) and the profile that
// holds them (the engine's choice: services with the same timeouts share one).
struct ServiceTimeouts {
  StateSeconds seconds{};
  uint8_t profile = kGlobalTimeoutProfile;
};

class TimeoutProfiles {
 public:
  void set(uint8_t profile, const StateSeconds& seconds) {
    for (size_t state = 0; state < kFlowStateCount; ++state) seconds_[profile][state].store(seconds[state], std::memory_order_relaxed);
  }
  // A state's timeout in a profile, the global one where the profile has none (any state byte,
  // kReleasedState included, gets an answer).
  uint64_t timeoutMs(uint8_t profile, uint8_t state) const {
    const size_t index = state < kFlowStateCount ? state : 0;
    const uint32_t own = seconds_[profile][index].load(std::memory_order_relaxed);
    return uint64_t{own != 0 ? own : seconds_[kGlobalTimeoutProfile][index].load(std::memory_order_relaxed)} * 1000;
  }

 private:
  std::array<std::array<std::atomic<uint32_t>, kFlowStateCount>, kTimeoutProfileCount> seconds_{};
};

}  // namespace natlb::flow
