#include "kernel_offload.h"

#include <arpa/inet.h>

#include <algorithm>

namespace natlb::engine {

namespace {

using flow::entry::kClientIp;
using flow::entry::kClientPort;
using flow::entry::kRealIp;
using flow::entry::kRealPort;
using flow::entry::kVip;
using flow::entry::kVport;

// The kernel's keys hold the packet's own bytes (network order); the flow map holds host order.
kernel_flow_key fromClientKey(const flow::FlowEntry& e) {
  return {htonl(e.load<uint32_t>(kClientIp)), htonl(e.load<uint32_t>(kVip)), htons(e.load<uint16_t>(kClientPort)),
          htons(e.load<uint16_t>(kVport)), uint32_t(e.load<uint8_t>(flow::entry::kProtocol))};
}

kernel_flow_key fromRealKey(const flow::FlowEntry& e) {
  return {htonl(e.load<uint32_t>(kRealIp)), htonl(e.load<uint32_t>(kClientIp)), htons(e.load<uint16_t>(kRealPort)),
          htons(e.load<uint16_t>(kClientPort)), uint32_t(e.load<uint8_t>(flow::entry::kProtocol))};
}

constexpr uint64_t kNsPerMs = 1000000;

// What to do with one direction: replace its destination (towards the real) or its source (towards
// the client) by ip:port (host order), and send it to `hop`.
kernel_flow_action actionFor(uint32_t ip, uint16_t port, bool rewriteSource, NextHop hop, uint64_t lastSeenNs) {
  kernel_flow_action action{};
  action.new_ip = htonl(ip);
  action.new_port = htons(port);
  action.rewrite_source = rewriteSource ? 1 : 0;
  action.egress_ifindex = uint32_t(hop.ifindex);
  action.next_hop = htonl(hop.ip);
  action.last_seen_ns = lastSeenNs;
  return action;
}

}  // namespace

bool KernelOffload::handOver(const flow::FlowEntry& e, NextHop towardsReal, NextHop towardsClient) {
  const uint64_t lastSeenNs = e.load<uint64_t>(flow::entry::kLastSeenMs) * kNsPerMs;
  const kernel_flow_action toReal =
      actionFor(e.load<uint32_t>(kRealIp), e.load<uint16_t>(kRealPort), false, towardsReal, lastSeenNs);
  const kernel_flow_action toClient =
      actionFor(e.load<uint32_t>(kVip), e.load<uint16_t>(kVport), true, towardsClient, lastSeenNs);

  const kernel_flow_key fromClient = fromClientKey(e);
  if (!forwarding_.put(fromClient, toReal)) return false;
  if (!forwarding_.put(fromRealKey(e), toClient)) {
    forwarding_.remove(fromClient);
    return false;
  }
  live_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool KernelOffload::usesNextHops(const flow::FlowEntry& e, NextHop towardsReal, NextHop towardsClient) const {
  const auto in = forwarding_.find(fromClientKey(e));
  const auto out = forwarding_.find(fromRealKey(e));
  return in && out && in->egress_ifindex == uint32_t(towardsReal.ifindex) && in->next_hop == htonl(towardsReal.ip) &&
         out->egress_ifindex == uint32_t(towardsClient.ifindex) && out->next_hop == htonl(towardsClient.ip);
}

std::optional<flow::OffloadedActivity> KernelOffload::activityOf(const flow::FlowEntry& e) {
  const auto in = forwarding_.find(fromClientKey(e));
  const auto out = forwarding_.find(fromRealKey(e));
  if (!in || !out) return std::nullopt;
  return flow::OffloadedActivity{std::max(in->last_seen_ns, out->last_seen_ns) / kNsPerMs, in->packets, in->bytes,
                                 out->packets, out->bytes};
}

void KernelOffload::withdraw(const flow::FlowEntry& e) {
  const bool wasThere = forwarding_.remove(fromClientKey(e));
  forwarding_.remove(fromRealKey(e));
  if (wasThere) live_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace natlb::engine
