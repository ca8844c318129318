// Which timeout profile (flow/timeout_profiles.h) holds each service's own timeouts. Services with the
// same timeouts share a profile, so 255 profiles serve any number of services; a service whose
// timeouts change moves to another profile, and the engine moves its flows with it.
#pragma once
#include <map>
#include <set>
#include <vector>

#include "../flow/timeout_profiles.h"
#include "service_table.h"

namespace natlb::engine {

class TimeoutProfileAssignment {
 public:
  explicit TimeoutProfileAssignment(flow::TimeoutProfiles& profiles) : profiles_(profiles) {}

  // Sets each of `incoming`'s timeouts.profile: the profile that holds its timeouts already, else a
  // new one, written before any flow can name it. `kept`: the services the next snapshot keeps as
  // they are. Throws std::invalid_argument, changing nothing, when the next snapshot's services have
  // more distinct timeouts than there are profiles.
  void assign(std::vector<Service>& incoming, const std::vector<SharedService>& kept);
  // Frees the profiles no service of `current` uses (they fall back to the global timeouts, for any
  // flow that still names one while the engine moves it).
  void release(const ServiceTable& current);

 private:
  uint8_t allocate(const flow::StateSeconds& seconds, const std::set<flow::StateSeconds>& wanted);

  flow::TimeoutProfiles& profiles_;
  std::map<flow::StateSeconds, uint8_t> byTimeouts_;
  // Profiles are handed out round robin, so a freed one is reused last: a worker still on the previous
  // snapshot may create a flow with it for a moment after the engine moved that service's flows.
  uint8_t lastAllocated_ = flow::kGlobalTimeoutProfile;
};

// Whether a service has timeouts of its own (any state not left to the global value).
bool hasOwnTimeouts(const flow::StateSeconds& seconds);

}  // namespace natlb::engine
