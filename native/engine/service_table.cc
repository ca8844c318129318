#include "service_table.h"

#include <algorithm>
#include <set>

namespace natlb::engine {

const flow::RealEndpoint* pickReal(const Service& service, uint32_t clientIp, uint64_t randomValue) {
  const size_t slotCount = service.slots.size();
  if (slotCount == 0) return nullptr;
  size_t slot = 0;
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
