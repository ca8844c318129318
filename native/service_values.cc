#include "service_values.h"

#include <algorithm>
#include <vector>

#include "napi_values.h"

namespace natlb::napi {

namespace {

// A real's own forwarding ("nat", "dr", "fullnat") as a flow mode; absent: the service's.
uint16_t realModeFrom(const Napi::Object& real, const engine::Service& service, const std::string& where) {
  const Napi::Value value = real.Get("forwarding");
  if (value.IsUndefined()) return service.serviceMode();
  const std::string name = value.IsString() ? value.As<Napi::String>().Utf8Value() : std::string{};
  if (name == "nat") return 0;
  if (name == "dr") return flow::flags::kDirectRouting;
  if (name == "fullnat") {
    if (service.localAddresses.empty()) throw Napi::TypeError::New(real.Env(), where + ".forwarding fullnat needs the service's fullNat pool");
    return flow::flags::kFullNat;
  }
  throw Napi::TypeError::New(real.Env(), where + ".forwarding must be nat, dr or fullnat");
}

flow::RealEndpoint endpointFrom(const Napi::Object& real, const std::string& where) {
  return {ipFrom(real.Get("ip"), where + ".ip"), uint16_t(integerFrom(real.Get("port"), where + ".port", 1, 65535)),
          uint16_t(integerFrom(real.Get("id"), where + ".id", 0, 65535))};
}

// An optional non-negative integer field; absent (undefined) is 0.
uint32_t optionalCount(const Napi::Object& item, const char* field, const std::string& where) {
  const Napi::Value value = item.Get(field);
  return value.IsUndefined() ? 0 : integerFrom(value, where + "." + field, 0, 0xffffffff);
}

Napi::Uint16Array uint16ArrayAt(const Napi::Value& value, const std::string& what) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array) {
    throw Napi::TypeError::New(value.Env(), what + " must be a Uint16Array");
  }
  return value.As<Napi::Uint16Array>();
}

}  // namespace

engine::Service serviceFrom(const Napi::Value& value, const std::string& where) {
  const Napi::Env env = value.Env();
  const Napi::Object item = objectAt(value, where);
  engine::Service service;
  service.vip = ipFrom(item.Get("vip"), where + ".vip");
  service.port = uint16_t(integerFrom(item.Get("port"), where + ".port", 1, 65535));
  service.protocol = protocolFrom(item.Get("protocol"), where + ".protocol");
  const std::string mode = item.Get("mode").ToString();
  const std::optional<engine::PickMode> pickMode = engine::pickModeNamed(mode);
  if (!pickMode) throw Napi::TypeError::New(env, where + ".mode must be cursor, random, hash, lc, wlc, sed or nq");
  service.mode = *pickMode;
  service.hashPort = item.Get("hashPort").ToBoolean();
  service.hashFallback = item.Get("hashFallback").ToBoolean();
  service.directRouting = item.Get("directRouting").ToBoolean();
  service.midStreamPickUp = item.Get("midStreamPickUp").ToBoolean();
  if (service.midStreamPickUp && service.mode != engine::PickMode::Hash) {
    throw Napi::TypeError::New(env, where + ".midStreamPickUp needs mode hash: only a consistent hash finds the real another instance chose");
  }
  const Napi::Value fullNat = item.Get("fullNat");
  if (!fullNat.IsUndefined()) {
    const std::string fullNatWhere = where + ".fullNat";
    const Napi::Object pool = objectAt(fullNat, fullNatWhere);
    const Napi::Array addresses = arrayAt(pool.Get("localAddresses"), fullNatWhere + ".localAddresses");
    if (addresses.Length() == 0) throw Napi::RangeError::New(env, fullNatWhere + ".localAddresses must name at least one address");
    for (uint32_t j = 0; j < addresses.Length(); ++j) {
      service.localAddresses.push_back(ipFrom(addresses.Get(j), fullNatWhere + ".localAddresses[" + std::to_string(j) + "]"));
    }
    service.localPorts.first = uint16_t(integerFrom(pool.Get("firstPort"), fullNatWhere + ".firstPort", 1, 65535));
    service.localPorts.last = uint16_t(integerFrom(pool.Get("lastPort"), fullNatWhere + ".lastPort", service.localPorts.first, 65535));
    service.fullNat = !pool.Get("forRealsOnly").ToBoolean();
    if (service.directRouting) throw Napi::TypeError::New(env, where + ": a service is either direct routing or full NAT");
    if (service.midStreamPickUp) throw Napi::TypeError::New(env, where + ": a full-NAT flow cannot be picked up mid-stream (its real knows it by another local address)");
  }
  const Napi::Array reals = arrayAt(item.Get("reals"), where + ".reals");
  std::vector<engine::RealLimit> limits;
  std::vector<uint16_t> modes;
  bool anyLimit = false;
  for (uint32_t j = 0; j < reals.Length(); ++j) {
    const std::string realWhere = where + ".reals[" + std::to_string(j) + "]";
    const Napi::Object real = objectAt(reals.Get(j), realWhere);
    service.reals.push_back(endpointFrom(real, realWhere));
    modes.push_back(realModeFrom(real, service, realWhere));
    const engine::RealLimit limit{optionalCount(real, "maxConns", realWhere), optionalCount(real, "minConnsToResume", realWhere)};
    if (limit.minConnsToResume > limit.maxConns) {
      throw Napi::RangeError::New(env, realWhere + ".minConnsToResume must not exceed maxConns");
    }
    anyLimit = anyLimit || limit.maxConns != 0;
    limits.push_back(limit);
  }
  const Napi::Uint16Array slotArray = uint16ArrayAt(item.Get("slots"), where + ".slots");
  service.slots.assign(slotArray.Data(), slotArray.Data() + slotArray.ElementLength());
  for (uint16_t slot : service.slots) {
    if (slot >= service.reals.size()) throw Napi::RangeError::New(env, where + ".slots holds an index past the end of reals");
  }
  if (engine::readsConnectionCounts(service.mode)) {
    const Napi::Value weights = item.Get("weights");
    if (!weights.IsTypedArray() || weights.As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array ||
        weights.As<Napi::Uint16Array>().ElementLength() != service.slots.size()) {
      throw Napi::TypeError::New(env, where + ".weights must be a Uint16Array with one weight per slot for mode " + mode);
    }
    const Napi::Uint16Array weightArray = weights.As<Napi::Uint16Array>();
    service.slotWeights.assign(weightArray.Data(), weightArray.Data() + weightArray.ElementLength());
  }
  const Napi::Value fallback = item.Get("fallback");
  if (!fallback.IsUndefined() && !fallback.IsNull()) {
    if (service.reals.size() >= 65535) throw Napi::RangeError::New(env, where + ": too many reals for a fallback real as well");
    service.fallback = uint16_t(service.reals.size());
    service.reals.push_back(endpointFrom(objectAt(fallback, where + ".fallback"), where + ".fallback"));
    limits.push_back({});  // the fallback real has no limit (keepalived's sorry_server has none)
    modes.push_back(service.serviceMode());
  }
  // The frame reaches a direct-routing real unchanged, so only a real on the service port can take it.
  for (size_t j = 0; j < service.reals.size(); ++j) {
    if (modes[j] == flow::flags::kDirectRouting && service.reals[j].port != service.port) {
      throw Napi::RangeError::New(env, where + ": a direct-routing real's port must be the service port " + std::to_string(service.port));
    }
  }
  service.setRealModes(std::move(modes));
  if (anyLimit) service.setLimits(std::move(limits));
  // Left out, or a field left out: the global value (0 in the service's timeout profile).
  const Napi::Value timeouts = item.Get("timeouts");
  if (!timeouts.IsUndefined()) {
    service.timeouts.seconds = flow::secondsByState(timeoutsFrom(timeouts, flow::TimeoutSeconds{0, 0, 0, 0, 0, 0}, where + ".timeouts"));
  }
  const Napi::Value persistence = item.Get("persistence");
  if (!persistence.IsUndefined() && !persistence.IsNull()) {
    const std::string persistenceWhere = where + ".persistence";
    const Napi::Object settings = objectAt(persistence, persistenceWhere);
    service.persistence.timeoutS = integerFrom(settings.Get("timeoutS"), persistenceWhere + ".timeoutS", 1, 86400 * 31);
    service.persistence.netmask = ipFrom(settings.Get("netmask"), persistenceWhere + ".netmask");
    if (!flow::isContiguousNetmask(service.persistence.netmask)) {
      throw Napi::RangeError::New(env, persistenceWhere + ".netmask must be a contiguous netmask such as 255.255.255.0");
    }
    const Napi::Array keeping = arrayAt(settings.Get("keepingRealIds"), persistenceWhere + ".keepingRealIds");
    for (uint32_t j = 0; j < keeping.Length(); ++j) {
      service.persistence.keepingRealIds.push_back(
          uint16_t(integerFrom(keeping.Get(j), persistenceWhere + ".keepingRealIds[" + std::to_string(j) + "]", 0, 65535)));
    }
    std::sort(service.persistence.keepingRealIds.begin(), service.persistence.keepingRealIds.end());
  }
  return service;
}

}  // namespace natlb::napi
