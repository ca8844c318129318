#include "service_table.h"

#include <algorithm>
#include <bitset>
#include <utility>
#include <set>

namespace natlb::engine {

std::optional<PickMode> pickModeNamed(std::string_view name) {
  constexpr std::pair<std::string_view, PickMode> kNames[] = {
      {"cursor", PickMode::Cursor},
      {"random", PickMode::Random},
      {"hash", PickMode::Hash},
      {"lc", PickMode::LeastConnections},
      {"wlc", PickMode::WeightedLeastConnections},
      {"sed", PickMode::ShortestExpectedDelay},
      {"nq", PickMode::NeverQueue},
  };
  for (const auto& [text, mode] : kNames) {
    if (text == name) return mode;
  }
  return std::nullopt;
}

int pickLeastLoaded(PickMode mode, const RealLoad* loads, const uint16_t* weights, size_t count) {
  // IPVS weighs an active connection 256 times an inactive one (ip_vs_dest_conn_overhead).
  auto overhead = [&](size_t i) { return (uint64_t{loads[i].active} << 8) + loads[i].inactive; };
  int best = -1;
  uint64_t bestCost = 0;
  uint64_t bestWeight = 1;
  for (size_t i = 0; i < count; ++i) {
    if (weights[i] == 0) continue;  // weight 0 takes no new connection, whatever the formula
    uint64_t cost = 0;
    uint64_t weight = 1;
    switch (mode) {
      case PickMode::LeastConnections:
        cost = overhead(i);
        break;
      case PickMode::WeightedLeastConnections:
        cost = overhead(i);
        weight = weights[i];
        break;
      case PickMode::NeverQueue:
        // A real with nothing active takes the connection at once (ip_vs_nq.c).
        if (loads[i].active == 0) return int(i);
        [[fallthrough]];
      case PickMode::ShortestExpectedDelay:
        cost = uint64_t{loads[i].active} + 1;  // the expected delay of one more connection
        weight = weights[i];
        break;
      default:
        return -1;
    }
    // cost / weight < bestCost / bestWeight, without division.
    if (best < 0 || cost * bestWeight < bestCost * weight) {
      best = int(i);
      bestCost = cost;
      bestWeight = weight;
    }
  }
  return best;
}

void Service::setRealModes(std::vector<uint16_t> perReal) {
  const uint16_t own = serviceMode();
  const bool mixed = std::any_of(perReal.begin(), perReal.end(), [own](uint16_t m) { return m != own; });
  anyDirectRouting = directRouting || std::any_of(perReal.begin(), perReal.end(), [](uint16_t m) { return m == flow::flags::kDirectRouting; });
  realModes = mixed ? std::move(perReal) : std::vector<uint16_t>{};
}

uint16_t Service::modeOf(const flow::RealEndpoint& real) const {
  // A linear walk only in services that mix modes, once per new flow; ids are unique within a service.
  for (size_t i = 0; i < realModes.size() && i < reals.size(); ++i) {
    if (reals[i].id == real.id) return realModes[i];
  }
  return serviceMode();
}

void Service::setLimits(std::vector<RealLimit> perReal) {
  limits = std::move(perReal);
  overloaded = std::make_unique<std::atomic<bool>[]>(limits.size());
  for (size_t i = 0; i < limits.size(); ++i) overloaded[i].store(false, std::memory_order_relaxed);
  std::vector<bool> seen(reals.size());
  slotRealCount = 0;
  for (uint16_t real : slots) {
    if (!seen[real]) ++slotRealCount;
    seen[real] = true;
  }
}

bool Service::isOverloaded(size_t index, uint32_t connections) const {
  if (index >= limits.size() || limits[index].maxConns == 0) return false;
  std::atomic<bool>& flag = overloaded[index];
  const bool was = flag.load(std::memory_order_relaxed);
  const bool now = nextOverloaded(was, connections, limits[index]);
  if (now != was) flag.store(now, std::memory_order_relaxed);
  return now;
}

void Service::carryRunningState(const Service& previous) {
  cursor.store(previous.cursor.load(std::memory_order_relaxed), std::memory_order_relaxed);
  if (limits.empty() || previous.limits.empty()) return;
  std::unordered_map<uint16_t, uint32_t> overloadedAt;  // real id -> the maxConns it became full at
  for (size_t i = 0; i < previous.limits.size() && i < previous.reals.size(); ++i) {
    if (previous.overloaded[i].load(std::memory_order_relaxed)) overloadedAt.emplace(previous.reals[i].id, previous.limits[i].maxConns);
  }
  for (size_t i = 0; i < limits.size() && i < reals.size(); ++i) {
    const auto found = overloadedAt.find(reals[i].id);
    // A raised limit clears the flag, as ip_vs_ctl.c does when a real's upper threshold is raised.
    if (found != overloadedAt.end() && limits[i].maxConns != 0 && limits[i].maxConns <= found->second) {
      overloaded[i].store(true, std::memory_order_relaxed);
    }
  }
}

namespace {

// Selection tables list usable reals only, at most a service's reals (the config caps those).
constexpr size_t kMaxLeastLoadedSlots = 1024;
// Reals the slot walk remembers as full (more are checked again at each of their slots).
constexpr size_t kRememberedReals = 1024;

uint64_t clientHash(const Service& service, Client client) {
  // Fibonacci hashing of the client address, and of its port with it when the service asks.
  const uint64_t key = service.hashPort ? (uint64_t{client.ip} << 16 | client.port) : client.ip;
  const uint64_t h = key * 0x9e3779b97f4a7c15ULL;
  return h ^ (h >> 29);
}

template <typename LoadOf>
PickOutcome pickFrom(const Service& service, Client client, uint64_t randomValue, LoadOf loadOf) {
  using Kind = PickOutcome::Kind;
  const auto limited = [&](size_t real) { return real < service.limits.size() && service.limits[real].maxConns != 0; };
  const auto full = [&](size_t real) {
    if (!limited(real)) return false;
    const RealLoad load = loadOf(real);
    return service.isOverloaded(real, load.active + load.inactive);
  };
  const auto fallbackOr = [&](Kind why) {
    return service.fallback ? PickOutcome{Kind::Fallback, &service.reals[*service.fallback]} : PickOutcome{why, nullptr};
  };
  const size_t slotCount = service.slots.size();
  if (slotCount == 0) return fallbackOr(Kind::NoReal);
  if (readsConnectionCounts(service.mode)) {
    RealLoad loads[kMaxLeastLoadedSlots];
    uint16_t weights[kMaxLeastLoadedSlots];
    const size_t count = std::min(slotCount, kMaxLeastLoadedSlots);
    bool anyFull = false;
    for (size_t i = 0; i < count; ++i) {
      const uint16_t real = service.slots[i];
      loads[i] = loadOf(real);
      weights[i] = service.slotWeights[i];
      // IPVS's lc and wlc pass over an overloaded real: as a weight of 0 does here.
      if (limited(real) && service.isOverloaded(real, loads[i].active + loads[i].inactive)) {
        weights[i] = 0;
        anyFull = true;
      }
    }
    const int chosen = pickLeastLoaded(service.mode, loads, weights, count);
    if (chosen >= 0) return {Kind::Real, &service.reals[service.slots[size_t(chosen)]]};
    return fallbackOr(anyFull ? Kind::RealsFull : Kind::NoReal);
  }
  size_t slot = 0;
  size_t walkFrom = 0;  // where the walk past a full real starts
  switch (service.mode) {
    case PickMode::Cursor:
      slot = service.cursor.fetch_add(1, std::memory_order_relaxed) % slotCount;
      walkFrom = slot + 1;
      break;
    case PickMode::Random:
      slot = randomValue % slotCount;
      walkFrom = slot + 1;
      break;
    case PickMode::Hash: {
      const uint64_t h = clientHash(service, client);
      slot = h % slotCount;
      // From a second hash of the client, as ip_vs_sh.c rehashes with an offset: a table's neighbour
      // slots are the same few reals (sh interleaves them), so a full real's clients would all land on one.
      walkFrom = ((h >> 32) * 0xbf58476d1ce4e5b9ULL >> 17) % slotCount;
      break;
    }
    default:
      return {Kind::NoReal, nullptr};
  }
  if (!full(service.slots[slot])) return {Kind::Real, &service.reals[service.slots[slot]]};
  // Without its fallback flag a hash service sends a full real's clients nowhere else (as IPVS sh and mh).
  if (service.mode == PickMode::Hash && !service.hashFallback) return fallbackOr(Kind::RealsFull);
  // Walk on through the slots' reals: at most once round the table, and no further once every real of
  // the table was found full.
  std::bitset<kRememberedReals> foundFull;
  size_t fullCount = 0;
  const auto remember = [&](uint16_t real) {
    if (real < kRememberedReals && !foundFull.test(real)) {
      foundFull.set(real);
      ++fullCount;
    }
  };
  remember(service.slots[slot]);
  for (size_t step = 0; step < slotCount && fullCount < service.slotRealCount; ++step) {
    const uint16_t real = service.slots[(walkFrom + step) % slotCount];
    if (real < kRememberedReals && foundFull.test(real)) continue;
    if (!full(real)) return {Kind::Real, &service.reals[real]};
    remember(real);
  }
  return fallbackOr(Kind::RealsFull);
}

}  // namespace

PickOutcome pickReal(const Service& service, Client client, uint64_t randomValue, const flow::FlowTable& flows) {
  return pickFrom(service, client, randomValue, [&](size_t real) {
    const uint16_t id = service.reals[real].id;
    return RealLoad{flows.activeFlowsOf(id), flows.inactiveFlowsOf(id)};
  });
}

PickOutcome pickRealWithLoads(const Service& service, Client client, uint64_t randomValue, const RealLoad* loads) {
  return pickFrom(service, client, randomValue, [&](size_t real) { return loads[real]; });
}

ServiceTable::ServiceTable(std::vector<SharedService> services, uint64_t generation)
    : services_(std::move(services)), generation_(generation) {
  std::set<uint32_t> vips;
  index_.reserve(services_.size());
  for (size_t i = 0; i < services_.size(); ++i) {
    const Service& s = *services_[i];
    index_.emplace(keyOf(s.vip, s.port, s.protocol), i);
    vips.insert(s.vip);
  }
  vips_.assign(vips.begin(), vips.end());
}

const Service* ServiceTable::find(uint32_t vip, uint16_t port, uint8_t protocol) const {
  const auto found = index_.find(keyOf(vip, port, protocol));
  return found == index_.end() ? nullptr : services_[found->second].get();
}

// The distinct values of one field of the reals of every service of `protocol`, sorted.
template <typename Field, typename Read>
std::vector<Field> distinctRealFields(const std::vector<SharedService>& services, uint8_t protocol, Read read) {
  std::set<Field> values;
  for (const SharedService& s : services) {
    if (s->protocol != protocol) continue;
    for (const flow::RealEndpoint& real : s->reals) values.insert(read(real));
  }
  return {values.begin(), values.end()};
}

std::vector<uint16_t> ServiceTable::overloadedRealIds(const flow::FlowTable& flows) const {
  std::vector<uint16_t> ids;
  for (const SharedService& s : services_) {
    for (size_t i = 0; i < s->limits.size() && i < s->reals.size(); ++i) {
      const uint16_t id = s->reals[i].id;
      if (s->isOverloaded(i, flows.activeFlowsOf(id) + flows.inactiveFlowsOf(id))) ids.push_back(id);
    }
  }
  return ids;
}

std::vector<uint16_t> ServiceTable::realPorts(uint8_t protocol) const {
  return distinctRealFields<uint16_t>(services_, protocol, [](const flow::RealEndpoint& r) { return r.port; });
}

std::vector<uint32_t> ServiceTable::realIps(uint8_t protocol) const {
  return distinctRealFields<uint32_t>(services_, protocol, [](const flow::RealEndpoint& r) { return r.ip; });
}

}  // namespace natlb::engine
