// The engine's side of the kernel fast path: turns a flow-map entry into the kernel's flow entries
// (NAT: client -> VIP rewritten to the real, real -> client rewritten to the VIP; full NAT: both endpoints
// of each direction, client -> VIP to local -> real and real -> local to VIP -> client; direct routing:
// client -> VIP alone, readdressed to the real, whose replies bypass natlb), and answers the flow map's
// questions about offloaded flows (flow/offloaded_flows.h).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "../flow/flow_table.h"
#include "../io/kernel_forwarding.h"
#include "real_stats.h"
#include "route_table.h"
#include "service_table.h"

namespace natlb::engine {

struct EngineContext;

class KernelOffload final : public flow::OffloadedFlows {
 public:
  // `realTraffic`: where what the kernel forwarded goes, per real, as the flow map reads it back.
  KernelOffload(uint32_t maxFlows, const std::vector<io::KernelForwardingInterface>& interfaces, RealStatsBlock& realTraffic)
      : forwarding_(maxFlows, interfaces), realTraffic_(realTraffic) {}

  // Hands the flow's established segments to the kernel; false when the kernel's map refuses (or a
  // NAT flow comes without `towardsClient`, which a direct-routing flow does not need).
  bool handOver(const flow::FlowEntry& entry, NextHop towardsReal, std::optional<NextHop> towardsClient);
  // Whether the kernel sends the flow's directions through these next hops.
  bool usesNextHops(const flow::FlowEntry& entry, NextHop towardsReal, std::optional<NextHop> towardsClient) const;
  std::optional<flow::OffloadedActivity> activityOf(const flow::FlowEntry& entry) override;
  void withdraw(const flow::FlowEntry& entry) override;
  void counted(uint16_t realId, const flow::KernelTrafficAdded& added) override;

  // New connections the kernel schedules itself (kernel_scheduled_flows.h): what it may schedule for,
  // whether it may now, its events, and the flows it made that user space takes or refuses.
  void publishServices(const ServiceTable& services);
  void publishRoutes(const RouteTable& routes, const EngineContext& context);
  void enableScheduling(bool enabled);
  bool schedulingEnabled() {
    std::lock_guard lock(scheduling_);
    return schedulingEnabled_.value_or(false);
  }
  size_t publishedServices() const { return publishedServices_.load(std::memory_order_relaxed); }
  size_t readEvents(const std::function<void(const kernel_flow_event&)>& handle) { return forwarding_.readEvents(handle); }
  void adoptScheduled() { live_.fetch_add(1, std::memory_order_relaxed); }
  void forgetReplaced() { live_.fetch_sub(1, std::memory_order_relaxed); }
  // Takes a scheduled flow's entries out of the kernel (only if they are still the program's own).
  void discardScheduled(const kernel_flow_event& event);

  int flowsMapFd() const { return forwarding_.flowsMapFd(); }
  kernel_forwarding_totals totals() const { return forwarding_.totals(); }
  // Flows the kernel forwards now.
  uint64_t liveFlows() const { return live_.load(std::memory_order_relaxed); }

 private:
  io::KernelForwarding forwarding_;
  RealStatsBlock& realTraffic_;
  std::atomic<uint64_t> live_{0};
  std::mutex scheduling_;
  std::optional<bool> schedulingEnabled_;  // as last told to the kernel, under scheduling_
  std::atomic<size_t> publishedServices_{0};
};

}  // namespace natlb::engine
