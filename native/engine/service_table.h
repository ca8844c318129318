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
#include "../flow/local_ports.h"
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

// A real's connection limits (ipvsadm -x / -y, keepalived uthreshold / lthreshold). maxConns 0: none.
struct RealLimit {
  uint32_t maxConns = 0;
  uint32_t minConnsToResume = 0;  // 0: below 3/4 of maxConns
};

// IPVS's overload hysteresis (ip_vs_conn.c, ip_vs_bind_dest / ip_vs_unbind_dest): a real is overloaded
// once its connections (active + inactive) reach maxConns, and stays so until they fall below
// minConnsToResume (or, when that is 0, below 3/4 of maxConns).
constexpr bool nextOverloaded(bool overloaded, uint32_t connections, RealLimit limit) {
  if (limit.maxConns == 0) return false;
  if (connections >= limit.maxConns) return true;
  if (!overloaded) return false;
  if (limit.minConnsToResume != 0) return connections >= limit.minConnsToResume;
  return uint64_t{connections} * 4 >= uint64_t{limit.maxConns} * 3;
}

// The client of a new connection, as the hash modes read it.
struct Client {
  uint32_t ip = 0;
  uint16_t port = 0;
};

struct Service {
  uint32_t vip = 0;
  uint16_t port = 0;
  uint8_t protocol = 0;
  // Direct routing (LVS-DR): a new flow's frames reach its real with only the MAC changed (worker.cc).
  bool directRouting = false;
  // Full NAT (config forwarding "fullnat"): the local addresses new flows come from, and their ports.
  // The pool without fullNat: only reals with their own forwarding "fullnat" use it (realModes).
  bool fullNat = false;
  std::vector<uint32_t> localAddresses;
  flow::LocalPortRange localPorts{};
  PickMode mode = PickMode::Cursor;
  bool hashPort = false;      // Hash: the client port is hashed with its address (IPVS sh-port, mh-port)
  bool hashFallback = false;  // Hash: a full real's clients walk on to the next slots' reals (sh-fallback, mh-fallback)
  // Hash: a TCP segment without SYN of an unknown flow gets a flow to the real the hash picks (a flow
  // that moved here from another instance behind ECMP), where it would otherwise be dropped (worker.cc).
  bool midStreamPickUp = false;
  std::vector<uint16_t> slots;              // indexes into reals
  std::vector<uint16_t> slotWeights;        // the least-connection family: each slot's weight (> 0)
  std::vector<flow::RealEndpoint> reals;    // the configured reals, the draining ones, then the fallback real
  std::vector<RealLimit> limits;            // one per real; empty when no real has a limit
  // One flow mode (flow::flags::kDirectRouting, kFullNat or 0) per real, set by setRealModes: a real's
  // own forwarding (config reals[].forwarding) or the service's. Empty when every real has the service's.
  std::vector<uint16_t> realModes;
  bool anyDirectRouting = false;            // some real's (or the service's) mode is direct routing
  std::optional<uint16_t> fallback;         // index into reals of the fallback real (keepalived's sorry_server)
  size_t slotRealCount = 0;                 // distinct reals in slots (setLimits counts them; the slot walk stops there)
  mutable std::atomic<uint32_t> cursor{0};  // round-robin position, shared by all workers
  flow::ServiceTimeouts timeouts;           // its own idle timeouts, and the profile the engine gave them
  flow::Persistence persistence;            // ipvsadm -p/-M (engine/persistent_scheduling.h)
  // One flag per real with a limit, shared by all workers (the hysteresis needs to remember); written
  // only when it changes, so the workers' picks do not bounce its cache line.
  mutable std::unique_ptr<std::atomic<bool>[]> overloaded;

  Service() = default;
  Service(Service&& other) noexcept
      : vip(other.vip), port(other.port), protocol(other.protocol), directRouting(other.directRouting), fullNat(other.fullNat),
        localAddresses(std::move(other.localAddresses)), localPorts(other.localPorts), mode(other.mode), hashPort(other.hashPort),
        hashFallback(other.hashFallback), midStreamPickUp(other.midStreamPickUp), slots(std::move(other.slots)), slotWeights(std::move(other.slotWeights)),
        reals(std::move(other.reals)), limits(std::move(other.limits)), realModes(std::move(other.realModes)),
        anyDirectRouting(other.anyDirectRouting), fallback(other.fallback), slotRealCount(other.slotRealCount),
        cursor(other.cursor.load()), timeouts(other.timeouts), persistence(std::move(other.persistence)),
        overloaded(std::move(other.overloaded)) {}

  flow::LocalSourcePool localSourcePool() const {
    return {localAddresses.data(), uint32_t(localAddresses.size()), localPorts};
  }
  // The service's own flow mode (the fallback real's, and every real's without one of its own).
  uint16_t serviceMode() const {
    return directRouting ? flow::flags::kDirectRouting : fullNat ? flow::flags::kFullNat : uint16_t{0};
  }
  // Sets the reals' modes (one per real, after reals); keeps none when all are the service's.
  void setRealModes(std::vector<uint16_t> perReal);
  // The flow mode of a new flow to `real` (one of reals, found by id; a real not found: the service's).
  uint16_t modeOf(const flow::RealEndpoint& real) const;
  // Sets the limits (one per real; after reals and slots) and clears the overload flags.
  void setLimits(std::vector<RealLimit> perReal);
  // Whether reals[index] is overloaded now, given its connections: the flag, moved by the hysteresis.
  bool isOverloaded(size_t index, uint32_t connections) const;
  // The cursor and the overload flags of `previous` (the same service's last snapshot), by real id.
  void carryRunningState(const Service& previous);
};

// The slot IPVS's least-connection schedulers choose, from each slot's load and weight (pure: the
// caller reads the loads). Ties go to the earlier slot, as in IPVS. -1 when there are no slots.
int pickLeastLoaded(PickMode mode, const RealLoad* loads, const uint16_t* weights, size_t count);

// What a new connection gets: a real, or why none. Fallback: every real is down, drained or full, and
// the service's fallback real takes it. RealsFull: reals could take it but for their limits, and there
// is no fallback real.
struct PickOutcome {
  enum class Kind : uint8_t { Real, Fallback, NoReal, RealsFull };
  Kind kind = Kind::NoReal;
  const flow::RealEndpoint* real = nullptr;
};

// Picks the real server for a new connection. The least-connection family and the limits read the
// reals' counts from `flows`.
PickOutcome pickReal(const Service& service, Client client, uint64_t randomValue, const flow::FlowTable& flows);

// The same choice with the reals' loads given, one per entry of service.reals (the unit tests').
PickOutcome pickRealWithLoads(const Service& service, Client client, uint64_t randomValue, const RealLoad* loads);

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
  // The ids of the reals overloaded now, their flags brought up to date with their counts first (so a
  // real whose connections ended shows as resumed before its next new connection).
  std::vector<uint16_t> overloadedRealIds(const flow::FlowTable& flows) const;

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
