// The flow sync's Node-API glue (src/native.ts: NativeSyncOptions, the addon's syncMessage functions):
// options from JavaScript, counters and messages back. Shared by addon.cc.
#pragma once
#include <napi.h>

#include <array>

#include "sync/flow_sync.h"

namespace natlb::napi {

sync::SyncOptions syncOptionsFrom(const Napi::Value& value);
Napi::Object syncCountersToObject(Napi::Env env, const std::array<uint64_t, size_t(sync::SyncCounter::Count)>& values);
// { encode(header, records, key), decode(datagram, key), counterNames, maxRecordsPerDatagram, ... }:
// the pure message code, for tests and the e2e tests' spoofed datagrams.
Napi::Object syncMessageFunctions(Napi::Env env);

}  // namespace natlb::napi
