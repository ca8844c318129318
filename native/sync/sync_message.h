// The flow sync's datagram (one definition; README "Flow sync" describes it): a header, flow records
// naming each flow by its addresses (never by the sender's real ids: a peer may number its reals
// differently) and an HMAC-SHA256 over all of it with the peers' shared key. Pure: no I/O, no clock.
//
//   [magic "NLSY" u32][version u8][type u8][record count u16][sender id u32][sequence u64][timestamp ms u64]
//   [records 32 B x count][HMAC-SHA256 32 B]
//
// Multi-byte fields are big-endian (network order).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace natlb::sync {

constexpr uint32_t kMagic = 0x4e4c5359;  // "NLSY"
constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderBytes = 28;
constexpr size_t kRecordBytes = 32;
constexpr size_t kMacBytes = 32;
// Fits a 1500-byte path MTU with the IP and UDP headers (20 + 8) and room for IP options or a tunnel.
constexpr size_t kMaxDatagramBytes = 1400;
constexpr size_t kMaxRecordsPerDatagram = (kMaxDatagramBytes - kHeaderBytes - kMacBytes) / kRecordBytes;
// The shared key: at least this long (HMAC-SHA256's block size is 64; 32 random bytes are its strength).
constexpr size_t kMinKeyBytes = 32;
constexpr size_t kMaxKeyBytes = 1024;

enum class MessageType : uint8_t {
  Flows = 1,            // flow creations, state changes and refreshes
  Snapshot = 2,         // a part of a snapshot, for the peer that asked
  SnapshotEnd = 3,      // the snapshot is complete (no records)
  SnapshotRequest = 4,  // "send me every live flow" (no records)
};

// How a record's flow is forwarded, and whether it has proven itself (flow_layout.h's flags, on the wire).
namespace record_flags {
constexpr uint8_t kDirectRouting = 1;
constexpr uint8_t kFullNat = 2;
constexpr uint8_t kAssured = 4;
constexpr uint8_t kKnown = kDirectRouting | kFullNat | kAssured;
}  // namespace record_flags

// One flow, by its addresses (host order here).
struct FlowRecord {
  uint8_t protocol = 0;  // 6 TCP, 17 UDP
  uint8_t state = 0;     // flow::FlowState
  uint8_t flags = 0;     // record_flags
  uint32_t clientIp = 0;
  uint16_t clientPort = 0;
  uint32_t vip = 0;
  uint16_t vport = 0;
  uint32_t realIp = 0;
  uint16_t realPort = 0;
  uint32_t localIp = 0;  // full NAT: the source the real sees
  uint16_t localPort = 0;
  bool operator==(const FlowRecord&) const = default;
};

struct MessageHeader {
  MessageType type = MessageType::Flows;
  uint32_t senderId = 0;
  uint64_t sequence = 0;
  uint64_t timestampMs = 0;  // CLOCK_REALTIME
};

using SyncKey = std::vector<uint8_t>;

// Writes one datagram into `out` (at least kMaxDatagramBytes); returns its length, 0 when there are
// more records than fit (kMaxRecordsPerDatagram) or the key is empty.
size_t encodeMessage(const MessageHeader& header, std::span<const FlowRecord> records, const SyncKey& key, uint8_t* out);

enum class DecodeError : uint8_t {
  None,
  Truncated,     // shorter than a header and a MAC, or the record count does not match the length
  NotSync,       // wrong magic
  WrongVersion,
  BadMac,        // not made with our key, or altered
  UnknownType,
};

struct DecodedMessage {
  DecodeError error = DecodeError::None;
  MessageHeader header;
  std::vector<FlowRecord> records;
};

// Reads and authenticates one datagram. Records are returned as sent; whether each names a valid flow
// is for the caller (isValidRecord).
DecodedMessage decodeMessage(std::span<const uint8_t> datagram, const SyncKey& key);

// A record that could be a flow: TCP or UDP, a state its protocol can have, known flags, non-zero
// addresses and ports (a full-NAT one with its local address and port).
bool isValidRecord(const FlowRecord& record);

}  // namespace natlb::sync
