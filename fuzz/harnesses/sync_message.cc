// The flow sync's datagram (native/sync/sync_message.h), as a peer or an attacker on the LAN sends it.
// Checked:
//   - any bytes decode without a crash; an accepted datagram is exactly a header, its records and a
//     MAC, and its fields are the datagram's bytes;
//   - what encodeMessage writes decodes to the same header and records with the same key, and to
//     nothing (an error) once any one bit of it is flipped or with another key.
// Input: [key 32][bit to flip u16][datagram bytes, also read as: type, sender u32, sequence u64,
// timestamp u64, then records of 28 bytes each (protocol, state, flags, addresses and ports)].
#include <vector>

#include "fuzz_input.h"
#include "invariant.h"
#include "reference_checksum.h"
#include "sync/sync_message.h"

using namespace natlb;
using namespace natlb::fuzz;

namespace {

uint64_t read64(const uint8_t* p) { return (uint64_t{read32(p)} << 32) | read32(p + 4); }

sync::FlowRecord recordFrom(FuzzInput& in) {
  sync::FlowRecord r;
  r.protocol = in.byte();
  r.state = in.byte();
  r.flags = in.byte();
  r.clientIp = in.u32();
  r.clientPort = in.u16();
  r.vip = in.u32();
  r.vport = in.u16();
  r.realIp = in.u32();
  r.realPort = in.u16();
  r.localIp = in.u32();
  r.localPort = in.u16();
  in.byte();  // 28 bytes a record
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  sync::SyncKey key(32);
  for (auto& b : key) b = input.byte();
  const uint16_t flip = input.u16();
  size_t length = input.remaining();
  const uint8_t* rest = input.take(length);

  // 1. The bytes as a datagram.
  const ExactBuffer datagram(rest, length);
  const sync::DecodedMessage decoded = sync::decodeMessage({datagram.get(), datagram.size}, key);
  if (decoded.error == sync::DecodeError::None) {
    require(length == sync::kHeaderBytes + decoded.records.size() * sync::kRecordBytes + sync::kMacBytes,
            "an accepted datagram is a header, its records and a MAC");
    require(decoded.header.senderId == read32(rest + 8) && decoded.header.sequence == read64(rest + 12) &&
                decoded.header.timestampMs == read64(rest + 20) && uint8_t(decoded.header.type) == rest[5],
            "an accepted datagram's header fields are its bytes");
    for (size_t i = 0; i < decoded.records.size(); ++i) {
      const uint8_t* r = rest + sync::kHeaderBytes + i * sync::kRecordBytes;
      const sync::FlowRecord& record = decoded.records[i];
      require(record.protocol == r[1] && record.state == r[2] && record.flags == r[3] && record.clientIp == read32(r + 4) &&
                  record.vip == read32(r + 8) && record.realIp == read32(r + 12) && record.localIp == read32(r + 16) &&
                  record.clientPort == read16(r + 20) && record.vport == read16(r + 22) && record.realPort == read16(r + 24) &&
                  record.localPort == read16(r + 26),
              "an accepted record's fields are its bytes");
    }
  }

  // 2. The same bytes as fields: encoded, decoded back, and refused once altered.
  FuzzInput fields(rest, length);
  sync::MessageHeader header;
  header.type = sync::MessageType(1 + fields.byte() % 4);
  header.senderId = fields.u32();
  header.sequence = (uint64_t{fields.u32()} << 32) | fields.u32();
  header.timestampMs = (uint64_t{fields.u32()} << 32) | fields.u32();
  std::vector<sync::FlowRecord> records;
  while (fields.remaining() >= 28 && records.size() < sync::kMaxRecordsPerDatagram) records.push_back(recordFrom(fields));
  ExactBuffer encoded(sync::kMaxDatagramBytes);
  const size_t encodedLength = sync::encodeMessage(header, records, key, encoded.get());
  require(encodedLength == sync::kHeaderBytes + records.size() * sync::kRecordBytes + sync::kMacBytes &&
              encodedLength <= sync::kMaxDatagramBytes,
          "a datagram holds its header, records and MAC within the size limit");
  if (kMutant) encoded.get()[encodedLength - 1] ^= 0x01;  // an encoder that damages its MAC
  const sync::DecodedMessage back = sync::decodeMessage({encoded.get(), encodedLength}, key);
  require(back.error == sync::DecodeError::None && back.header.type == header.type && back.header.senderId == header.senderId &&
              back.header.sequence == header.sequence && back.header.timestampMs == header.timestampMs && back.records == records,
          "an encoded datagram decodes to what was encoded");
  const size_t bit = flip % (encodedLength * 8);
  encoded.get()[bit / 8] ^= uint8_t(1u << (bit % 8));
  require(sync::decodeMessage({encoded.get(), encodedLength}, key).error != sync::DecodeError::None, "a flipped bit is refused");
  encoded.get()[bit / 8] ^= uint8_t(1u << (bit % 8));
  sync::SyncKey other = key;
  other[flip % other.size()] ^= 0x80;
  require(sync::decodeMessage({encoded.get(), encodedLength}, other).error != sync::DecodeError::None, "another key is refused");
  return 0;
}
