#include "sync_message.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../flow/flow_layout.h"
#include "../packet/wire.h"

namespace natlb::sync {

namespace {

using packet::load16;
using packet::load32;
using packet::store16;
using packet::store32;

void store64(uint8_t* p, uint64_t v) {
  store32(p, uint32_t(v >> 32));
  store32(p + 4, uint32_t(v));
}
uint64_t load64(const uint8_t* p) { return (uint64_t{load32(p)} << 32) | load32(p + 4); }

bool authenticate(const SyncKey& key, const uint8_t* data, size_t length, uint8_t* mac) {
  unsigned int macLength = 0;
  return HMAC(EVP_sha256(), key.data(), int(key.size()), data, length, mac, &macLength) != nullptr && macLength == kMacBytes;
}

void writeRecord(const FlowRecord& r, uint8_t* p) {
  p[0] = 0;  // record kind: a flow (room for persistence templates in a later version)
  p[1] = r.protocol;
  p[2] = r.state;
  p[3] = r.flags;
  store32(p + 4, r.clientIp);
  store32(p + 8, r.vip);
  store32(p + 12, r.realIp);
  store32(p + 16, r.localIp);
  store16(p + 20, r.clientPort);
  store16(p + 22, r.vport);
  store16(p + 24, r.realPort);
  store16(p + 26, r.localPort);
  store32(p + 28, 0);
}

FlowRecord readRecord(const uint8_t* p) {
  FlowRecord r;
  r.protocol = p[1];
  r.state = p[2];
  r.flags = p[3];
  r.clientIp = load32(p + 4);
  r.vip = load32(p + 8);
  r.realIp = load32(p + 12);
  r.localIp = load32(p + 16);
  r.clientPort = load16(p + 20);
  r.vport = load16(p + 22);
  r.realPort = load16(p + 24);
  r.localPort = load16(p + 26);
  return r;
}

bool knownType(uint8_t type) { return type >= uint8_t(MessageType::Flows) && type <= uint8_t(MessageType::SnapshotRequest); }

}  // namespace

size_t encodeMessage(const MessageHeader& header, std::span<const FlowRecord> records, const SyncKey& key, uint8_t* out) {
  if (records.size() > kMaxRecordsPerDatagram || key.empty()) return 0;
  store32(out, kMagic);
  out[4] = kVersion;
  out[5] = uint8_t(header.type);
  store16(out + 6, uint16_t(records.size()));
  store32(out + 8, header.senderId);
  store64(out + 12, header.sequence);
  store64(out + 20, header.timestampMs);
  size_t length = kHeaderBytes;
  for (const FlowRecord& r : records) {
    writeRecord(r, out + length);
    length += kRecordBytes;
  }
  if (!authenticate(key, out, length, out + length)) return 0;
  return length + kMacBytes;
}

DecodedMessage decodeMessage(std::span<const uint8_t> datagram, const SyncKey& key) {
  DecodedMessage message;
  const uint8_t* p = datagram.data();
  if (datagram.size() < kHeaderBytes + kMacBytes) {
    message.error = DecodeError::Truncated;
    return message;
  }
  if (load32(p) != kMagic) {
    message.error = DecodeError::NotSync;
    return message;
  }
  if (p[4] != kVersion) {
    message.error = DecodeError::WrongVersion;
    return message;
  }
  const size_t count = load16(p + 6);
  const size_t signedLength = kHeaderBytes + count * kRecordBytes;
  if (datagram.size() != signedLength + kMacBytes) {
    message.error = DecodeError::Truncated;
    return message;
  }
  uint8_t mac[kMacBytes];
  if (key.empty() || !authenticate(key, p, signedLength, mac) || CRYPTO_memcmp(mac, p + signedLength, kMacBytes) != 0) {
    message.error = DecodeError::BadMac;
    return message;
  }
  if (!knownType(p[5])) {
    message.error = DecodeError::UnknownType;
    return message;
  }
  message.header.type = MessageType(p[5]);
  message.header.senderId = load32(p + 8);
  message.header.sequence = load64(p + 12);
  message.header.timestampMs = load64(p + 20);
  message.records.reserve(count);
  for (size_t i = 0; i < count; ++i) message.records.push_back(readRecord(p + kHeaderBytes + i * kRecordBytes));
  return message;
}

bool isValidRecord(const FlowRecord& r) {
  using flow::FlowState;
  if (r.flags & ~record_flags::kKnown) return false;
  if ((r.flags & record_flags::kDirectRouting) && (r.flags & record_flags::kFullNat)) return false;
  if (r.clientIp == 0 || r.vip == 0 || r.realIp == 0 || r.clientPort == 0 || r.vport == 0 || r.realPort == 0) return false;
  if ((r.flags & record_flags::kFullNat) && (r.localIp == 0 || r.localPort == 0)) return false;
  if (r.protocol == packet::kProtocolUdp) return r.state == uint8_t(FlowState::Udp);
  if (r.protocol != packet::kProtocolTcp) return false;
  return r.state >= uint8_t(FlowState::SynRecv) && r.state <= uint8_t(FlowState::Close);
}

}  // namespace natlb::sync
