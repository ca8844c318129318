// A service as JavaScript hands it to the data plane (src/native.ts, NativeService) into the engine's
// Service: Node-API glue shared by addon.cc and test_surface.cc, refusing a bad field by name.
#pragma once
#include <napi.h>

#include <string>

#include "engine/service_table.h"

namespace natlb::napi {

engine::Service serviceFrom(const Napi::Value& value, const std::string& where);

}  // namespace natlb::napi
