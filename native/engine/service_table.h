// The services and real servers as the data plane sees them: an immutable snapshot published by the
// control plane. A new snapshot replaces the old one whole, but shares the services that did not
// change with it (a health change rebuilds one service's table, not a thousand). Each service carries the selection
// table its TypeScript scheduling policy computed; the data plane only indexes it, so scheduling a new
// connection never calls into JavaScript.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "../flow/flow_table.h"

namespace natlb::engine {

enum class PickMode : uint8_t { Cursor, Random, Hash };

struct Service {
  uint32_t vip = 0;
  uint16_t port = 0;
  uint8_t protocol = 0;
  PickMode mode = PickMode::Cursor;
  std::vector<uint16_t> slots;              // indexes into reals
  std::vector<flow::RealEndpoint> reals;
  mutable std::atomic<uint32_t> cursor{0};  // round-robin position, shared by all workers

  Service() = default;
  Service(Service&& other) noexcept
      : vip(other.vip), port(other.port), protocol(other.protocol), mode(other.mode),
        slots(std::move(other.slots)), reals(std::move(other.reals)), cursor(other.cursor.load()) {}
};

// Picks the real server for a new connection; nullptr when the service has no usable real.
const flow::RealEndpoint* pickReal(const Service& service, uint32_t clientIp, uint64_t randomValue);

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
