#include "service_table.h"

#include <algorithm>
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

const flow::RealEndpoint* pickReal(const Service& service, uint32_t clientIp, uint64_t randomValue, const flow::FlowTable& flows) {
  const size_t slotCount = service.slots.size();
  if (slotCount == 0) return nullptr;
  size_t slot = 0;
  if (readsConnectionCounts(service.mode)) {
    // Selection tables list usable reals only, at most a service's reals (the config caps those).
    constexpr size_t kMaxSlots = 1024;
    RealLoad loads[kMaxSlots];
    const size_t count = std::min(slotCount, kMaxSlots);
    for (size_t i = 0; i < count; ++i) {
      const uint16_t id = service.reals[service.slots[i]].id;
      loads[i] = {flows.activeFlowsOf(id), flows.inactiveFlowsOf(id)};
    }
    const int chosen = pickLeastLoaded(service.mode, loads, service.slotWeights.data(), count);
    return chosen < 0 ? nullptr : &service.reals[service.slots[size_t(chosen)]];
  }
  switch (service.mode) {
    case PickMode::Cursor:
      slot = service.cursor.fetch_add(1, std::memory_order_relaxed) % slotCount;
      break;
    case PickMode::Random:
      slot = randomValue % slotCount;
      break;
    case PickMode::Hash: {
      uint64_t h = uint64_t{clientIp} * 0x9e3779b97f4a7c15ULL;  // Fibonacci hashing of the client address
      slot = (h ^ (h >> 29)) % slotCount;
      break;
    }
    default:
      return nullptr;
  }
  const uint16_t real = service.slots[slot];
  return real < service.reals.size() ? &service.reals[real] : nullptr;
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

std::vector<uint16_t> ServiceTable::realPorts(uint8_t protocol) const {
  return distinctRealFields<uint16_t>(services_, protocol, [](const flow::RealEndpoint& r) { return r.port; });
}

std::vector<uint32_t> ServiceTable::realIps(uint8_t protocol) const {
  return distinctRealFields<uint32_t>(services_, protocol, [](const flow::RealEndpoint& r) { return r.ip; });
}

}  // namespace natlb::engine
