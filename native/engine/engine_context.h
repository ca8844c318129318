// What the workers and the housekeeper share: interfaces, flow map, current services and routes,
// neighbours, timeouts and counters. Snapshots (services, routes) are swapped whole by the control
// plane; workers load them once per batch.
#pragma once
#include <atomic>
#include <memory>
#include <vector>

#include "../flow/flow_table.h"
#include "../sync/flow_event_queue.h"
#include "counters.h"
#include "gateway_role.h"
#include "interface_config.h"
#include "kernel_offload.h"
#include "neighbour_cache.h"
#include "real_stats.h"
#include "route_table.h"
#include "service_table.h"

namespace natlb::engine {

struct EngineContext {
  explicit EngineContext(flow::FlowTable& flowTable) : flows(flowTable) {}

  std::vector<InterfaceConfig> interfaces;
  flow::FlowTable& flows;
  NeighbourCache neighbours;
  std::atomic<std::shared_ptr<const ServiceTable>> services{std::make_shared<const ServiceTable>(std::vector<SharedService>{}, 0)};
  std::atomic<std::shared_ptr<const RouteTable>> routes{std::make_shared<const RouteTable>(std::vector<Route>{})};
  flow::TimeoutProfiles timeouts;  // profile 0: the global timeouts; the others services' own
  Counters counters;
  RealStats realStats;  // what stopped workers and the kernel fast path counted per real (real_stats.h)
  std::atomic<bool> running{false};
  // Set by the control plane (Engine::setGatewayRole); workers read it once per batch.
  std::atomic<GatewayRole> gatewayRole{GatewayRole::Master};
  bool coalesceTcp = true;  // fixed before start
  KernelOffload* kernelOffload = nullptr;  // the kernel fast path, while running with it
  sync::FlowEventQueues syncEvents;  // what the workers tell the flow sync (native/sync), when one runs

  // The interfaces' MTUs (same order as `interfaces`), refreshed by the housekeeper.
  std::vector<std::atomic<uint32_t>> mtus;

  uint32_t mtuOf(const InterfaceConfig& interface) const {
    const size_t index = size_t(&interface - interfaces.data());
    return index < mtus.size() ? mtus[index].load(std::memory_order_relaxed) : 1500;
  }
  const InterfaceConfig* interfaceByIndex(int ifindex) const {
    for (const InterfaceConfig& i : interfaces) {
      if (i.ifindex == ifindex) return &i;
    }
    return nullptr;
  }
};

uint64_t monotonicMs();

}  // namespace natlb::engine
