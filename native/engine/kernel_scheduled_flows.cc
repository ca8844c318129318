#include "kernel_scheduled_flows.h"

#include <arpa/inet.h>

#include <algorithm>
#include <set>

#include "../flow/tcp_state.h"
#include "../flow/tcp_tracking.h"
#include "../packet/wire.h"
#include "kernel_offload.h"
#include "engine_context.h"

namespace natlb::engine {

std::optional<kernel_service> kernelServiceOf(const Service& service) {
  const bool natOnly = !service.directRouting && !service.fullNat && !service.anyDirectRouting &&
                       std::all_of(service.realModes.begin(), service.realModes.end(), [](uint16_t mode) { return mode == 0; });
  const bool pickReadsSlotsOnly = (service.mode == PickMode::Cursor || service.mode == PickMode::Random) &&
                                  !service.persistence.enabled() && service.limits.empty() && !service.fallback;
  if (service.protocol != packet::kProtocolTcp || !natOnly || !pickReadsSlotsOnly || service.slots.empty() ||
      service.slots.size() > kernel_service_max_slots) {
    return std::nullopt;
  }
  kernel_service out{};
  out.pick = service.mode == PickMode::Random ? kernel_service_pick_random : kernel_service_pick_cursor;
  out.slot_count = uint16_t(service.slots.size());
  // Only the reals the slots name, renumbered: a service may list more (draining ones) than the table holds.
  std::vector<uint16_t> used;
  for (size_t i = 0; i < service.slots.size(); ++i) {
    const uint16_t real = service.slots[i];
    auto at = std::find(used.begin(), used.end(), real);
    if (at == used.end()) {
      if (used.size() == kernel_service_max_reals || real >= service.reals.size()) return std::nullopt;
      used.push_back(real);
      at = used.end() - 1;
    }
    out.slots[i] = uint8_t(at - used.begin());
  }
  for (size_t i = 0; i < used.size(); ++i) {
    const flow::RealEndpoint& real = service.reals[used[i]];
    out.reals[i] = kernel_real{htonl(real.ip), htons(real.port), real.id};
  }
  return out;
}

std::vector<std::pair<kernel_service_key, kernel_service>> kernelServicesOf(const ServiceTable& services) {
  std::vector<std::pair<kernel_service_key, kernel_service>> out;
  for (const SharedService& service : services.services()) {
    if (auto published = kernelServiceOf(*service)) {
      out.emplace_back(kernel_service_key{htonl(service->vip), htons(service->port), packet::kProtocolTcp}, *published);
    }
  }
  return out;
}

std::vector<std::pair<kernel_route_key, kernel_route>> kernelRoutesOf(const RouteTable& routes, const EngineContext& context) {
  std::vector<std::pair<kernel_route_key, kernel_route>> out;
  std::set<std::pair<uint8_t, uint32_t>> seen;  // longest prefix first, and the first of equal ones wins (RouteTable)
  for (const Route& route : routes.routes()) {
    const uint32_t prefix = route.length == 0 ? 0 : route.prefix & (~uint32_t{0} << (32 - route.length));
    if (!seen.insert({route.length, prefix}).second) continue;
    out.emplace_back(kernel_route_key{route.length, htonl(prefix)},
                     kernel_route{uint32_t(route.ifindex), htonl(route.gateway), context.interfaceByIndex(route.ifindex) != nullptr ? 1u : 0u});
  }
  return out;
}

namespace {

flow::ForwardKey forwardKeyOf(const kernel_flow_event& event) {
  return {packet::kProtocolTcp, ntohl(event.client_ip), ntohs(event.client_port), ntohl(event.vip), ntohs(event.vport)};
}

// Both sides' tracking from the program's numbers: the side's sequence end and its window field. The
// program reads no window scale, so windows count unscaled (the check allows at least 64 KiB anyway).
void trackSide(const flow::FlowEntry& e, flow::Direction side, uint32_t sequenceEnd, uint32_t window) {
  flow::TcpSide tracked;
  tracked.sequenceEnd = sequenceEnd;
  tracked.windowBytes = window;
  tracked.seen = true;
  flow::writeSide(e, side, tracked);
}

KernelEventResult adopt(const kernel_flow_event& event, const ServiceTable& services, flow::FlowTable& flows,
                        KernelOffload& offload, uint64_t nowMs) {
  const flow::ForwardKey key = forwardKeyOf(event);
  const Service* service = services.find(key.vip, key.vport, key.protocol);
  const flow::RealEndpoint* real = nullptr;
  if (service != nullptr) {
    for (const flow::RealEndpoint& r : service->reals) {
      if (r.id == event.real_id && r.ip == ntohl(event.real_ip) && r.port == ntohs(event.real_port)) real = &r;
    }
  }
  // The service or real went between the pick and now, or user space has a live connection with this key
  // (the SYN is a retransmission of one it scheduled).
  const uint32_t existing = flows.findForward(key);
  const uint16_t existingFlags = existing != 0 ? flows.entryAt(existing).flags() : 0;
  // A flow the kernel scheduled too and still forwards: the program made this one on its keys, so it
  // replaced the old one's entries (reusesClosedFlow: both sides had sent their FIN, whether or not
  // their events got here). Or a closing flow user space forwards, which has no entries.
  const bool replacedInKernel = (existingFlags & flow::flags::kKernelScheduled) && (existingFlags & flow::flags::kOffloaded);
  const bool replaces = existing != 0 && (replacedInKernel ||
                                          (flow::allowsReuse(flows.entryAt(existing).state()) && !(existingFlags & flow::flags::kOffloaded)));
  if (real == nullptr || (existing != 0 && !replaces)) {
    offload.discardScheduled(event);
    return {KernelEventOutcome::Refused, 0};
  }
  // A SYN on a closing flow starts a new connection, as in user space (worker.cc). Entries the program
  // already replaced are not withdrawn: the keys are the new flow's now.
  if (replaces) {
    if (replacedInKernel && (flows.entryAt(existing).takeFlags(flow::flags::kOffloaded) & flow::flags::kOffloaded)) {
      offload.forgetReplaced();
    }
    flows.remove(existing, nowMs);
  }
  const uint32_t ref = flows.insert(key, *real, flow::FlowState::SynRecv, nowMs, service->timeouts.profile);
  if (ref == 0) {
    offload.discardScheduled(event);
    return {KernelEventOutcome::Refused, 0};
  }
  const flow::FlowEntry entry = flows.entryAt(ref);
  trackSide(entry, flow::Direction::FromClient, event.client_sequence_end, event.client_window);
  entry.setFlags(flow::flags::kKernelScheduled);
  flows.offload(ref, [&](const flow::FlowEntry&) {
    offload.adoptScheduled();
    return true;
  });
  return {KernelEventOutcome::Adopted, ref};
}

}  // namespace

KernelEventResult applyKernelFlowEvent(const kernel_flow_event& event, const ServiceTable& services, flow::FlowTable& flows,
                                       KernelOffload& offload, uint64_t nowMs) {
  if (event.kind == kernel_flow_event_scheduled) return adopt(event, services, flows, offload, nowMs);
  const uint32_t ref = flows.findForward(forwardKeyOf(event));
  if (ref == 0) return {};
  const flow::FlowEntry entry = flows.entryAt(ref);
  if (!(entry.flags() & flow::flags::kKernelScheduled) || entry.real().ip != ntohl(event.real_ip) ||
      entry.real().port != ntohs(event.real_port)) {
    return {};  // another flow with this key since (the kernel's went with the old one)
  }
  // What the kernel tells of it is activity: the sweep reads its counts back after it (flow_table.cc).
  if (entry.load<uint64_t>(flow::entry::kLastSeenMs) < nowMs) entry.store<uint64_t>(flow::entry::kLastSeenMs, nowMs);
  flow::FlowState target = entry.state();
  if (event.kind == kernel_flow_event_established) {
    entry.setFlags(flow::flags::kSeenReply);
    trackSide(entry, flow::Direction::FromClient, event.client_sequence_end, event.client_window);
    trackSide(entry, flow::Direction::FromReal, event.real_sequence_end, event.real_window);
    target = flow::FlowState::Established;
  } else {
    const auto direction = event.kind == kernel_flow_event_client_fin ? flow::Direction::FromClient : flow::Direction::FromReal;
    const uint16_t flowFlags = entry.setFlags(direction == flow::Direction::FromClient ? flow::flags::kClientFin : flow::flags::kRealFin);
    target = flow::advanceTcpState(entry.state(), flowFlags, direction, packet::kTcpFin).state;
  }
  if (target <= entry.state()) return {};
  flows.raiseState(entry, target);
  if (entry.flags() & flow::flags::kUnassured) flows.assure(entry);  // out of its handshake: proven
  return {KernelEventOutcome::Advanced, ref};
}

}  // namespace natlb::engine
