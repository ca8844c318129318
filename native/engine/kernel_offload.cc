#include "kernel_offload.h"

#include "../flow/kernel_keys.h"

#include <arpa/inet.h>

#include <algorithm>

namespace natlb::engine {

namespace {

using flow::entry::kRealIp;
using flow::entry::kRealPort;
using flow::entry::kVip;
using flow::entry::kVport;

constexpr uint64_t kNsPerMs = 1000000;

// What to do with one direction: replace its destination (towards the real) or its source (towards
// the client) by ip:port (host order), and send it to `hop`.
kernel_flow_action actionFor(uint32_t ip, uint16_t port, bool rewriteSource, NextHop hop, uint64_t lastSeenNs,
                             uint32_t sequenceEnd) {
  kernel_flow_action action{};
  action.new_ip = htonl(ip);
  action.new_port = htons(port);
  action.rewrite_source = rewriteSource ? 1 : 0;
  action.egress_ifindex = uint32_t(hop.ifindex);
  action.next_hop = htonl(hop.ip);
  action.last_seen_ns = lastSeenNs;
  action.sequence_end = sequenceEnd;
  return action;
}

}  // namespace

bool KernelOffload::handOver(const flow::FlowEntry& e, NextHop towardsReal, NextHop towardsClient) {
  const uint64_t lastSeenNs = e.load<uint64_t>(flow::entry::kLastSeenMs) * kNsPerMs;
  const kernel_flow_action toReal =
      actionFor(e.load<uint32_t>(kRealIp), e.load<uint16_t>(kRealPort), false, towardsReal, lastSeenNs,
                e.load<uint32_t>(flow::entry::kClientSequenceEnd));
  const kernel_flow_action toClient = actionFor(e.load<uint32_t>(kVip), e.load<uint16_t>(kVport), true, towardsClient,
                                                lastSeenNs, e.load<uint32_t>(flow::entry::kRealSequenceEnd));

  if (!forwarding_.putPair({flow::requestKeyOf(e), flow::replyKeyOf(e)}, {toReal, toClient})) return false;
  live_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool KernelOffload::usesNextHops(const flow::FlowEntry& e, NextHop towardsReal, NextHop towardsClient) const {
  const auto in = forwarding_.find(flow::requestKeyOf(e));
  const auto out = forwarding_.find(flow::replyKeyOf(e));
  return in && out && in->egress_ifindex == uint32_t(towardsReal.ifindex) && in->next_hop == htonl(towardsReal.ip) &&
         out->egress_ifindex == uint32_t(towardsClient.ifindex) && out->next_hop == htonl(towardsClient.ip);
}

std::optional<flow::OffloadedActivity> KernelOffload::activityOf(const flow::FlowEntry& e) {
  const auto in = forwarding_.find(flow::requestKeyOf(e));
  const auto out = forwarding_.find(flow::replyKeyOf(e));
  if (!in || !out) return std::nullopt;
  return flow::OffloadedActivity{std::max(in->last_seen_ns, out->last_seen_ns) / kNsPerMs,
                                 in->packets, in->bytes, out->packets, out->bytes,
                                 in->sequence_end, out->sequence_end, in->window, out->window};
}

void KernelOffload::withdraw(const flow::FlowEntry& e) {
  if (forwarding_.removePair({flow::requestKeyOf(e), flow::replyKeyOf(e)}) > 0) live_.fetch_sub(1, std::memory_order_relaxed);
}

void KernelOffload::counted(uint16_t realId, const flow::KernelTrafficAdded& added) {
  realTraffic_.addShared(realId, RealStat::PacketsIn, added.packetsIn);
  realTraffic_.addShared(realId, RealStat::BytesIn, added.bytesIn);
  realTraffic_.addShared(realId, RealStat::PacketsOut, added.packetsOut);
  realTraffic_.addShared(realId, RealStat::BytesOut, added.bytesOut);
}

}  // namespace natlb::engine
