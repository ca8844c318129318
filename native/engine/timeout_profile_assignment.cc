#include "timeout_profile_assignment.h"

#include <algorithm>
#include <set>
#include <stdexcept>
#include <string>

namespace natlb::engine {

bool hasOwnTimeouts(const flow::StateSeconds& seconds) {
  return std::any_of(seconds.begin(), seconds.end(), [](uint32_t s) { return s != 0; });
}

void TimeoutProfileAssignment::assign(std::vector<Service>& incoming, const std::vector<SharedService>& kept) {
  std::set<flow::StateSeconds> wanted;
  for (const Service& s : incoming) {
    if (hasOwnTimeouts(s.timeouts.seconds)) wanted.insert(s.timeouts.seconds);
  }
  for (const SharedService& s : kept) {
    if (hasOwnTimeouts(s->timeouts.seconds)) wanted.insert(s->timeouts.seconds);
  }
  constexpr size_t kServiceProfiles = flow::kTimeoutProfileCount - 1;  // profile 0 is the global one
  if (wanted.size() > kServiceProfiles) {
    throw std::invalid_argument(std::to_string(wanted.size()) + " different sets of service timeouts: at most " +
                                std::to_string(kServiceProfiles) + "; give more services the same timeouts");
  }
  for (Service& s : incoming) {
    if (!hasOwnTimeouts(s.timeouts.seconds)) {
      s.timeouts.profile = flow::kGlobalTimeoutProfile;
      continue;
    }
    const auto found = byTimeouts_.find(s.timeouts.seconds);
    s.timeouts.profile = found != byTimeouts_.end() ? found->second : allocate(s.timeouts.seconds, wanted);
  }
}

uint8_t TimeoutProfileAssignment::allocate(const flow::StateSeconds& seconds, const std::set<flow::StateSeconds>& wanted) {
  std::set<uint8_t> taken;
  for (const auto& [timeouts, profile] : byTimeouts_) taken.insert(profile);
  uint8_t profile = flow::kGlobalTimeoutProfile;
  for (size_t step = 1; step < flow::kTimeoutProfileCount; ++step) {
    const auto candidate = uint8_t((lastAllocated_ + step) % flow::kTimeoutProfileCount);
    if (candidate != flow::kGlobalTimeoutProfile && !taken.count(candidate)) {
      profile = candidate;
      break;
    }
  }
  if (profile == flow::kGlobalTimeoutProfile) {
    // Every profile is held, some by timeouts the next snapshot no longer has (wanted fits, so there is
    // one): take it over now rather than at release. Its flows see the new values until the engine
    // moves them, a moment later.
    const auto unwanted = std::find_if(byTimeouts_.begin(), byTimeouts_.end(), [&](const auto& held) { return !wanted.count(held.first); });
    profile = unwanted->second;
    byTimeouts_.erase(unwanted);
  }
  profiles_.set(profile, seconds);
  byTimeouts_[seconds] = profile;
  lastAllocated_ = profile;
  return profile;
}

void TimeoutProfileAssignment::release(const ServiceTable& current) {
  std::set<uint8_t> used;
  for (const SharedService& s : current.services()) used.insert(s->timeouts.profile);
  for (auto it = byTimeouts_.begin(); it != byTimeouts_.end();) {
    if (used.count(it->second)) {
      ++it;
      continue;
    }
    profiles_.set(it->second, flow::StateSeconds{});
    it = byTimeouts_.erase(it);
  }
}

}  // namespace natlb::engine
