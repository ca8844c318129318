// A flow-map entry (a flow, or a persistence template) as the flow sync sends it (sync_message.h's
// FlowRecord), and back.
#pragma once
#include "../flow/flow_table.h"
#include "sync_message.h"

namespace natlb::sync {

// Whether a flow goes to the peers as a flow record: not a template (those go as template records,
// flow_sync.cc), nor a flow picked up mid-stream that
// has not proven itself yet: its record would say established, and a peer would hold a spoofed
// segment's flow as an assured connection. It goes once assured.
inline bool goesToPeers(const flow::FlowEntry& e) {
  const uint16_t flags = e.flags();
  if (flags & flow::flags::kTemplate) return false;
  return (flags & (flow::flags::kPickedUp | flow::flags::kUnassured)) != (flow::flags::kPickedUp | flow::flags::kUnassured);
}

inline FlowRecord recordOf(const flow::FlowEntry& e) {
  using namespace flow::entry;
  const uint16_t flags = e.flags();
  FlowRecord r;
  r.protocol = e.load<uint8_t>(kProtocol);
  r.state = e.load<uint8_t>(kState);
  r.flags = uint8_t(((flags & flow::flags::kDirectRouting) ? record_flags::kDirectRouting : 0) |
                    ((flags & flow::flags::kFullNat) ? record_flags::kFullNat : 0) |
                    ((flags & flow::flags::kUnassured) ? 0 : record_flags::kAssured) |
                    (e.load<uint32_t>(kTemplateRef) != 0 ? record_flags::kPersistent : 0));
  r.clientIp = e.load<uint32_t>(kClientIp);
  r.clientPort = e.load<uint16_t>(kClientPort);
  r.vip = e.load<uint32_t>(kVip);
  r.vport = e.load<uint16_t>(kVport);
  r.realIp = e.load<uint32_t>(kRealIp);
  r.realPort = e.load<uint16_t>(kRealPort);
  r.localIp = e.load<uint32_t>(kLocalIp);
  r.localPort = e.load<uint16_t>(kLocalPort);
  return r;
}

// A template entry: its key holds the client network, not the netmask, which is its service's.
inline FlowRecord templateRecordOf(const flow::FlowEntry& e, uint32_t netmask) {
  using namespace flow::entry;
  FlowRecord r;
  r.kind = RecordKind::Template;
  r.protocol = e.load<uint8_t>(kProtocol);
  r.flags = (e.flags() & flow::flags::kUnassured) ? 0 : record_flags::kAssured;
  r.clientIp = e.load<uint32_t>(kClientIp);
  r.vip = e.load<uint32_t>(kVip);
  r.vport = e.load<uint16_t>(kVport);
  r.realIp = e.load<uint32_t>(kRealIp);
  r.realPort = e.load<uint16_t>(kRealPort);
  r.netmask = netmask;
  return r;
}

inline uint16_t modeFlagsOf(const FlowRecord& r) {
  return uint16_t(((r.flags & record_flags::kDirectRouting) ? flow::flags::kDirectRouting : 0) |
                  ((r.flags & record_flags::kFullNat) ? flow::flags::kFullNat : 0));
}

}  // namespace natlb::sync
