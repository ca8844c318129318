#include "test_surface.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/kernel_scheduled_flows.h"
#include "engine/persistent_scheduling.h"
#include "engine/real_stats.h"
#include "engine/service_table.h"
#include "flow/flow_table.h"
#include "flow/persistence_templates.h"
#include "flow/tcp_state.h"
#include "flow/tcp_window.h"
#include "napi_values.h"
#include "packet/claim_signal.h"
#include "packet/icmp_error.h"
#include "packet/ipv4_frame.h"
#include "packet/tcp_header.h"
#include "packet/tcp_reset.h"
#include "service_values.h"

namespace natlb::napi {

namespace {

Napi::Uint8Array copyOf(Napi::Env env, const uint8_t* bytes, size_t length) {
  Napi::Uint8Array out = Napi::Uint8Array::New(env, length);
  std::memcpy(out.Data(), bytes, length);
  return out;
}

flow::TcpSide sideFrom(const Napi::Value& value, const std::string& what) {
  const Napi::Object item = objectAt(value, what);
  flow::TcpSide side;
  side.sequenceEnd = integerFrom(item.Get("sequenceEnd"), what + ".sequenceEnd", 0, 0xffffffff);
  side.windowBytes = integerFrom(item.Get("windowBytes"), what + ".windowBytes", 0, 0x7fffffff);
  side.windowScale = uint8_t(integerFrom(item.Get("windowScale"), what + ".windowScale", 0, 255));
  side.seen = item.Get("seen").ToBoolean();
  if (!item.Get("strayAcknowledgement").IsUndefined()) {
    side.strayAcknowledgement = integerFrom(item.Get("strayAcknowledgement"), what + ".strayAcknowledgement", 0, 0xffffffff);
  }
  return side;
}

Napi::Object sideTo(Napi::Env env, const flow::TcpSide& side) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("sequenceEnd", double(side.sequenceEnd));
  out.Set("windowBytes", double(side.windowBytes));
  out.Set("windowScale", side.windowScale);
  out.Set("seen", side.seen);
  if (side.strayAcknowledgement) out.Set("strayAcknowledgement", double(*side.strayAcknowledgement));
  return out;
}

packet::TcpHeaderFields segmentFrom(const Napi::Value& value) {
  const Napi::Object item = objectAt(value, "segment");
  return {integerFrom(item.Get("sequence"), "segment.sequence", 0, 0xffffffff),
          integerFrom(item.Get("acknowledgement"), "segment.acknowledgement", 0, 0xffffffff),
          uint16_t(integerFrom(item.Get("window"), "segment.window", 0, 65535)),
          uint8_t(integerFrom(item.Get("flags"), "segment.flags", 0, 255)),
          integerFrom(item.Get("payloadLength"), "segment.payloadLength", 0, 0xffffffff),
          uint8_t(integerFrom(item.Get("windowScale"), "segment.windowScale", 0, 255))};
}

// judgeTcpSegment(sender, receiver, segment, { midStreamStart }) -> "track" | "passOnly" | "outOfWindow";
// midStreamStart: the flow's handshake was not seen here (flags::kMidStreamStart: synced or picked up)
Napi::Value JudgeTcpSegment(const Napi::CallbackInfo& info) {
  const bool midStreamStart =
      info.Length() > 3 && info[3].IsObject() && info[3].As<Napi::Object>().Get("midStreamStart").ToBoolean();
  const auto verdict =
      flow::judgeSegment(sideFrom(info[0], "sender"), sideFrom(info[1], "receiver"), segmentFrom(info[2]), midStreamStart);
  switch (verdict) {
    case flow::SegmentVerdict::Track: return Napi::String::New(info.Env(), "track");
    case flow::SegmentVerdict::PassOnly: return Napi::String::New(info.Env(), "passOnly");
    case flow::SegmentVerdict::OutOfWindow: break;
  }
  return Napi::String::New(info.Env(), "outOfWindow");
}

// afterTcpSegment(sender, receiver, segment) -> the sender's side after it
Napi::Value AfterTcpSegment(const Napi::CallbackInfo& info) {
  return sideTo(info.Env(), flow::afterSegment(sideFrom(info[0], "sender"), sideFrom(info[1], "receiver"), segmentFrom(info[2])));
}

// afterUntrackedTcpSegment(sender, segment) -> the sender's side after a segment judged "passOnly"
Napi::Value AfterUntrackedTcpSegment(const Napi::CallbackInfo& info) {
  return sideTo(info.Env(), flow::afterUntrackedSegment(sideFrom(info[0], "sender"), segmentFrom(info[1])));
}

// clientOnlyTcpSegment(client, real, segment) -> { client, real }: a direct-routing flow's two sides
// after the client's segment (tcp_window.h: afterClientOnlySegment, acknowledgedByClient); the real's
// sequence end is the client's latest acknowledgement
Napi::Value ClientOnlyTcpSegment(const Napi::CallbackInfo& info) {
  const packet::TcpHeaderFields segment = segmentFrom(info[2]);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("client", sideTo(info.Env(), flow::afterClientOnlySegment(sideFrom(info[0], "client"), segment)));
  out.Set("real", sideTo(info.Env(), flow::acknowledgedByClient(sideFrom(info[1], "real"), segment)));
  return out;
}

// readTcpHeader(frame) -> fields, or { ok: false, reason }
Napi::Value ReadTcpHeader(const Napi::CallbackInfo& info) {
  size_t length = 0;
  uint8_t* frame = bytesOf(info[0], length, "frame");
  const packet::ParsedFrame parsed = packet::parseIpv4Frame(frame, length);
  if (parsed.error != packet::ParseError::None) return failure(info.Env(), packet::describe(parsed.error));
  const auto fields = packet::readTcpHeader(parsed.view);
  if (!fields) return failure(info.Env(), "the TCP header does not fit");
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("ok", true);
  out.Set("sequence", double(fields->sequence));
  out.Set("acknowledgement", double(fields->acknowledgement));
  out.Set("window", fields->window);
  out.Set("flags", fields->flags);
  out.Set("payloadLength", double(fields->payloadLength));
  out.Set("windowScale", fields->windowScale);
  return out;
}

// icmpError(frame, { type, code, nextHopMtu, source }) -> the error frame, or null when none is due
Napi::Value IcmpError(const Napi::CallbackInfo& info) {
  size_t length = 0;
  const uint8_t* frame = bytesOf(info[0], length, "frame");
  const Napi::Object spec = objectAt(info[1], "spec");
  if (length < packet::kEthernetHeaderLength) throw Napi::RangeError::New(info.Env(), "frame is shorter than an Ethernet header");
  uint8_t out[packet::kIcmpErrorFrameCapacity];
  const size_t built = packet::buildIcmpError(
      out, frame + packet::kEthernetHeaderLength, length - packet::kEthernetHeaderLength,
      {uint8_t(integerFrom(spec.Get("type"), "spec.type", 0, 255)), uint8_t(integerFrom(spec.Get("code"), "spec.code", 0, 255)),
       uint16_t(integerFrom(spec.Get("nextHopMtu"), "spec.nextHopMtu", 0, 65535)), ipFrom(spec.Get("source"), "spec.source")});
  if (built == 0) return info.Env().Null();
  return copyOf(info.Env(), out, built);
}

// tcpReset({ sourceIp, sourcePort, destinationIp, destinationPort, sequence }) -> the frame
Napi::Value TcpReset(const Napi::CallbackInfo& info) {
  const Napi::Object spec = objectAt(info[0], "spec");
  uint8_t out[packet::kTcpResetFrameLength];
  const size_t built = packet::buildTcpReset(
      out, {ipFrom(spec.Get("sourceIp"), "spec.sourceIp"), uint16_t(integerFrom(spec.Get("sourcePort"), "spec.sourcePort", 0, 65535)),
            ipFrom(spec.Get("destinationIp"), "spec.destinationIp"),
            uint16_t(integerFrom(spec.Get("destinationPort"), "spec.destinationPort", 0, 65535)),
            integerFrom(spec.Get("sequence"), "spec.sequence", 0, 0xffffffff)});
  return copyOf(info.Env(), out, built);
}

// claimSignal(mac, { protocol, realIp, realPort, clientIp, clientPort }) -> the control frame
Napi::Value ClaimSignal(const Napi::CallbackInfo& info) {
  const Napi::Object tuple = objectAt(info[1], "tuple");
  uint8_t out[packet::kClaimSignalLength];
  const size_t built = packet::buildClaimSignal(
      out, macFrom(info[0], "mac"),
      {protocolFrom(tuple.Get("protocol"), "tuple.protocol"), ipFrom(tuple.Get("realIp"), "tuple.realIp"),
       uint16_t(integerFrom(tuple.Get("realPort"), "tuple.realPort", 0, 65535)), ipFrom(tuple.Get("clientIp"), "tuple.clientIp"),
       uint16_t(integerFrom(tuple.Get("clientPort"), "tuple.clientPort", 0, 65535))});
  return copyOf(info.Env(), out, built);
}

std::optional<engine::RealStat> realStatNamed(const std::string& name) {
  for (size_t stat = 0; stat < engine::kRealStatCount; ++stat) {
    if (engine::kRealStatNames[stat] == name) return engine::RealStat(stat);
  }
  return std::nullopt;
}

Napi::Object realTrafficTo(Napi::Env env, const engine::RealTraffic& traffic) {
  Napi::Object out = Napi::Object::New(env);
  for (size_t stat = 0; stat < engine::kRealStatCount; ++stat) out.Set(std::string(engine::kRealStatNames[stat]), double(traffic[stat]));
  return out;
}

// The kernel fast path as the flow map sees it, with counts the test sets: what a read-back finds, and
// where the increments go (a RealStatsBlock, as in engine/kernel_offload.cc).
class ScriptedOffloadedFlows final : public flow::OffloadedFlows {
 public:
  static uint64_t keyOf(const flow::FlowEntry& e) {
    return (uint64_t{e.load<uint32_t>(flow::entry::kClientIp)} << 16) | e.load<uint16_t>(flow::entry::kClientPort);
  }
  std::optional<flow::OffloadedActivity> activityOf(const flow::FlowEntry& e) override {
    const auto found = counts_.find(keyOf(e));
    if (found == counts_.end()) return std::nullopt;
    flow::OffloadedActivity activity{};
    activity.lastSeenMs = e.load<uint64_t>(flow::entry::kLastSeenMs);
    activity.packetsIn = found->second.packetsIn;
    activity.bytesIn = found->second.bytesIn;
    activity.packetsOut = found->second.packetsOut;
    activity.bytesOut = found->second.bytesOut;
    activity.clientSequenceEnd = e.load<uint32_t>(flow::entry::kClientSequenceEnd);
    activity.realSequenceEnd = e.load<uint32_t>(flow::entry::kRealSequenceEnd);
    return activity;
  }
  void withdraw(const flow::FlowEntry& e) override { counts_.erase(keyOf(e)); }
  void counted(uint16_t realId, const flow::KernelTrafficAdded& added) override {
    realTraffic.addShared(realId, engine::RealStat::PacketsIn, added.packetsIn);
    realTraffic.addShared(realId, engine::RealStat::BytesIn, added.bytesIn);
    realTraffic.addShared(realId, engine::RealStat::PacketsOut, added.packetsOut);
    realTraffic.addShared(realId, engine::RealStat::BytesOut, added.bytesOut);
  }
  void set(const flow::FlowEntry& e, const flow::KernelTrafficAdded& counts) { counts_[keyOf(e)] = counts; }

  engine::RealStatsBlock realTraffic;

 private:
  std::map<uint64_t, flow::KernelTrafficAdded> counts_;
};

// A flow map driven directly, without an engine: inserts, assurance, sweeps and the reader epochs, on
// memory initialized by FlowMap (so the tests read its header and entries as natlb does).
class FlowTableForTests : public Napi::ObjectWrap<FlowTableForTests> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FlowTableForTests",
                       {InstanceMethod("insert", &FlowTableForTests::Insert), InstanceMethod("assure", &FlowTableForTests::Assure),
                        InstanceMethod("insertFullNat", &FlowTableForTests::InsertFullNat),
                        InstanceMethod("findReverse", &FlowTableForTests::FindReverse),
                        InstanceMethod("remove", &FlowTableForTests::Remove), InstanceMethod("sweep", &FlowTableForTests::Sweep),
                        InstanceMethod("raiseState", &FlowTableForTests::RaiseState),
                        InstanceMethod("setTimeoutProfile", &FlowTableForTests::SetTimeoutProfile),
                        InstanceMethod("bindTemplate", &FlowTableForTests::BindTemplate),
                        InstanceMethod("templateOf", &FlowTableForTests::TemplateOf),
                        InstanceMethod("setFloodProtection", &FlowTableForTests::SetFloodProtection),
                        InstanceMethod("enterBatch", &FlowTableForTests::EnterBatch),
                        InstanceMethod("leaveBatch", &FlowTableForTests::LeaveBatch),
                        InstanceMethod("offload", &FlowTableForTests::Offload),
                        InstanceMethod("setKernelCounts", &FlowTableForTests::SetKernelCounts),
                        InstanceMethod("withdrawOffloaded", &FlowTableForTests::WithdrawOffloaded),
                        InstanceMethod("kernelTrafficOf", &FlowTableForTests::KernelTrafficOf)});
  }

  explicit FlowTableForTests(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FlowTableForTests>(info) {
    size_t length = 0;
    uint8_t* memory = bytesOf(info[0], length, "flow map memory");
    memory_ = Napi::Persistent(info[0].As<Napi::Uint8Array>());
    table_ = guarded(info.Env(), [&] { return std::make_unique<flow::FlowTable>(memory, length); });
    reader_ = table_->registerReader();
    table_->setOffloadedFlows(&kernel_);
    timeouts_.set(flow::kGlobalTimeoutProfile, flow::secondsByState(flow::TimeoutSeconds{}));
  }
  ~FlowTableForTests() override { table_->setOffloadedFlows(nullptr); }

 private:
  // insert({ protocol, clientIp, clientPort, vip, vport, realIp, realPort, realId? }, nowMs, { timeoutProfile?, templateRef? }?) -> ref, 0 when refused
  Napi::Value Insert(const Napi::CallbackInfo& info) {
    const Napi::Object key = objectAt(info[0], "flow");
    const uint8_t protocol = protocolFrom(key.Get("protocol"), "flow.protocol");
    const flow::ForwardKey forward{protocol, ipFrom(key.Get("clientIp"), "flow.clientIp"),
                                   uint16_t(integerFrom(key.Get("clientPort"), "flow.clientPort", 0, 65535)),
                                   ipFrom(key.Get("vip"), "flow.vip"), uint16_t(integerFrom(key.Get("vport"), "flow.vport", 0, 65535))};
    const flow::RealEndpoint real{ipFrom(key.Get("realIp"), "flow.realIp"),
                                  uint16_t(integerFrom(key.Get("realPort"), "flow.realPort", 0, 65535)),
                                  uint16_t(key.Has("realId") ? integerFrom(key.Get("realId"), "flow.realId", 0, 65535) : 0)};
    const uint64_t nowMs = integerFrom(info[1], "nowMs", 0, 0xffffffff);
    const auto state = protocol == packet::kProtocolTcp ? flow::FlowState::SynRecv : flow::FlowState::Udp;
    // The third argument: { timeoutProfile?, templateRef? }.
    const Napi::Value options = info[2];
    const Napi::Object settings = options.IsUndefined() ? Napi::Object::New(info.Env()) : objectAt(options, "options");
    const auto profile = uint8_t(settings.Has("timeoutProfile") ? integerFrom(settings.Get("timeoutProfile"), "timeoutProfile", 0, flow::kTimeoutProfileCount - 1) : flow::kGlobalTimeoutProfile);
    const uint32_t templateRef = settings.Has("templateRef") ? integerFrom(settings.Get("templateRef"), "templateRef", 0, table_->capacity()) : 0;
    return Napi::Number::New(info.Env(), table_->insert(forward, real, state, nowMs, profile, templateRef));
  }

  // insertFullNat(flow (as insert), nowMs, { localAddresses, firstPort, lastPort }, start) -> { ref,
  // localIp, localPort } or { ref: 0, refused: "full" | "localPortsExhausted" }. `start` is the worker's
  // random value (its low 32 bits pick the first address); the port is the next in turn (local_ports.h).
  Napi::Value InsertFullNat(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const Napi::Object key = objectAt(info[0], "flow");
    const uint8_t protocol = protocolFrom(key.Get("protocol"), "flow.protocol");
    const flow::ForwardKey forward{protocol, ipFrom(key.Get("clientIp"), "flow.clientIp"),
                                   uint16_t(integerFrom(key.Get("clientPort"), "flow.clientPort", 0, 65535)),
                                   ipFrom(key.Get("vip"), "flow.vip"), uint16_t(integerFrom(key.Get("vport"), "flow.vport", 0, 65535))};
    const flow::RealEndpoint real{ipFrom(key.Get("realIp"), "flow.realIp"),
                                  uint16_t(integerFrom(key.Get("realPort"), "flow.realPort", 0, 65535)), 0};
    const uint64_t nowMs = integerFrom(info[1], "nowMs", 0, 0xffffffff);
    const Napi::Object poolItem = objectAt(info[2], "pool");
    const Napi::Array list = arrayAt(poolItem.Get("localAddresses"), "pool.localAddresses");
    std::vector<uint32_t> addresses;
    for (uint32_t i = 0; i < list.Length(); ++i) addresses.push_back(ipFrom(list.Get(i), "pool.localAddresses[]"));
    flow::LocalSourcePool pool{addresses.data(), uint32_t(addresses.size()),
                               {uint16_t(integerFrom(poolItem.Get("firstPort"), "pool.firstPort", 1, 65535)),
                                uint16_t(integerFrom(poolItem.Get("lastPort"), "pool.lastPort", 1, 65535))}};
    const uint64_t start = uint64_t(info[3].As<Napi::Number>().Int64Value());
    const auto state = protocol == packet::kProtocolTcp ? flow::FlowState::SynRecv : flow::FlowState::Udp;
    flow::InsertRefusal refusal = flow::InsertRefusal::None;
    const uint32_t ref = table_->insert(forward, real, state, nowMs, flow::kGlobalTimeoutProfile, 0, flow::flags::kFullNat, &pool,
                                        start, &refusal);
    Napi::Object out = Napi::Object::New(env);
    out.Set("ref", ref);
    if (ref == 0) {
      out.Set("refused", refusal == flow::InsertRefusal::LocalPortsExhausted ? "localPortsExhausted" : "full");
      return out;
    }
    const flow::ReplyDestination local = flow::replyDestinationOf(table_->entryAt(ref));
    out.Set("localIp", ipToString(local.ip));
    out.Set("localPort", local.port);
    return out;
  }

  // findReverse({ protocol, realIp, realPort, ip, port }) -> the flow whose replies real -> ip:port are, 0: none
  Napi::Value FindReverse(const Napi::CallbackInfo& info) {
    const Napi::Object key = objectAt(info[0], "reply");
    const flow::ReverseKey reverse{protocolFrom(key.Get("protocol"), "reply.protocol"), ipFrom(key.Get("realIp"), "reply.realIp"),
                                   uint16_t(integerFrom(key.Get("realPort"), "reply.realPort", 0, 65535)), ipFrom(key.Get("ip"), "reply.ip"),
                                   uint16_t(integerFrom(key.Get("port"), "reply.port", 0, 65535))};
    return Napi::Number::New(info.Env(), table_->findReverse(reverse));
  }

  // bindTemplate({ protocol, clientIp, netmask, vip, vport, realIp, realPort, realId }, timeoutS, nowMs,
  // staleSerial?) -> the template's ref (found, rebound or new), 0 when refused
  Napi::Value BindTemplate(const Napi::CallbackInfo& info) {
    const Napi::Object item = objectAt(info[0], "template");
    const uint32_t netmask = ipFrom(item.Get("netmask"), "template.netmask");
    const flow::ForwardKey key = flow::templateKeyOf(protocolFrom(item.Get("protocol"), "template.protocol"),
                                                     ipFrom(item.Get("clientIp"), "template.clientIp"), netmask,
                                                     ipFrom(item.Get("vip"), "template.vip"),
                                                     uint16_t(integerFrom(item.Get("vport"), "template.vport", 0, 65535)));
    const flow::RealEndpoint real{ipFrom(item.Get("realIp"), "template.realIp"),
                                  uint16_t(integerFrom(item.Get("realPort"), "template.realPort", 0, 65535)),
                                  uint16_t(integerFrom(item.Get("realId"), "template.realId", 0, 65535))};
    const uint32_t timeoutS = integerFrom(info[1], "timeoutS", 1, 86400);
    const uint64_t nowMs = integerFrom(info[2], "nowMs", 0, 0xffffffff);
    std::optional<uint32_t> stale;
    if (!info[3].IsUndefined()) stale = integerFrom(info[3], "staleSerial", 0, 0xffffffff);
    return Napi::Number::New(info.Env(), table_->bindTemplate(key, real, timeoutS, nowMs, stale));
  }

  // templateOf(flowRef) -> the ref of the live template controlling the flow, 0 when none
  Napi::Value TemplateOf(const Napi::CallbackInfo& info) {
    const flow::FlowEntry e = table_->entryAt(integerFrom(info[0], "ref", 1, table_->capacity()));
    const uint32_t ref = e.load<uint32_t>(flow::entry::kTemplateRef);
    const bool current = ref != 0 && table_->entryAt(ref).live() &&
                         table_->entryAt(ref).load<uint32_t>(flow::entry::kTemplateSerial) == e.load<uint32_t>(flow::entry::kTemplateSerial);
    return Napi::Number::New(info.Env(), current ? ref : 0);
  }

  // assure(ref): the flow proved itself (handshake completed, UDP exchange going on)
  Napi::Value Assure(const Napi::CallbackInfo& info) {
    const uint32_t ref = integerFrom(info[0], "ref", 1, table_->capacity());
    const flow::FlowEntry entry = table_->entryAt(ref);
    if (entry.load<uint8_t>(flow::entry::kProtocol) == packet::kProtocolTcp) table_->raiseState(entry, flow::FlowState::Established);
    table_->assure(entry);
    return info.Env().Undefined();
  }

  // raiseState(ref, state): a TCP state change as a worker makes it (state: FlowState number 1..5)
  Napi::Value RaiseState(const Napi::CallbackInfo& info) {
    const uint32_t ref = integerFrom(info[0], "ref", 1, table_->capacity());
    const auto state = flow::FlowState(integerFrom(info[1], "state", uint32_t(flow::FlowState::SynRecv), uint32_t(flow::FlowState::Close)));
    table_->raiseState(table_->entryAt(ref), state);
    return info.Env().Undefined();
  }

  // remove(ref, nowMs?): nowMs is the engine's clock as its last sweep published it
  Napi::Value Remove(const Napi::CallbackInfo& info) {
    if (!info[1].IsUndefined()) table_->publishClock(integerFrom(info[1], "nowMs", 0, 0xffffffff));
    table_->remove(integerFrom(info[0], "ref", 1, table_->capacity()), 0);
    return info.Env().Undefined();
  }

  // sweep(nowMs, timeoutSeconds?) -> flows removed; timeoutSeconds: the global profile gets it for every state
  Napi::Value Sweep(const Napi::CallbackInfo& info) {
    const uint64_t nowMs = integerFrom(info[0], "nowMs", 0, 0xffffffff);
    if (!info[1].IsUndefined()) {
      flow::StateSeconds seconds;
      seconds.fill(integerFrom(info[1], "timeoutSeconds", 1, 86400));
      timeouts_.set(flow::kGlobalTimeoutProfile, seconds);
    }
    table_->publishClock(nowMs);
    return Napi::Number::New(info.Env(), double(table_->sweep(nowMs, timeouts_, table_->capacity())));
  }

  // setTimeoutProfile(profile, { tcpEstablished?, udp?, ... }): profile 0 is the global one (unnamed
  // states: the defaults); in another, an unnamed state takes the global value, as a service's would.
  Napi::Value SetTimeoutProfile(const Napi::CallbackInfo& info) {
    const auto profile = uint8_t(integerFrom(info[0], "profile", 0, flow::kTimeoutProfileCount - 1));
    const flow::TimeoutSeconds unnamed = profile == flow::kGlobalTimeoutProfile ? flow::TimeoutSeconds{} : flow::TimeoutSeconds{0, 0, 0, 0, 0, 0};
    timeouts_.set(profile, flow::secondsByState(timeoutsFrom(info[1], unnamed, "timeouts")));
    return info.Env().Undefined();
  }

  Napi::Value SetFloodProtection(const Napi::CallbackInfo& info) {
    const Napi::Object item = objectAt(info[0], "flood protection");
    flow::FloodDefences& defences = table_->floodDefences();
    defences.halfOpenSharePermille.store(integerFrom(item.Get("halfOpenSharePermille"), "halfOpenSharePermille", 1, 1000));
    defences.udpSharePermille.store(integerFrom(item.Get("udpSharePermille"), "udpSharePermille", 1, 1000));
    defences.pressureAtPermille.store(integerFrom(item.Get("pressureAtPermille"), "pressureAtPermille", 0, 1000));
    defences.pressureTimeoutSeconds.store(integerFrom(item.Get("pressureTimeoutSeconds"), "pressureTimeoutSeconds", 1, 86400));
    return info.Env().Undefined();
  }

  Napi::Value EnterBatch(const Napi::CallbackInfo& info) {
    table_->enterBatch(reader_);
    return info.Env().Undefined();
  }

  Napi::Value LeaveBatch(const Napi::CallbackInfo& info) {
    table_->leaveBatch(reader_);
    return info.Env().Undefined();
  }

  // offload(ref): the flow is handed to the (scripted) kernel fast path, with no counts yet
  Napi::Value Offload(const Napi::CallbackInfo& info) {
    const uint32_t ref = integerFrom(info[0], "ref", 1, table_->capacity());
    kernel_.set(table_->entryAt(ref), {0, 0, 0, 0});
    table_->offload(ref, [](const flow::FlowEntry&) { return true; });
    return info.Env().Undefined();
  }

  // setKernelCounts(ref, { packetsIn, bytesIn, packetsOut, bytesOut }): what the kernel has forwarded of it so far
  Napi::Value SetKernelCounts(const Napi::CallbackInfo& info) {
    const uint32_t ref = integerFrom(info[0], "ref", 1, table_->capacity());
    const Napi::Object counts = objectAt(info[1], "counts");
    kernel_.set(table_->entryAt(ref), {integerFrom(counts.Get("packetsIn"), "packetsIn", 0, 0xffffffff),
                                       integerFrom(counts.Get("bytesIn"), "bytesIn", 0, 0xffffffff),
                                       integerFrom(counts.Get("packetsOut"), "packetsOut", 0, 0xffffffff),
                                       integerFrom(counts.Get("bytesOut"), "bytesOut", 0, 0xffffffff)});
    return info.Env().Undefined();
  }

  // withdrawOffloaded() -> flows taken back from the kernel (all of them), as the engine's stop() does
  Napi::Value WithdrawOffloaded(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(table_->withdrawOffloaded([](const flow::FlowEntry&) { return true; })));
  }

  // kernelTrafficOf(realId) -> what the read-backs credited to the real
  Napi::Value KernelTrafficOf(const Napi::CallbackInfo& info) {
    engine::RealTraffic traffic{};
    kernel_.realTraffic.addTo(uint16_t(integerFrom(info[0], "realId", 0, 65535)), traffic);
    return realTrafficTo(info.Env(), traffic);
  }

  Napi::Reference<Napi::Uint8Array> memory_;

 public:
  flow::FlowTable& table() { return *table_; }

 private:
  ScriptedOffloadedFlows kernel_;
  std::unique_ptr<flow::FlowTable> table_;
  flow::TimeoutProfiles timeouts_;
  size_t reader_ = 0;
};

// The engine's per-real counting (engine/real_stats.h) without an engine: workers' blocks that come
// and go, the kernel's block, and the sum the control plane reads.
class RealStatsForTests : public Napi::ObjectWrap<RealStatsForTests> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RealStatsForTests",
                       {InstanceMethod("addWorker", &RealStatsForTests::AddWorker), InstanceMethod("count", &RealStatsForTests::Count),
                        InstanceMethod("countKernel", &RealStatsForTests::CountKernel),
                        InstanceMethod("retireWorkers", &RealStatsForTests::RetireWorkers), InstanceMethod("read", &RealStatsForTests::Read)});
  }
  explicit RealStatsForTests(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RealStatsForTests>(info) {}

 private:
  engine::RealStat statFrom(const Napi::Value& value) {
    const auto stat = realStatNamed(value.ToString());
    if (!stat) throw Napi::TypeError::New(Env(), "stat must be connections, packetsIn, packetsOut, bytesIn or bytesOut");
    return *stat;
  }
  // addWorker() -> its index
  Napi::Value AddWorker(const Napi::CallbackInfo& info) {
    workers_.push_back(std::make_unique<engine::RealStatsBlock>());
    return Napi::Number::New(info.Env(), double(workers_.size() - 1));
  }
  // count(worker, realId, stat, value): as the worker counts a packet or a new connection
  Napi::Value Count(const Napi::CallbackInfo& info) {
    const uint32_t worker = integerFrom(info[0], "worker", 0, uint32_t(workers_.size()) - 1);
    workers_[worker]->add(uint16_t(integerFrom(info[1], "realId", 0, 65535)), statFrom(info[2]), integerFrom(info[3], "value", 0, 0xffffffff));
    return info.Env().Undefined();
  }
  // countKernel(realId, stat, value): as a read-back of the kernel's counts credits it
  Napi::Value CountKernel(const Napi::CallbackInfo& info) {
    stats_.kernel().addShared(uint16_t(integerFrom(info[0], "realId", 0, 65535)), statFrom(info[1]), integerFrom(info[2], "value", 0, 0xffffffff));
    return info.Env().Undefined();
  }
  // retireWorkers(): every worker stops (engine stop()); later workers start from empty blocks
  Napi::Value RetireWorkers(const Napi::CallbackInfo& info) {
    for (const auto& worker : workers_) stats_.retire(*worker);
    workers_.clear();
    return info.Env().Undefined();
  }
  // read(realId) -> the real's totals, as Engine::realTraffic sums them
  Napi::Value Read(const Napi::CallbackInfo& info) {
    std::vector<const engine::RealStatsBlock*> blocks;
    for (const auto& worker : workers_) blocks.push_back(worker.get());
    return realTrafficTo(info.Env(), stats_.sum(uint16_t(integerFrom(info[0], "realId", 0, 65535)), blocks));
  }

  engine::RealStats stats_;
  std::vector<std::unique_ptr<engine::RealStatsBlock>> workers_;
};

// pickLeastLoaded(mode, [{active, inactive, weight}]) -> the chosen index, or -1
Napi::Value PickLeastLoaded(const Napi::CallbackInfo& info) {
  const std::string name = info[0].ToString();
  const std::optional<engine::PickMode> mode = engine::pickModeNamed(name);
  if (!mode || !engine::readsConnectionCounts(*mode)) throw Napi::TypeError::New(info.Env(), "mode must be lc, wlc, sed or nq");
  const Napi::Array reals = arrayAt(info[1], "reals");
  std::vector<engine::RealLoad> loads;
  std::vector<uint16_t> weights;
  for (uint32_t i = 0; i < reals.Length(); ++i) {
    const Napi::Object real = objectAt(reals.Get(i), "reals[i]");
    loads.push_back({integerFrom(real.Get("active"), "active", 0, 0xffffffff), integerFrom(real.Get("inactive"), "inactive", 0, 0xffffffff)});
    weights.push_back(uint16_t(integerFrom(real.Get("weight"), "weight", 0, 65535)));
  }
  return Napi::Number::New(info.Env(), engine::pickLeastLoaded(*mode, loads.data(), weights.data(), loads.size()));
}

// inputOnlyTcpState(state, tcpFlags) -> the state a direct-routing flow moves to (flow/tcp_state.h);
// states by their ipvsadm names (SYN_RECV, ESTABLISHED, FIN_WAIT, TIME_WAIT, CLOSE).
Napi::Value InputOnlyTcpState(const Napi::CallbackInfo& info) {
  static constexpr std::array<std::string_view, 6> kNames = {"NONE", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "TIME_WAIT", "CLOSE"};
  const std::string name = info[0].ToString();
  const auto named = std::find(kNames.begin() + 1, kNames.end(), name);
  if (named == kNames.end()) throw Napi::TypeError::New(info.Env(), "state must be SYN_RECV, ESTABLISHED, FIN_WAIT, TIME_WAIT or CLOSE");
  const auto state = flow::FlowState(named - kNames.begin());
  const auto next = flow::advanceInputOnlyTcpState(state, uint8_t(integerFrom(info[1], "tcpFlags", 0, 255)));
  return Napi::String::New(info.Env(), std::string(kNames[size_t(next)]));
}

// A service as the data plane builds it from a NativeService, picking with given loads:
//   new ServiceForTests(service).pick(loads, client, random) -> { outcome, real }
// loads: one { active, inactive } per real (configured, then the fallback); client: { ip, port }; real:
// the chosen index into those reals, or -1. overloaded() -> each real's overload flag as it stands.
class ServiceForTests : public Napi::ObjectWrap<ServiceForTests> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ServiceForTests", {InstanceMethod("pick", &ServiceForTests::Pick), InstanceMethod("overloaded", &ServiceForTests::Overloaded),
                                                InstanceMethod("schedule", &ServiceForTests::Schedule),
                                                InstanceMethod("kernelService", &ServiceForTests::KernelService)});
  }

  explicit ServiceForTests(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ServiceForTests>(info) {
    service_ = std::make_unique<engine::Service>(serviceFrom(info[0], "service"));
  }

 private:
  Napi::Value Pick(const Napi::CallbackInfo& info) {
    const Napi::Array list = arrayAt(info[0], "loads");
    if (list.Length() != service_->reals.size()) throw Napi::RangeError::New(info.Env(), "loads must have one entry per real, the fallback last");
    std::vector<engine::RealLoad> loads;
    for (uint32_t i = 0; i < list.Length(); ++i) {
      const Napi::Object load = objectAt(list.Get(i), "loads[i]");
      loads.push_back({integerFrom(load.Get("active"), "active", 0, 0xffffffff), integerFrom(load.Get("inactive"), "inactive", 0, 0xffffffff)});
    }
    const Napi::Object client = objectAt(info[1], "client");
    const engine::Client from{ipFrom(client.Get("ip"), "client.ip"), uint16_t(integerFrom(client.Get("port"), "client.port", 0, 65535))};
    const uint64_t random = integerFrom(info[2], "random", 0, 0xffffffff);
    const engine::PickOutcome picked = engine::pickRealWithLoads(*service_, from, random, loads.data());
    constexpr const char* kOutcomes[] = {"real", "fallback", "noReal", "realsFull"};
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("outcome", kOutcomes[size_t(picked.kind)]);
    out.Set("real", picked.real == nullptr ? -1.0 : double(picked.real - service_->reals.data()));
    return out;
  }

  // schedule(flows, { protocol, ip, port }, nowMs) -> { real, templateRef }: a new connection's real as a
  // worker schedules it (engine/persistent_scheduling.h: the client's template first), loads all 0.
  Napi::Value Schedule(const Napi::CallbackInfo& info) {
    flow::FlowTable& flows = FlowTableForTests::Unwrap(objectAt(info[0], "flows"))->table();
    const Napi::Object client = objectAt(info[1], "client");
    const flow::ForwardKey key{protocolFrom(client.Get("protocol"), "client.protocol"), ipFrom(client.Get("ip"), "client.ip"),
                               uint16_t(integerFrom(client.Get("port"), "client.port", 0, 65535)), service_->vip, service_->port};
    const std::vector<engine::RealLoad> loads(service_->reals.size());
    const engine::ScheduledReal scheduled = engine::scheduleReal(*service_, flows, key, uint64_t(info[2].ToNumber().Int64Value()), [&] {
      return engine::pickRealWithLoads(*service_, {key.clientIp, key.clientPort}, 0, loads.data());
    });
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("real", scheduled.real ? Napi::Value(Napi::String::New(info.Env(), ipToString(scheduled.real->ip))) : info.Env().Null());
    out.Set("templateRef", double(scheduled.templateRef));
    return out;
  }

  // kernelService() -> null | { pick, slots: [real ip per slot, in order], reals: [{ ip, port, id }] }: what
  // natlb publishes to the kernel fast path for this service (engine/kernel_scheduled_flows.h).
  Napi::Value KernelService(const Napi::CallbackInfo& info) {
    const std::optional<kernel_service> published = engine::kernelServiceOf(*service_);
    if (!published) return info.Env().Null();
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("pick", published->pick == kernel_service_pick_random ? "random" : "cursor");
    Napi::Array reals = Napi::Array::New(info.Env());
    for (uint32_t i = 0; i < kernel_service_max_reals && published->reals[i].ip != 0; ++i) {
      Napi::Object real = Napi::Object::New(info.Env());
      real.Set("ip", ipToString(ntohl(published->reals[i].ip)));
      real.Set("port", ntohs(published->reals[i].port));
      real.Set("id", published->reals[i].id);
      reals.Set(i, real);
    }
    Napi::Array slots = Napi::Array::New(info.Env(), published->slot_count);
    for (uint32_t i = 0; i < published->slot_count; ++i) {
      slots.Set(i, ipToString(ntohl(published->reals[published->slots[i]].ip)));
    }
    out.Set("reals", reals);
    out.Set("slots", slots);
    return out;
  }

  Napi::Value Overloaded(const Napi::CallbackInfo& info) {
    Napi::Array out = Napi::Array::New(info.Env(), service_->reals.size());
    for (uint32_t i = 0; i < service_->reals.size(); ++i) {
      out.Set(i, i < service_->limits.size() && service_->overloaded[i].load(std::memory_order_relaxed));
    }
    return out;
  }

  std::unique_ptr<engine::Service> service_;
};

}  // namespace

void addTestSurface(Napi::Env env, Napi::Object exports, Napi::Object packet) {
  packet.Set("judgeTcpSegment", Napi::Function::New(env, JudgeTcpSegment));
  packet.Set("afterTcpSegment", Napi::Function::New(env, AfterTcpSegment));
  packet.Set("afterUntrackedTcpSegment", Napi::Function::New(env, AfterUntrackedTcpSegment));
  packet.Set("clientOnlyTcpSegment", Napi::Function::New(env, ClientOnlyTcpSegment));
  packet.Set("readTcpHeader", Napi::Function::New(env, ReadTcpHeader));
  packet.Set("icmpError", Napi::Function::New(env, IcmpError));
  packet.Set("tcpReset", Napi::Function::New(env, TcpReset));
  packet.Set("claimSignal", Napi::Function::New(env, ClaimSignal));
  packet.Set("pickLeastLoaded", Napi::Function::New(env, PickLeastLoaded));
  packet.Set("inputOnlyTcpState", Napi::Function::New(env, InputOnlyTcpState));
  exports.Set("FlowTableForTests", FlowTableForTests::Define(env));
  exports.Set("RealStatsForTests", RealStatsForTests::Define(env));
  exports.Set("ServiceForTests", ServiceForTests::Define(env));
}

}  // namespace natlb::napi
