// Conversions between JavaScript values and the data plane's types, for the Node-API glue
// (addon.cc, test_surface.cc): each refuses a bad value with a TypeError or RangeError naming it.
#pragma once
#include <arpa/inet.h>
#include <napi.h>

#include <cstdio>
#include <string>
#include <string_view>

#include "flow/timeout_profiles.h"
#include "packet/wire.h"

namespace natlb::napi {

inline std::string ipToString(uint32_t ip) {
  char text[INET_ADDRSTRLEN];
  const uint32_t network = htonl(ip);
  inet_ntop(AF_INET, &network, text, sizeof text);
  return text;
}

inline uint32_t ipFrom(const Napi::Value& value, const std::string& what) {
  if (!value.IsString()) throw Napi::TypeError::New(value.Env(), what + " must be an IPv4 address string");
  const std::string text = value.As<Napi::String>();
  in_addr address{};
  if (inet_pton(AF_INET, text.c_str(), &address) != 1) {
    throw Napi::TypeError::New(value.Env(), what + ": \"" + text + "\" is not an IPv4 address");
  }
  return ntohl(address.s_addr);
}

inline uint32_t integerFrom(const Napi::Value& value, const std::string& what, uint32_t min, uint32_t max) {
  if (!value.IsNumber()) throw Napi::TypeError::New(value.Env(), what + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= min && number <= max) || number != static_cast<double>(static_cast<uint64_t>(number))) {
    throw Napi::RangeError::New(value.Env(), what + " must be an integer in " + std::to_string(min) + ".." +
                                                 std::to_string(max));
  }
  return static_cast<uint32_t>(number);
}

inline packet::MacAddress macFrom(const Napi::Value& value, const std::string& what) {
  packet::MacAddress mac{};
  const std::string text = value.IsString() ? std::string(value.As<Napi::String>()) : std::string();
  unsigned parts[6];
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x", &parts[0], &parts[1], &parts[2], &parts[3], &parts[4],
                  &parts[5]) != 6) {
    throw Napi::TypeError::New(value.Env(), what + " must be a MAC address like 02:00:00:00:00:01");
  }
  for (size_t i = 0; i < 6; ++i) mac[i] = uint8_t(parts[i]);
  return mac;
}

inline std::string macToString(const packet::MacAddress& mac) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return text;
}

inline Napi::Object objectAt(const Napi::Value& value, const std::string& what) {
  if (!value.IsObject()) throw Napi::TypeError::New(value.Env(), what + " must be an object");
  return value.As<Napi::Object>();
}

inline Napi::Array arrayAt(const Napi::Value& value, const std::string& what) {
  if (!value.IsArray()) throw Napi::TypeError::New(value.Env(), what + " must be an array");
  return value.As<Napi::Array>();
}

inline uint8_t protocolFrom(const Napi::Value& value, const std::string& what) {
  const std::string text = value.IsString() ? std::string(value.As<Napi::String>()) : std::string();
  if (text == "tcp") return packet::kProtocolTcp;
  if (text == "udp") return packet::kProtocolUdp;
  throw Napi::TypeError::New(value.Env(), what + " must be \"tcp\" or \"udp\"");
}

// Runs `body`, turning C++ exceptions into JavaScript ones.
template <typename Body>
auto guarded(Napi::Env env, Body body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& error) {
    throw Napi::Error::New(env, error.what());
  }
}

inline uint8_t* bytesOf(const Napi::Value& value, size_t& length, const std::string& what) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(value.Env(), what + " must be a Uint8Array");
  }
  Napi::Uint8Array array = value.As<Napi::Uint8Array>();
  length = array.ByteLength();
  return array.Data();
}

// A refusal as the packet functions report it: { ok: false, reason }.
inline Napi::Object failure(Napi::Env env, std::string_view reason) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("ok", false);
  out.Set("reason", std::string(reason));
  return out;
}

// The timeouts `value` names (config names, seconds), the others as in `t`.
inline flow::TimeoutSeconds timeoutsFrom(const Napi::Value& value, flow::TimeoutSeconds t, const std::string& where) {
  const Napi::Object item = objectAt(value, where);
  // The config's bound (src/config.ts CONFIG_LIMITS.maxTimeoutSeconds: milliseconds fit an int32).
  constexpr uint32_t kMaxSeconds = 2147483;
  auto read = [&](const char* name, uint32_t& field) {
    if (item.Has(name) && !item.Get(name).IsUndefined()) field = integerFrom(item.Get(name), where + "." + name, 1, kMaxSeconds);
  };
  read("tcpSynRecv", t.tcpSynRecv);
  read("tcpEstablished", t.tcpEstablished);
  read("tcpFinWait", t.tcpFinWait);
  read("tcpTimeWait", t.tcpTimeWait);
  read("tcpClose", t.tcpClose);
  read("udp", t.udp);
  return t;
}

}  // namespace natlb::napi
