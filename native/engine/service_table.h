// The services and real servers as the data plane sees them: an immutable snapshot published by the
// control plane. A new snapshot replaces the old one whole, but shares the services that did not
// change with it (a health change rebuilds one service's table, not a thousand). Each service carries the selection
// table its TypeScript scheduling policy computed; the data plane only indexes it, so scheduling a new
// connection never calls into JavaScript.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../flow/flow_table.h"
#include "../flow/persistence_templates.h"

namespace natlb::engine {

// Cursor, Random and Hash index the slots; the least-connection family (IPVS's lc, wlc, sed, nq)
// reads each slot's real's live connection counts (flow_table.h) and weight at the moment of the pick.
enum class PickMode : uint8_t { Cursor, Random, Hash, LeastConnections, WeightedLeastConnections, ShortestExpectedDelay, NeverQueue };

constexpr bool readsConnectionCounts(PickMode mode) { return mode >= PickMode::LeastConnections; }

// The mode the schedulers (src/schedulers/types.ts, PickMode) call `name`: cursor, random, hash, lc,
// wlc, sed, nq.
std::optional<PickMode> pickModeNamed(std::string_view name);

// A real's live connections, as IPVS counts them: active = ESTABLISHED, inactive = any other state.
struct RealLoad {
  uint32_t active = 0;
  uint32_t inactive = 0;
};

struct Service {
  uint32_t vip = 0;
  uint16_t port = 0;
  uint8_t protocol = 0;
  PickMode mode = PickMode::Cursor;
  std::vector<uint16_t> slots;              // indexes into reals
  std::vector<uint16_t> slotWeights;        // the least-connection family: each slot's weight (> 0)
  std::vector<flow::RealEndpoint> reals;
  mutable std::atomic<uint32_t> cursor{0};  // round-robin position, shared by all workers
  flow::ServiceTimeouts timeouts;           // its own idle timeouts, and the profile the engine gave them
  flow::Persistence persistence;            // ipvsadm -p/-M (engine/persistent_scheduling.h)

  Service() = default;
  Service(Service&& other) noexcept
      : vip(other.vip), port(other.port), protocol(other.protocol), mode(other.mode),
        slots(std::move(other.slots)), slotWeights(std::move(other.slotWeights)), reals(std::move(other.reals)),
        cursor(other.cursor.load()), timeouts(other.timeouts), persistence(std::move(other.persistence)) {}
};

// The slot IPVS's least-connection schedulers choose, from each slot's load and weight (pure: the
// caller reads the loads). Ties go to the earlier slot, as in IPVS. -1 when there are no slots.
int pickLeastLoaded(PickMode mode, const RealLoad* loads, const uint16_t* weights, size_t count);

// Picks the real server for a new connection; nullptr when the service has no usable real. The
// least-connection family reads the reals' counts from `flows`.
const flow::RealEndpoint* pickReal(const Service& service, uint32_t clientIp, uint64_t randomValue, const flow::FlowTable& flows);

using SharedService = std::shared_ptr<const Service>;

class ServiceTable {
 public:
  // `generation` numbers the snapshots the control plane published (it can watch a change arrive).
  ServiceTable(std::vector<SharedService> services, uint64_t generation);

  const Service* find(uint32_t vip, uint16_t port, uint8_t protocol) const;
  const std::vector<SharedService>& services() const { return services_; }
  uint64_t generation() const { return generation_; }
  const std::vector<uint32_t>& vips() const { return vips_; }
  std::vector<uint16_t> realPorts(uint8_t protocol) const;
  std::vector<uint32_t> realIps(uint8_t protocol) const;

 private:
  static uint64_t keyOf(uint32_t vip, uint16_t port, uint8_t protocol) {
    return (uint64_t{vip} << 24) | (uint64_t{port} << 8) | protocol;
  }
  std::vector<SharedService> services_;
  uint64_t generation_;
  std::unordered_map<uint64_t, size_t> index_;
  std::vector<uint32_t> vips_;
};

}  // namespace natlb::engine
