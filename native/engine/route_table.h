// Longest-prefix-match routing for the frames the engine sends: which interface, which next hop.
// A snapshot of the kernel's main table, provided by the control plane and replaced whole.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

namespace natlb::engine {

struct Route {
  uint32_t prefix;
  uint8_t length;
  int ifindex;
  uint32_t gateway;  // 0: on-link, the destination itself is the next hop
  bool operator==(const Route&) const = default;
};

struct NextHop {
  int ifindex;
  uint32_t ip;
};

class RouteTable {
 public:
  explicit RouteTable(std::vector<Route> routes);
  std::optional<NextHop> lookup(uint32_t destination) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;  // longest prefix first
};

}  // namespace natlb::engine
