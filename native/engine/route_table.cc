#include "route_table.h"

#include <algorithm>

namespace natlb::engine {

RouteTable::RouteTable(std::vector<Route> routes) : routes_(std::move(routes)) {
  std::stable_sort(routes_.begin(), routes_.end(),
                   [](const Route& a, const Route& b) { return a.length > b.length; });
}

std::optional<NextHop> RouteTable::lookup(uint32_t destination) const {
  for (const Route& route : routes_) {
    const uint32_t mask = route.length == 0 ? 0 : ~uint32_t{0} << (32 - route.length);
    if ((destination & mask) == (route.prefix & mask)) {
      return NextHop{route.ifindex, route.gateway != 0 ? route.gateway : destination};
    }
  }
  return std::nullopt;
}

}  // namespace natlb::engine
