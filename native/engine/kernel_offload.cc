#include "kernel_offload.h"

#include "../flow/kernel_keys.h"
#include "engine_context.h"
#include "kernel_scheduled_flows.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>

namespace natlb::engine {

namespace {

using flow::entry::kRealIp;
using flow::entry::kRealPort;
using flow::entry::kVip;
using flow::entry::kVport;

constexpr uint64_t kNsPerMs = 1000000;

struct Endpoint {
  uint32_t ip;  // host order
  uint16_t port;
};

// What to do with one direction: rewrite its source and/or destination (host order; the kind says
// which, the other is left zero), and send it to `hop`.
kernel_flow_action actionFor(kernel_flow_rewrite rewrite, Endpoint newSource, Endpoint newDestination, NextHop hop,
                             uint64_t lastSeenNs, uint32_t sequenceEnd) {
  kernel_flow_action action{};
  action.new_source_ip = htonl(newSource.ip);
  action.new_source_port = htons(newSource.port);
  action.new_destination_ip = htonl(newDestination.ip);
  action.new_destination_port = htons(newDestination.port);
  action.rewrite = uint8_t(rewrite);
  action.egress_ifindex = uint32_t(hop.ifindex);
  action.next_hop = htonl(hop.ip);
  action.last_seen_ns = lastSeenNs;
  action.sequence_end = sequenceEnd;
  return action;
}

bool isDirectRouting(const flow::FlowEntry& e) { return (e.flags() & flow::flags::kDirectRouting) != 0; }

bool sendsThrough(const kernel_flow_action& action, NextHop hop) {
  return action.egress_ifindex == uint32_t(hop.ifindex) && action.next_hop == htonl(hop.ip);
}

}  // namespace

bool KernelOffload::handOver(const flow::FlowEntry& e, NextHop towardsReal, std::optional<NextHop> towardsClient) {
  const uint64_t lastSeenNs = e.load<uint64_t>(flow::entry::kLastSeenMs) * kNsPerMs;
  if (isDirectRouting(e)) {
    // The frame keeps its addresses (the real holds the VIP); its next hop is the real itself.
    // The kernel carries on the client's sequence end and latest acknowledgement (what deadRealFlows
    // "reset" needs) from user space's values.
    kernel_flow_action toReal = actionFor(kernel_flow_rewrite_none, {}, {}, towardsReal, lastSeenNs,
                                          e.load<uint32_t>(flow::entry::kClientSequenceEnd));
    toReal.acknowledgement = e.load<uint32_t>(flow::entry::kRealSequenceEnd);
    if (!forwarding_.put(flow::requestKeyOf(e), toReal)) return false;
  } else {
    if (!towardsClient) return false;
    // Full NAT: towards the real the source becomes the local address and port, towards the client the
    // destination becomes the client again (the reply arrives addressed to local:lport, replyKeyOf).
    const bool fullNat = (e.flags() & flow::flags::kFullNat) != 0;
    const Endpoint vip{e.load<uint32_t>(kVip), e.load<uint16_t>(kVport)};
    const Endpoint real{e.load<uint32_t>(kRealIp), e.load<uint16_t>(kRealPort)};
    const Endpoint client{e.load<uint32_t>(flow::entry::kClientIp), e.load<uint16_t>(flow::entry::kClientPort)};
    const Endpoint local{e.load<uint32_t>(flow::entry::kLocalIp), e.load<uint16_t>(flow::entry::kLocalPort)};
    const kernel_flow_action toReal =
        fullNat ? actionFor(kernel_flow_rewrite_both, local, real, towardsReal, lastSeenNs,
                            e.load<uint32_t>(flow::entry::kClientSequenceEnd))
                : actionFor(kernel_flow_rewrite_destination, {}, real, towardsReal, lastSeenNs,
                            e.load<uint32_t>(flow::entry::kClientSequenceEnd));
    const kernel_flow_action toClient =
        fullNat ? actionFor(kernel_flow_rewrite_both, vip, client, *towardsClient, lastSeenNs,
                            e.load<uint32_t>(flow::entry::kRealSequenceEnd))
                : actionFor(kernel_flow_rewrite_source, vip, {}, *towardsClient, lastSeenNs,
                            e.load<uint32_t>(flow::entry::kRealSequenceEnd));
    if (!forwarding_.putPair({flow::requestKeyOf(e), flow::replyKeyOf(e)}, {toReal, toClient})) return false;
  }
  live_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool KernelOffload::usesNextHops(const flow::FlowEntry& e, NextHop towardsReal, std::optional<NextHop> towardsClient) const {
  const auto in = forwarding_.find(flow::requestKeyOf(e));
  if (!in || !sendsThrough(*in, towardsReal)) return false;
  if (isDirectRouting(e)) return true;  // no reply direction: the client's route does not matter
  const auto out = forwarding_.find(flow::replyKeyOf(e));
  return out && towardsClient && sendsThrough(*out, *towardsClient);
}

std::optional<flow::OffloadedActivity> KernelOffload::activityOf(const flow::FlowEntry& e) {
  const auto in = forwarding_.find(flow::requestKeyOf(e));
  if (!in) return std::nullopt;
  if (isDirectRouting(e)) {
    // The client's side alone, and no window: natlb checks none of a direct-routing flow. The client's
    // latest acknowledgement is reported as the real's sequence end, as the flow entry keeps it.
    return flow::OffloadedActivity{in->last_seen_ns / kNsPerMs, in->packets, in->bytes, 0, 0,
                                   in->sequence_end, in->acknowledgement, 0, 0};
  }
  const auto out = forwarding_.find(flow::replyKeyOf(e));
  if (!out) return std::nullopt;
  return flow::OffloadedActivity{std::max(in->last_seen_ns, out->last_seen_ns) / kNsPerMs,
                                 in->packets, in->bytes, out->packets, out->bytes,
                                 in->sequence_end, out->sequence_end, in->window, out->window};
}

void KernelOffload::withdraw(const flow::FlowEntry& e) {
  const size_t removed = isDirectRouting(e) ? (forwarding_.remove(flow::requestKeyOf(e)) ? 1 : 0)
                                            : forwarding_.removePair({flow::requestKeyOf(e), flow::replyKeyOf(e)});
  if (removed > 0) live_.fetch_sub(1, std::memory_order_relaxed);
}

void KernelOffload::publishServices(const ServiceTable& services) {
  std::lock_guard lock(scheduling_);
  const auto published = kernelServicesOf(services);
  // A service the kernel refuses stays user space's (and is not counted).
  publishedServices_.store(forwarding_.replaceServices(published) ? published.size() : 0, std::memory_order_relaxed);
}

void KernelOffload::publishRoutes(const RouteTable& routes, const EngineContext& context) {
  std::lock_guard lock(scheduling_);
  forwarding_.replaceRoutes(kernelRoutesOf(routes, context));
}

void KernelOffload::enableScheduling(bool enabled) {
  std::lock_guard lock(scheduling_);
  if (schedulingEnabled_ == enabled) return;
  forwarding_.enableScheduling(enabled);
  schedulingEnabled_ = enabled;
}

void KernelOffload::discardScheduled(const kernel_flow_event& event) {
  const kernel_flow_key request{event.client_ip, event.vip, event.client_port, event.vport, IPPROTO_TCP};
  const kernel_flow_key reply{event.real_ip, event.client_ip, event.real_port, event.client_port, IPPROTO_TCP};
  for (const kernel_flow_key& key : {request, reply}) {
    const auto action = forwarding_.find(key);
    if (action && (action->kernel_flags & kernel_flow_scheduled_here)) forwarding_.remove(key);
  }
}

void KernelOffload::counted(uint16_t realId, const flow::KernelTrafficAdded& added) {
  realTraffic_.addShared(realId, RealStat::PacketsIn, added.packetsIn);
  realTraffic_.addShared(realId, RealStat::BytesIn, added.bytesIn);
  realTraffic_.addShared(realId, RealStat::PacketsOut, added.packetsOut);
  realTraffic_.addShared(realId, RealStat::BytesOut, added.bytesOut);
}

}  // namespace natlb::engine
