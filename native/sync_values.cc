#include "sync_values.h"

#include "napi_values.h"

namespace natlb::napi {

namespace {

sync::Endpoint endpointFrom(const Napi::Value& value, const std::string& what) {
  const Napi::Object o = objectAt(value, what);
  return {ipFrom(o.Get("ip"), what + ".ip"), uint16_t(integerFrom(o.Get("port"), what + ".port", 1, 65535))};
}

sync::SyncKey keyFrom(const Napi::Value& value, const std::string& what) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(value.Env(), what + " must be a Uint8Array");
  }
  const Napi::Uint8Array bytes = value.As<Napi::Uint8Array>();
  return sync::SyncKey(bytes.Data(), bytes.Data() + bytes.ElementLength());
}

Napi::Value recordToObject(Napi::Env env, const sync::FlowRecord& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("protocol", double(r.protocol));
  o.Set("state", double(r.state));
  o.Set("flags", double(r.flags));
  o.Set("clientIp", ipToString(r.clientIp));
  o.Set("clientPort", double(r.clientPort));
  o.Set("vip", ipToString(r.vip));
  o.Set("vport", double(r.vport));
  o.Set("realIp", ipToString(r.realIp));
  o.Set("realPort", double(r.realPort));
  o.Set("localIp", ipToString(r.localIp));
  o.Set("localPort", double(r.localPort));
  return o;
}

sync::FlowRecord recordFrom(const Napi::Value& value, const std::string& what) {
  const Napi::Object o = objectAt(value, what);
  sync::FlowRecord r;
  r.protocol = uint8_t(integerFrom(o.Get("protocol"), what + ".protocol", 0, 255));
  r.state = uint8_t(integerFrom(o.Get("state"), what + ".state", 0, 255));
  r.flags = uint8_t(integerFrom(o.Get("flags"), what + ".flags", 0, 255));
  r.clientIp = ipFrom(o.Get("clientIp"), what + ".clientIp");
  r.clientPort = uint16_t(integerFrom(o.Get("clientPort"), what + ".clientPort", 0, 65535));
  r.vip = ipFrom(o.Get("vip"), what + ".vip");
  r.vport = uint16_t(integerFrom(o.Get("vport"), what + ".vport", 0, 65535));
  r.realIp = ipFrom(o.Get("realIp"), what + ".realIp");
  r.realPort = uint16_t(integerFrom(o.Get("realPort"), what + ".realPort", 0, 65535));
  r.localIp = o.Has("localIp") && !o.Get("localIp").IsUndefined() ? ipFrom(o.Get("localIp"), what + ".localIp") : 0;
  r.localPort = o.Has("localPort") && !o.Get("localPort").IsUndefined()
                    ? uint16_t(integerFrom(o.Get("localPort"), what + ".localPort", 0, 65535)) : 0;
  return r;
}

const char* decodeErrorName(sync::DecodeError error) {
  switch (error) {
    case sync::DecodeError::None: return "none";
    case sync::DecodeError::Truncated: return "truncated";
    case sync::DecodeError::NotSync: return "notSync";
    case sync::DecodeError::WrongVersion: return "wrongVersion";
    case sync::DecodeError::BadMac: return "badMac";
    case sync::DecodeError::UnknownType: return "unknownType";
  }
  return "unknown";
}

// encode({ type, senderId, sequence, timestampMs, version? }, records, key) -> Uint8Array
Napi::Value Encode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Napi::Object h = objectAt(info[0], "header");
  sync::MessageHeader header;
  header.type = sync::MessageType(integerFrom(h.Get("type"), "header.type", 0, 255));
  header.senderId = integerFrom(h.Get("senderId"), "header.senderId", 0, 0xffffffff);
  header.sequence = uint64_t(h.Get("sequence").ToNumber().Int64Value());
  header.timestampMs = uint64_t(h.Get("timestampMs").ToNumber().Int64Value());
  const Napi::Array list = arrayAt(info[1], "records");
  std::vector<sync::FlowRecord> records;
  for (uint32_t i = 0; i < list.Length(); ++i) records.push_back(recordFrom(list.Get(i), "records[" + std::to_string(i) + "]"));
  const sync::SyncKey key = keyFrom(info[2], "key");
  std::array<uint8_t, sync::kMaxDatagramBytes> out;
  const size_t length = sync::encodeMessage(header, records, key, out.data());
  if (length == 0) throw Napi::RangeError::New(env, "too many records for one datagram, or an empty key");
  return Napi::Buffer<uint8_t>::Copy(env, out.data(), length);
}

// decode(datagram, key) -> { error, header?, records? }
Napi::Value Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t length = 0;
  const uint8_t* bytes = bytesOf(info[0], length, "datagram");
  const sync::DecodedMessage message = sync::decodeMessage({bytes, length}, keyFrom(info[1], "key"));
  Napi::Object out = Napi::Object::New(env);
  out.Set("error", decodeErrorName(message.error));
  if (message.error != sync::DecodeError::None) return out;
  Napi::Object header = Napi::Object::New(env);
  header.Set("type", double(uint8_t(message.header.type)));
  header.Set("senderId", double(message.header.senderId));
  header.Set("sequence", double(message.header.sequence));
  header.Set("timestampMs", double(message.header.timestampMs));
  out.Set("header", header);
  Napi::Array records = Napi::Array::New(env, message.records.size());
  for (size_t i = 0; i < message.records.size(); ++i) {
    Napi::Object record = recordToObject(env, message.records[i]).As<Napi::Object>();
    record.Set("valid", sync::isValidRecord(message.records[i]));
    records.Set(uint32_t(i), record);
  }
  out.Set("records", records);
  return out;
}

}  // namespace

sync::SyncOptions syncOptionsFrom(const Napi::Value& value) {
  const Napi::Object o = objectAt(value, "sync options");
  sync::SyncOptions options;
  options.listen = endpointFrom(o.Get("listen"), "sync.listen");
  if (o.Has("peers") && !o.Get("peers").IsUndefined()) {
    const Napi::Array peers = arrayAt(o.Get("peers"), "sync.peers");
    for (uint32_t i = 0; i < peers.Length(); ++i) options.peers.push_back(endpointFrom(peers.Get(i), "sync.peers[" + std::to_string(i) + "]"));
  }
  if (o.Has("multicast") && !o.Get("multicast").IsUndefined()) {
    const Napi::Object m = objectAt(o.Get("multicast"), "sync.multicast");
    options.multicast = sync::MulticastGroup{ipFrom(m.Get("group"), "sync.multicast.group"), m.Get("interface").ToString()};
  }
  options.key = keyFrom(o.Get("key"), "sync.key");
  if (options.key.size() < sync::kMinKeyBytes || options.key.size() > sync::kMaxKeyBytes) {
    throw Napi::RangeError::New(value.Env(), "sync.key must be " + std::to_string(sync::kMinKeyBytes) + " to " +
                                                 std::to_string(sync::kMaxKeyBytes) + " bytes");
  }
  if (options.peers.empty() && !options.multicast) {
    throw Napi::TypeError::New(value.Env(), "sync needs peers or a multicast group");
  }
  if (o.Has("refreshSeconds") && !o.Get("refreshSeconds").IsUndefined()) {
    options.refreshSeconds = integerFrom(o.Get("refreshSeconds"), "sync.refreshSeconds", 0, 86400);
  }
  if (o.Has("maxClockSkewSeconds") && !o.Get("maxClockSkewSeconds").IsUndefined()) {
    options.maxClockSkewSeconds = integerFrom(o.Get("maxClockSkewSeconds"), "sync.maxClockSkewSeconds", 1, 86400);
  }
  return options;
}

Napi::Object syncCountersToObject(Napi::Env env, const std::array<uint64_t, size_t(sync::SyncCounter::Count)>& values) {
  Napi::Object out = Napi::Object::New(env);
  for (size_t i = 0; i < values.size(); ++i) out.Set(std::string(sync::kSyncCounterNames[i]), double(values[i]));
  return out;
}

Napi::Object syncMessageFunctions(Napi::Env env) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("encode", Napi::Function::New(env, Encode));
  out.Set("decode", Napi::Function::New(env, Decode));
  Napi::Array names = Napi::Array::New(env, sync::kSyncCounterNames.size());
  for (size_t i = 0; i < sync::kSyncCounterNames.size(); ++i) names.Set(uint32_t(i), std::string(sync::kSyncCounterNames[i]));
  out.Set("counterNames", names);
  out.Set("version", double(sync::kVersion));
  out.Set("maxRecordsPerDatagram", double(sync::kMaxRecordsPerDatagram));
  out.Set("maxDatagramBytes", double(sync::kMaxDatagramBytes));
  out.Set("minKeyBytes", double(sync::kMinKeyBytes));
  Napi::Object types = Napi::Object::New(env);
  types.Set("flows", double(uint8_t(sync::MessageType::Flows)));
  types.Set("snapshot", double(uint8_t(sync::MessageType::Snapshot)));
  types.Set("snapshotEnd", double(uint8_t(sync::MessageType::SnapshotEnd)));
  types.Set("snapshotRequest", double(uint8_t(sync::MessageType::SnapshotRequest)));
  out.Set("types", types);
  return out;
}

}  // namespace natlb::napi
