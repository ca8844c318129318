// The Node-API surface of the data plane, and nothing else: argument validation and conversion,
// then calls into engine/, flow/ and packet/. Errors become JavaScript exceptions with messages.
#include <arpa/inet.h>
#include <net/if.h>
#include <napi.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>

#include "engine/engine.h"
#include "flow/flow_layout.h"
#include "flow/flow_table.h"
#include "flow/persistence_templates.h"
#include "flow/reply_claims.h"
#include "io/kernel_forwarding.h"
#include "io/mapped_memory.h"
#include "io/peer_credentials.h"
#include "packet/checksum_state.h"
#include "packet/ipv4_frame.h"
#include "packet/nat_rewrite.h"
#include "packet/tcp_coalesce.h"
#include "packet/icmp.h"
#include "napi_values.h"
#include "service_values.h"
#include "sync_values.h"
#include "test_surface.h"

namespace {

using namespace natlb;
using namespace natlb::napi;

// ---- flow map layout ---------------------------------------------------------------------------

Napi::Value FlowLayout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("magic", flow::kMagic);
  layout.Set("version", flow::kLayoutVersion);
  layout.Set("headerBytes", double(flow::kHeaderBytes));
  layout.Set("entryBytes", double(flow::kEntryBytes));
  Napi::Object header = Napi::Object::New(env);
  namespace h = flow::header;
  const std::pair<const char*, size_t> headerFields[] = {
      {"magic", h::kMagic},         {"version", h::kVersion},     {"capacity", h::kCapacity},
      {"bucketCount", h::kBucketCount}, {"bumpAllocated", h::kBumpAllocated}, {"liveCount", h::kLiveCount},
      {"clockMs", h::kClockMs},     {"inserted", h::kInserted},   {"expired", h::kExpired},
      {"fullDrops", h::kFullDrops}, {"hashSeed", h::kHashSeed}, {"halfOpenFlows", h::kHalfOpenFlows},
      {"unassuredUdpFlows", h::kUnassuredUdpFlows}, {"evictedHalfOpenQuota", h::kEvictedHalfOpenQuota},
      {"evictedUdpQuota", h::kEvictedUdpQuota}, {"evictedHalfOpenRoom", h::kEvictedHalfOpenRoom},
      {"evictedUdpRoom", h::kEvictedUdpRoom}, {"expiredEarly", h::kExpiredEarly}};
  for (const auto& [name, offset] : headerFields) header.Set(name, double(offset));
  layout.Set("header", header);
  Napi::Object entry = Napi::Object::New(env);
  namespace e = flow::entry;
  const std::pair<const char*, size_t> entryFields[] = {
      {"status", e::kStatus},       {"protocol", e::kProtocol},     {"state", e::kState},
      {"realId", e::kRealId},       {"clientIp", e::kClientIp},     {"vip", e::kVip},
      {"realIp", e::kRealIp},       {"clientPort", e::kClientPort}, {"vport", e::kVport},
      {"realPort", e::kRealPort},   {"flags", e::kFlags},           {"lastSeenMs", e::kLastSeenMs},
      {"packetsIn", e::kPacketsIn}, {"bytesIn", e::kBytesIn},       {"packetsOut", e::kPacketsOut},
      {"bytesOut", e::kBytesOut},   {"createdMs", e::kCreatedMs}, {"kernelPacketsIn", e::kKernelPacketsIn},
      {"kernelBytesIn", e::kKernelBytesIn}, {"kernelPacketsOut", e::kKernelPacketsOut}, {"kernelBytesOut", e::kKernelBytesOut},
      {"timeoutProfile", e::kTimeoutProfile},
      {"controlledFlows", e::kControlledFlows}, {"templateSerial", e::kTemplateSerial}, {"templateTimeoutS", e::kTemplateTimeoutS},
      {"localIp", e::kLocalIp},     {"localPort", e::kLocalPort}};
  for (const auto& [name, offset] : entryFields) entry.Set(name, double(offset));
  layout.Set("entry", entry);
  Napi::Array states = Napi::Array::New(env);
  const char* stateNames[] = {"NONE", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "TIME_WAIT", "CLOSE", "UDP"};
  for (uint32_t i = 0; i < flow::kFlowStateCount; ++i) states.Set(i, stateNames[i]);
  layout.Set("states", states);
  Napi::Object realCounters = Napi::Object::New(env);
  realCounters.Set("offset", double(flow::offsetsFor(flow::kMinCapacity).realCounters));
  realCounters.Set("bytesPerReal", double(flow::kRealCountersBytes));
  realCounters.Set("realIdCount", double(flow::kRealIdCount));
  realCounters.Set("active", double(flow::real_counters::kActive));
  realCounters.Set("inactive", double(flow::real_counters::kInactive));
  realCounters.Set("templates", double(flow::real_counters::kTemplates));
  layout.Set("realCounters", realCounters);
  Napi::Object flagBits = Napi::Object::New(env);
  flagBits.Set("template", double(flow::flags::kTemplate));
  flagBits.Set("fullNat", double(flow::flags::kFullNat));
  flagBits.Set("midStreamStart", double(flow::flags::kMidStreamStart));
  flagBits.Set("pickedUp", double(flow::flags::kPickedUp));
  flagBits.Set("kernelScheduled", double(flow::flags::kKernelScheduled));
  layout.Set("flags", flagBits);
  layout.Set("minCapacity", flow::kMinCapacity);
  layout.Set("maxCapacity", flow::kMaxCapacity);
  return layout;
}

// Which frames natlb owns and how the kernel learns it (flow/reply_claims.h): the kernel set-up is built
// from these facts.
Napi::Value ReplyClaims(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("claimMark", double(flow::kClaimMark));
  out.Set("renewMark", double(flow::kRenewMark));
  out.Set("releaseMark", double(flow::kReleaseMark));
  out.Set("lifetimeSeconds", double(flow::kReplyClaimLifetimeSeconds));
  return out;
}

Napi::Value FlowTableBytes(const Napi::CallbackInfo& info) {
  const uint32_t capacity = integerFrom(info[0], "capacity", flow::kMinCapacity, flow::kMaxCapacity);
  return Napi::Number::New(info.Env(), double(flow::offsetsFor(capacity).totalBytes));
}

Napi::Value InitializeFlowTable(const Napi::CallbackInfo& info) {
  size_t length = 0;
  uint8_t* memory = bytesOf(info[0], length, "flow map memory");
  const uint32_t capacity = integerFrom(info[1], "capacity", flow::kMinCapacity, flow::kMaxCapacity);
  if (length < flow::offsetsFor(capacity).totalBytes) {
    throw Napi::RangeError::New(info.Env(), "flow map memory is smaller than flowTableBytes(capacity)");
  }
  if ((reinterpret_cast<uintptr_t>(memory) & 7) != 0) {
    throw Napi::RangeError::New(info.Env(), "flow map memory must be 8-byte aligned (use a fresh SharedArrayBuffer)");
  }
  flow::FlowTable::initialize(memory, capacity, std::random_device{}());
  return info.Env().Undefined();
}

Napi::Value MonotonicMs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(engine::monotonicMs()));
}

// ---- the engine --------------------------------------------------------------------------------

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {InstanceMethod("start", &EngineWrap::Start), InstanceMethod("stop", &EngineWrap::Stop),
                        InstanceMethod("setServices", &EngineWrap::SetServices),
                        InstanceMethod("replaceServices", &EngineWrap::ReplaceServices),
                        InstanceMethod("servicesGeneration", &EngineWrap::ServicesGeneration),
                        InstanceMethod("overloadedRealIds", &EngineWrap::OverloadedRealIds),
                        InstanceMethod("setRoutes", &EngineWrap::SetRoutes),
                        InstanceMethod("learnNeighbours", &EngineWrap::LearnNeighbours),
                        InstanceMethod("setLocalAddresses", &EngineWrap::SetLocalAddresses),
                        InstanceMethod("setTimeouts", &EngineWrap::SetTimeouts),
                        InstanceMethod("setFloodProtection", &EngineWrap::SetFloodProtection),
                        InstanceMethod("endFlowsOf", &EngineWrap::EndFlowsOf),
                        InstanceMethod("renewReplyClaims", &EngineWrap::RenewReplyClaims),
                        InstanceMethod("counters", &EngineWrap::Counters),
                        InstanceMethod("setGatewayRole", &EngineWrap::SetGatewayRole),
                        InstanceMethod("gatewayRole", &EngineWrap::GatewayRoleNow),
                        InstanceMethod("realTraffic", &EngineWrap::RealTraffic),
                        InstanceMethod("neighbours", &EngineWrap::Neighbours),
                        InstanceMethod("xdpStates", &EngineWrap::XdpStates),
                        InstanceMethod("kernelFastPathFlows", &EngineWrap::KernelFastPathFlows),
                        InstanceMethod("kernelFastPathState", &EngineWrap::KernelFastPathState),
                        InstanceMethod("setKernelScheduling", &EngineWrap::SetKernelScheduling),
                        InstanceMethod("workerThreads", &EngineWrap::WorkerThreadsInUse),
                        InstanceMethod("isRunning", &EngineWrap::IsRunning),
                        InstanceMethod("startSync", &EngineWrap::StartSync),
                        InstanceMethod("stopSync", &EngineWrap::StopSync),
                        InstanceMethod("syncCounters", &EngineWrap::SyncCounters),
                        InstanceMethod("offloadEstablishedFlows", &EngineWrap::OffloadEstablishedFlows),
                        InstanceMethod("replaceInterfaces", &EngineWrap::ReplaceInterfaces)});
  }

  static std::vector<engine::InterfaceConfig> interfacesFrom(Napi::Env env, Napi::Value value, const std::string& what) {
    const Napi::Array interfaces = arrayAt(value, what);
    if (interfaces.Length() == 0) throw Napi::TypeError::New(env, what + " must not be empty");
    std::vector<engine::InterfaceConfig> out;
    for (uint32_t i = 0; i < interfaces.Length(); ++i) {
      const std::string where = what + "[" + std::to_string(i) + "]";
      const Napi::Object item = objectAt(interfaces.Get(i), where);
      engine::InterfaceConfig config;
      config.name = item.Get("name").ToString();
      config.ifindex = int(integerFrom(item.Get("ifindex"), where + ".ifindex", 1, 0x7fffffff));
      config.mac = macFrom(item.Get("mac"), where + ".mac");
      const std::string role = item.Get("role").ToString();
      if (role != "client" && role != "backend") throw Napi::TypeError::New(env, where + ".role must be client or backend");
      config.role = role == "client" ? engine::InterfaceRole::Client : engine::InterfaceRole::Backend;
      if (item.Has("receivePath") && !item.Get("receivePath").IsUndefined()) {
        const std::string path = item.Get("receivePath").ToString();
        if (path != "af_packet" && path != "af_xdp") {
          throw Napi::TypeError::New(env, where + ".receivePath must be \"af_packet\" or \"af_xdp\"");
        }
        config.receivePath = path == "af_xdp" ? engine::ReceivePath::AfXdp : engine::ReceivePath::AfPacket;
      }
      const Napi::Array addresses = arrayAt(item.Get("addresses"), where + ".addresses");
      for (uint32_t j = 0; j < addresses.Length(); ++j) {
        const Napi::Object address = objectAt(addresses.Get(j), where + ".addresses[]");
        config.addresses.push_back({ipFrom(address.Get("ip"), where + ".addresses[].ip"),
                                    uint8_t(integerFrom(address.Get("prefixLength"), where + ".prefixLength", 0, 32))});
      }
      out.push_back(std::move(config));
    }
    return out;
  }

  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    Napi::Env env = info.Env();
    const Napi::Object options = objectAt(info[0], "engine options");
    size_t length = 0;
    uint8_t* memory = bytesOf(options.Get("flowTable"), length, "options.flowTable");
    // Only a map large enough to have a mapping of its own: glibc's malloc serves anything above its
    // mmap threshold (at most 32 MiB) that way, so no other allocation shares those pages with it,
    // and a forked child (before its exec) never misses memory it needs.
    constexpr size_t kOwnMappingBytes = size_t{64} << 20;
    if (length >= kOwnMappingBytes) io::excludeFromForks(memory, length);
    memory_ = Napi::Persistent(options.Get("flowTable").As<Napi::Uint8Array>());
    flows_ = guarded(env, [&] { return std::make_unique<flow::FlowTable>(memory, length); });
    engine::EngineOptions engineOptions;
    engineOptions.interfaces = interfacesFrom(env, options.Get("interfaces"), "options.interfaces");
    if (options.Has("coalesceTcp") && !options.Get("coalesceTcp").IsUndefined()) {
      if (!options.Get("coalesceTcp").IsBoolean()) throw Napi::TypeError::New(env, "options.coalesceTcp must be a boolean");
      engineOptions.coalesceTcp = options.Get("coalesceTcp").As<Napi::Boolean>();
    }
    if (options.Has("kernelFastPath") && !options.Get("kernelFastPath").IsUndefined()) {
      const Napi::Value mode = options.Get("kernelFastPath");
      if (mode.IsBoolean()) {
        engineOptions.kernelFastPath = mode.As<Napi::Boolean>() ? engine::KernelFastPathMode::Required : engine::KernelFastPathMode::Off;
      } else if (!mode.IsString() || mode.As<Napi::String>().Utf8Value() != "auto") {
        throw Napi::TypeError::New(env, "options.kernelFastPath must be \"auto\", true or false");
      }
    }
    if (options.Has("workerThreads") && !options.Get("workerThreads").IsUndefined()) {
      const Napi::Value threads = options.Get("workerThreads");
      const std::string name = threads.IsString() ? threads.As<Napi::String>().Utf8Value() : "";
      if (name == "auto") {
        engineOptions.workerThreads = engine::WorkerThreads::Auto;
      } else if (name == "one") {
        engineOptions.workerThreads = engine::WorkerThreads::One;
      } else if (name == "perInterface") {
        engineOptions.workerThreads = engine::WorkerThreads::PerInterface;
      } else {
        throw Napi::TypeError::New(env, "options.workerThreads must be \"auto\", \"one\" or \"perInterface\"");
      }
    }
    engine_ = std::make_unique<engine::Engine>(*flows_, std::move(engineOptions));
  }

  ~EngineWrap() override {
    if (engine_) engine_->stop();  // workers must not outlive the memory they write
  }

 private:
  Napi::Value KernelFastPathFlows(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(engine_->kernelFastPathFlows()));
  }

  Napi::Value KernelFastPathState(const Napi::CallbackInfo& info) {
    const engine::Engine::KernelFastPathState state = engine_->kernelFastPathState();
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("active", state.active);
    if (!state.unavailable.empty()) out.Set("unavailable", state.unavailable);
    out.Set("schedulingServices", double(state.schedulingServices));
    out.Set("scheduling", state.scheduling);
    return out;
  }

  Napi::Value SetKernelScheduling(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsBoolean()) throw Napi::TypeError::New(info.Env(), "setKernelScheduling(allowed: boolean)");
    engine_->setKernelScheduling(info[0].As<Napi::Boolean>());
    return info.Env().Undefined();
  }

  Napi::Value StartSync(const Napi::CallbackInfo& info) {
    sync::SyncOptions options = syncOptionsFrom(info[0]);
    guarded(info.Env(), [&] { engine_->startSync(std::move(options)); });
    return info.Env().Undefined();
  }

  Napi::Value StopSync(const Napi::CallbackInfo& info) {
    engine_->stopSync();
    return info.Env().Undefined();
  }

  Napi::Value SyncCounters(const Napi::CallbackInfo& info) {
    const auto values = engine_->syncCounters();
    if (!values) return info.Env().Null();
    return syncCountersToObject(info.Env(), *values);
  }

  Napi::Value OffloadEstablishedFlows(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(engine_->offloadEstablishedFlows()));
  }

  Napi::Value WorkerThreadsInUse(const Napi::CallbackInfo& info) {
    const bool one = engine_->workerThreadsInUse() == engine::WorkerThreads::One;
    return Napi::String::New(info.Env(), one ? "one" : "perInterface");
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    guarded(info.Env(), [&] { engine_->start(); });
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    engine_->stop();
    return info.Env().Undefined();
  }

  Napi::Value ReplaceInterfaces(const Napi::CallbackInfo& info) {
    std::vector<engine::InterfaceConfig> interfaces = interfacesFrom(info.Env(), info[0], "interfaces");
    guarded(info.Env(), [&] { engine_->replaceInterfaces(std::move(interfaces)); });
    return info.Env().Undefined();
  }

  Napi::Value IsRunning(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), engine_->running()); }

  static std::vector<engine::Service> servicesFrom(const Napi::CallbackInfo& info) {
    const Napi::Array list = arrayAt(info[0], "services");
    std::vector<engine::Service> services;
    for (uint32_t i = 0; i < list.Length(); ++i) services.push_back(serviceFrom(list.Get(i), "services[" + std::to_string(i) + "]"));
    return services;
  }

  Napi::Value SetServices(const Napi::CallbackInfo& info) {
    std::vector<engine::Service> services = servicesFrom(info);
    guarded(info.Env(), [&] { engine_->setServices(std::move(services)); });
    return info.Env().Undefined();
  }

  Napi::Value ReplaceServices(const Napi::CallbackInfo& info) {
    std::vector<engine::Service> services = servicesFrom(info);
    guarded(info.Env(), [&] { engine_->replaceServices(std::move(services)); });
    return info.Env().Undefined();
  }

  Napi::Value ServicesGeneration(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(engine_->servicesGeneration()));
  }

  Napi::Value OverloadedRealIds(const Napi::CallbackInfo& info) {
    const std::vector<uint16_t> ids = engine_->overloadedRealIds();
    Napi::Array out = Napi::Array::New(info.Env(), ids.size());
    for (uint32_t i = 0; i < ids.size(); ++i) out.Set(i, double(ids[i]));
    return out;
  }

  Napi::Value SetRoutes(const Napi::CallbackInfo& info) {
    const Napi::Array list = arrayAt(info[0], "routes");
    std::vector<engine::Route> routes;
    for (uint32_t i = 0; i < list.Length(); ++i) {
      const std::string where = "routes[" + std::to_string(i) + "]";
      const Napi::Object item = objectAt(list.Get(i), where);
      const Napi::Value gateway = item.Get("gateway");
      routes.push_back({ipFrom(item.Get("prefix"), where + ".prefix"),
                        uint8_t(integerFrom(item.Get("prefixLength"), where + ".prefixLength", 0, 32)),
                        int(integerFrom(item.Get("ifindex"), where + ".ifindex", 1, 0x7fffffff)),
                        gateway.IsUndefined() || gateway.IsNull() ? 0 : ipFrom(gateway, where + ".gateway")});
    }
    engine_->setRoutes(std::move(routes));
    return info.Env().Undefined();
  }

  Napi::Value LearnNeighbours(const Napi::CallbackInfo& info) {
    const Napi::Array list = arrayAt(info[0], "neighbours");
    std::vector<engine::NeighbourEntry> neighbours;
    for (uint32_t i = 0; i < list.Length(); ++i) {
      const std::string where = "neighbours[" + std::to_string(i) + "]";
      const Napi::Object item = objectAt(list.Get(i), where);
      neighbours.push_back({ipFrom(item.Get("ip"), where + ".ip"), macFrom(item.Get("mac"), where + ".mac"),
                            int(integerFrom(item.Get("ifindex"), where + ".ifindex", 1, 0x7fffffff))});
    }
    engine_->learnNeighbours(neighbours);
    return info.Env().Undefined();
  }

  Napi::Value SetLocalAddresses(const Napi::CallbackInfo& info) {
    const Napi::Array list = arrayAt(info[0], "addresses");
    std::vector<uint32_t> addresses;
    for (uint32_t i = 0; i < list.Length(); ++i) {
      addresses.push_back(ipFrom(list.Get(i), "addresses[" + std::to_string(i) + "]"));
    }
    guarded(info.Env(), [&] { engine_->setLocalAddresses(std::move(addresses)); });
    return info.Env().Undefined();
  }

  Napi::Value SetTimeouts(const Napi::CallbackInfo& info) {
    engine_->setTimeouts(timeoutsFrom(info[0], flow::TimeoutSeconds{}, "timeouts"));
    return info.Env().Undefined();
  }

  Napi::Value RenewReplyClaims(const Napi::CallbackInfo& info) {
    engine_->renewReplyClaims();
    return info.Env().Undefined();
  }

  Napi::Value EndFlowsOf(const Napi::CallbackInfo& info) {
    const Napi::Array list = arrayAt(info[0], "reals");
    std::vector<engine::DeadReal> reals;
    for (uint32_t i = 0; i < list.Length(); ++i) {
      const std::string where = "reals[" + std::to_string(i) + "]";
      const Napi::Object item = objectAt(list.Get(i), where);
      const Napi::Value reset = item.Get("reset");
      if (!reset.IsBoolean()) throw Napi::TypeError::New(info.Env(), where + ".reset must be a boolean");
      reals.push_back({ipFrom(item.Get("vip"), where + ".vip"), uint16_t(integerFrom(item.Get("port"), where + ".port", 1, 65535)),
                       protocolFrom(item.Get("protocol"), where + ".protocol"), ipFrom(item.Get("realIp"), where + ".realIp"),
                       uint16_t(integerFrom(item.Get("realPort"), where + ".realPort", 1, 65535)), reset.As<Napi::Boolean>()});
    }
    engine_->endFlowsOf(std::move(reals));
    return info.Env().Undefined();
  }

  // Shares in thousandths of the flow map's capacity, the short timeout in seconds (flow_table.h).
  Napi::Value SetFloodProtection(const Napi::CallbackInfo& info) {
    const Napi::Object item = objectAt(info[0], "flood protection");
    flow::FloodDefences& defences = flows_->floodDefences();
    auto read = [&](const char* name, std::atomic<uint32_t>& field, uint32_t min, uint32_t max) {
      if (item.Has(name)) field.store(integerFrom(item.Get(name), std::string("floodProtection.") + name, min, max));
    };
    read("halfOpenSharePermille", defences.halfOpenSharePermille, 1, 1000);
    read("udpSharePermille", defences.udpSharePermille, 1, 1000);
    read("pressureAtPermille", defences.pressureAtPermille, 0, 1000);
    read("pressureTimeoutSeconds", defences.pressureTimeoutSeconds, 1, 86400);
    return info.Env().Undefined();
  }

  // setGatewayRole("master" | "backup" | "fault", { rounds, intervalMs }): the takeover's gratuitous ARP.
  Napi::Value SetGatewayRole(const Napi::CallbackInfo& info) {
    const std::string name = info[0].IsString() ? std::string(info[0].As<Napi::String>()) : std::string();
    const auto role = engine::gatewayRoleNamed(name);
    if (!role) throw Napi::TypeError::New(info.Env(), "role must be \"master\", \"backup\" or \"fault\"");
    const Napi::Object announce = objectAt(info[1], "announcement");
    const engine::TakeoverAnnouncement announcement{integerFrom(announce.Get("rounds"), "announcement.rounds", 0, 100),
                                                     integerFrom(announce.Get("intervalMs"), "announcement.intervalMs", 1, 60000)};
    engine_->setGatewayRole(*role, announcement);
    return info.Env().Undefined();
  }

  Napi::Value GatewayRoleNow(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), std::string(engine::gatewayRoleName(engine_->gatewayRole())));
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Object out = Napi::Object::New(info.Env());
    const auto values = engine_->counters();
    for (size_t i = 0; i < values.size(); ++i) {
      out.Set(std::string(engine::kCounterNames[i]), Napi::Number::New(info.Env(), double(values[i])));
    }
    return out;
  }

  // realTraffic(realIds) -> [{ connections, packetsIn, packetsOut, bytesIn, bytesOut }] in that order
  Napi::Value RealTraffic(const Napi::CallbackInfo& info) {
    const Napi::Array ids = arrayAt(info[0], "realIds");
    std::vector<uint16_t> realIds;
    realIds.reserve(ids.Length());
    for (uint32_t i = 0; i < ids.Length(); ++i) realIds.push_back(uint16_t(integerFrom(ids.Get(i), "realIds[i]", 0, 65535)));
    const auto traffic = engine_->realTraffic(realIds);
    Napi::Array out = Napi::Array::New(info.Env(), traffic.size());
    for (uint32_t i = 0; i < traffic.size(); ++i) {
      Napi::Object item = Napi::Object::New(info.Env());
      for (size_t stat = 0; stat < engine::kRealStatCount; ++stat) {
        item.Set(std::string(engine::kRealStatNames[stat]), Napi::Number::New(info.Env(), double(traffic[i][stat])));
      }
      out.Set(i, item);
    }
    return out;
  }

  Napi::Value Neighbours(const Napi::CallbackInfo& info) {
    const auto entries = engine_->neighbours();
    Napi::Array out = Napi::Array::New(info.Env(), entries.size());
    for (uint32_t i = 0; i < entries.size(); ++i) {
      Napi::Object item = Napi::Object::New(info.Env());
      item.Set("ip", ipToString(entries[i].ip));
      item.Set("mac", macToString(entries[i].mac));
      item.Set("ifindex", entries[i].ifindex);
      out.Set(i, item);
    }
    return out;
  }

  Napi::Value XdpStates(const Napi::CallbackInfo& info) {
    const auto states = engine_->xdpStates();
    Napi::Array out = Napi::Array::New(info.Env(), states.size());
    for (uint32_t i = 0; i < states.size(); ++i) {
      Napi::Object item = Napi::Object::New(info.Env());
      item.Set("name", states[i].interface);
      item.Set("mode", states[i].mode);
      item.Set("receiveQueues", double(states[i].receiveQueues));
      out.Set(i, item);
    }
    return out;
  }

  Napi::Reference<Napi::Uint8Array> memory_;
  std::unique_ptr<flow::FlowTable> flows_;
  std::unique_ptr<engine::Engine> engine_;
};

// ---- pure packet functions, exposed for tests ------------------------------------------------------

Napi::Value ParseFrame(const Napi::CallbackInfo& info) {
  size_t length = 0;
  uint8_t* frame = bytesOf(info[0], length, "frame");
  const packet::ParsedFrame parsed = packet::parseIpv4Frame(frame, length);
  if (parsed.error != packet::ParseError::None) return failure(info.Env(), packet::describe(parsed.error));
  const packet::Ipv4FrameView& v = parsed.view;
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("ok", true);
  out.Set("protocol", v.protocol);
  out.Set("src", ipToString(v.sourceIp()));
  out.Set("dst", ipToString(v.destinationIp()));
  out.Set("sport", v.sourcePort());
  out.Set("dport", v.destinationPort());
  out.Set("ttl", v.ttl());
  out.Set("l3Offset", double(v.l3Offset));
  out.Set("l4Offset", double(v.l4Offset));
  out.Set("l4Length", double(v.l4Length));
  return out;
}

// What the AF_XDP path concludes about a frame's L4 checksum field (packet/checksum_state.h).
Napi::Value ChecksumStateOf(const Napi::CallbackInfo& info) {
  size_t length = 0;
  uint8_t* frame = bytesOf(info[0], length, "frame");
  const packet::ParsedFrame parsed = packet::parseIpv4Frame(frame, length);
  if (parsed.error != packet::ParseError::None) return failure(info.Env(), packet::describe(parsed.error));
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("ok", true);
  const auto partial = packet::partialChecksumOf(parsed.view);
  out.Set("checksum", partial ? "partial" : "complete");
  if (partial) {
    out.Set("start", partial->start);
    out.Set("offset", partial->offset);
  }
  return out;
}

template <packet::RewriteError (*Rewrite)(const packet::Ipv4FrameView&, uint32_t, uint16_t, packet::ChecksumMode)>
Napi::Value RewriteFrame(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t length = 0;
  uint8_t* frame = bytesOf(info[0], length, "frame");
  const Napi::Object endpoint = objectAt(info[1], "endpoint");
  const uint32_t ip = ipFrom(endpoint.Get("ip"), "endpoint.ip");
  const uint16_t port = uint16_t(integerFrom(endpoint.Get("port"), "endpoint.port", 0, 65535));
  const std::string mode = info[2].IsString() ? std::string(info[2].As<Napi::String>()) : std::string();
  if (mode != "complete" && mode != "partial") throw Napi::TypeError::New(env, "checksum must be complete or partial");
  const packet::ParsedFrame parsed = packet::parseIpv4Frame(frame, length);
  if (parsed.error != packet::ParseError::None) return failure(env, packet::describe(parsed.error));
  const packet::RewriteError error =
      Rewrite(parsed.view, ip, port, mode == "partial" ? packet::ChecksumMode::Partial : packet::ChecksumMode::Complete);
  if (error != packet::RewriteError::None) return failure(env, packet::describe(error));
  Napi::Object out = Napi::Object::New(env);
  out.Set("ok", true);
  return out;
}

// Merges frames the way the transmit path does (io/frame_sender.cc), for tests: all of them into one
// GSO super-frame, or a reason why not.
Napi::Value CoalesceSegments(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Napi::Array frames = arrayAt(info[0], "frames");
  const std::string mode = info[1].IsString() ? std::string(info[1].As<Napi::String>()) : std::string();
  if (mode != "complete" && mode != "partial") throw Napi::TypeError::New(env, "checksum must be complete or partial");
  io::VirtioNetHeader vnet{};
  vnet.flags = mode == "partial" ? io::kVnetNeedsChecksum : 0;
  std::vector<packet::TcpSegment> segments;
  size_t payload = 0;
  for (uint32_t i = 0; i < frames.Length(); ++i) {
    size_t length = 0;
    uint8_t* frame = bytesOf(frames.Get(i), length, "frames[" + std::to_string(i) + "]");
    const auto segment = packet::coalescibleSegment(frame, length, vnet);
    if (!segment) return failure(env, "frames[" + std::to_string(i) + "] is not a coalescible segment");
    if (!segments.empty() && !packet::canAppend(segments.front(), segments.back(), *segment, segments.size(), payload)) {
      return failure(env, "frames[" + std::to_string(i) + "] does not continue the group");
    }
    segments.push_back(*segment);
    payload += segment->payloadLength;
  }
  if (segments.size() < 2) return failure(env, "at least two segments are needed");
  Napi::Uint8Array out = Napi::Uint8Array::New(env, segments.front().headerLength + payload);
  io::VirtioNetHeader superVnet{};
  packet::buildSuperFrame(segments.data(), segments.size(), out.Data(), superVnet);
  Napi::Object result = Napi::Object::New(env);
  result.Set("ok", true);
  result.Set("frame", out);
  result.Set("gsoType", superVnet.gsoType);
  result.Set("gsoSize", superVnet.gsoSize);
  result.Set("headerLength", superVnet.headerLength);
  result.Set("checksumStart", superVnet.checksumStart);
  result.Set("checksumOffset", superVnet.checksumOffset);
  result.Set("needsChecksum", (superVnet.flags & io::kVnetNeedsChecksum) != 0);
  return result;
}

// Translates an ICMP error frame in place, as the workers do (for tests).
Napi::Value TranslateIcmpError(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t length = 0;
  uint8_t* frame = bytesOf(info[0], length, "frame");
  const Napi::Object spec = objectAt(info[1], "translation");
  const auto optionalIp = [&](const char* name) {
    const Napi::Value value = spec.Get(name);
    return value.IsUndefined() ? 0u : ipFrom(value, std::string("translation.") + name);
  };
  const std::string side = spec.Get("side").ToString();
  if (side != "source" && side != "destination") throw Napi::TypeError::New(env, "translation.side must be source or destination");
  const packet::IcmpTranslation translation{
      optionalIp("outerSource"), optionalIp("outerDestination"),
      side == "source" ? packet::QuotedSide::Source : packet::QuotedSide::Destination,
      ipFrom(spec.Get("ip"), "translation.ip"), uint16_t(integerFrom(spec.Get("port"), "translation.port", 0, 65535))};
  const auto icmp = packet::parseIcmp(frame, length);
  if (!icmp) return failure(env, "not an ICMP frame");
  const auto quoted = packet::isIcmpError(icmp->type) ? packet::quotedPacket(*icmp) : std::nullopt;
  if (!quoted) return failure(env, "not an ICMP error quoting a TCP or UDP packet");
  if (!packet::translateIcmpError(*icmp, *quoted, translation)) return failure(env, "ttl expired");
  Napi::Object out = Napi::Object::New(env);
  out.Set("ok", true);
  return out;
}

Napi::Value TcxIngressPrograms(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "interface name expected");
  const std::string name = info[0].ToString();
  const unsigned ifindex = if_nametoindex(name.c_str());
  if (ifindex == 0) throw Napi::Error::New(env, "no interface " + name + " in this network namespace");
  std::vector<uint32_t> ids;
  guarded(env, [&] { ids = io::tcxIngressPrograms(int(ifindex)); });
  Napi::Array out = Napi::Array::New(env, ids.size());
  for (uint32_t i = 0; i < ids.size(); ++i) out.Set(i, double(ids[i]));
  return out;
}

// The control socket's access check: who connected (io/peer_credentials.h). `fd` is a connected unix
// socket the caller owns; it is only read.
Napi::Value PeerCredentialsOf(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int fd = int(integerFrom(info[0], "fd", 0, 0x7fffffff));
  io::PeerCredentials credentials;
  guarded(env, [&] { credentials = io::peerCredentials(fd); });
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", double(credentials.pid));
  out.Set("uid", double(credentials.uid));
  out.Set("gid", double(credentials.gid));
  Napi::Array groups = Napi::Array::New(env, credentials.groups.size());
  for (uint32_t i = 0; i < credentials.groups.size(); ++i) groups.Set(i, double(credentials.groups[i]));
  out.Set("groups", groups);
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("flowLayout", Napi::Function::New(env, FlowLayout));
  exports.Set("flowTableBytes", Napi::Function::New(env, FlowTableBytes));
  exports.Set("replyClaims", Napi::Function::New(env, ReplyClaims));
  exports.Set("initializeFlowTable", Napi::Function::New(env, InitializeFlowTable));
  exports.Set("monotonicMs", Napi::Function::New(env, MonotonicMs));
  exports.Set("Engine", EngineWrap::Define(env));
  exports.Set("tcxIngressPrograms", Napi::Function::New(env, TcxIngressPrograms));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentialsOf));
  exports.Set("syncMessage", syncMessageFunctions(env));
  Napi::Object packetFunctions = Napi::Object::New(env);
  packetFunctions.Set("parse", Napi::Function::New(env, ParseFrame));
  packetFunctions.Set("checksumStateOf", Napi::Function::New(env, ChecksumStateOf));
  packetFunctions.Set("rewriteDestination", Napi::Function::New(env, RewriteFrame<packet::rewriteDestination>));
  packetFunctions.Set("rewriteSource", Napi::Function::New(env, RewriteFrame<packet::rewriteSource>));
  packetFunctions.Set("coalesceSegments", Napi::Function::New(env, CoalesceSegments));
  packetFunctions.Set("translateIcmpError", Napi::Function::New(env, TranslateIcmpError));
  addTestSurface(env, exports, packetFunctions);
  exports.Set("packet", packetFunctions);
  return exports;
}

}  // namespace

NODE_API_MODULE(natlb, Init)
