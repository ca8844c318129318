// The data plane's pure functions, the flow map's defences and the per-real traffic counting, exposed
// for the unit tests (test/tcpTracking.test.ts, test/routerFrames.test.ts, test/flowTableDefences.test.ts,
// test/realStats.test.ts). Nothing here runs in natlb's own paths: it is glue, like addon.cc.
#pragma once
#include <napi.h>

namespace natlb::napi {

// Adds the packet functions to `packet` and the FlowTableForTests and RealStatsForTests classes to `exports`.
void addTestSurface(Napi::Env env, Napi::Object exports, Napi::Object packet);

}  // namespace natlb::napi
