// What the workers and the housekeeper share: interfaces, flow map, current services and routes,
// neighbours, timeouts and counters. Snapshots (services, routes) are swapped whole by the control
// plane; workers load them once per batch.
#pragma once
#include <atomic>
#include <memory>
#include <vector>

#include "../flow/flow_table.h"
#include "counters.h"
#include "interface_config.h"
#include "kernel_offload.h"
#include "neighbour_cache.h"
#include "route_table.h"
#include "service_table.h"

namespace natlb::engine {

struct EngineContext {
  explicit EngineContext(flow::FlowTable& flowTable) : flows(flowTable) {}

  std::vector<InterfaceConfig> interfaces;
  flow::FlowTable& flows;
  NeighbourCache neighbours;
  std::atomic<std::shared_ptr<const ServiceTable>> services{std::make_shared<const ServiceTable>(std::vector<Service>{})};
  std::atomic<std::shared_ptr<const RouteTable>> routes{std::make_shared<const RouteTable>(std::vector<Route>{})};
  flow::Timeouts timeouts{};
  Counters counters;
  std::atomic<bool> running{false};
  bool coalesceTcp = true;  // fixed before start
  KernelOffload* kernelOffload = nullptr;  // the kernel fast path, while running with it

  const InterfaceConfig* interfaceByIndex(int ifindex) const {
    for (const InterfaceConfig& i : interfaces) {
      if (i.ifindex == ifindex) return &i;
    }
    return nullptr;
  }
  bool isLocalAddress(uint32_t ip) const {
    for (const InterfaceConfig& i : interfaces) {
      if (i.ownsAddress(ip)) return true;
    }
    return false;
  }
};

uint64_t monotonicMs();

}  // namespace natlb::engine
