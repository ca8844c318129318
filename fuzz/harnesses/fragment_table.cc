// Fragment tracking (native/engine/fragment_table.h) and the rewrite of later fragments
// (nat_rewrite.h rewriteFragmentAddress), driven the way the worker does (engine/worker.cc): a first
// fragment it forwards is remembered, a later fragment is looked up and gets the same address. The
// table's slots are a std::array built with _GLIBCXX_ASSERTIONS (fuzz/CMakeLists.txt), so an index
// past its bounds aborts. Checked against a model that keeps every remembered datagram:
//   - a lookup finds only what was remembered for that very datagram, most recently, and not expired
//     (the table may forget: its slots are shared; it may never invent or resurrect);
//   - a datagram just remembered is found;
//   - a later fragment's rewrite: the TTL went down by one (or nothing changed when it ran out), the
//     IP checksum verifies, the address is the remembered one, no other byte changed.
// Input: operations, each [kind][milliseconds that pass 2] then for a frame [address 4][length 2]
// [frame...], for a table call [source 4][destination 4][id 2][protocol][address 4].
#include <cstring>
#include <map>
#include <memory>
#include <tuple>

#include "changed_bytes.h"
#include "engine/fragment_table.h"
#include "fuzz_input.h"
#include "invariant.h"
#include "packet/ipv4_frame.h"
#include "packet/nat_rewrite.h"
#include "reference_checksum.h"

using namespace natlb;
using namespace natlb::fuzz;

namespace {

using ModelKey = std::tuple<uint32_t, uint32_t, uint16_t, uint8_t>;
struct Remembered {
  uint32_t ip;
  bool addressKept;
  uint64_t expiresMs;
};

class Model {
 public:
  explicit Model(engine::FragmentTable& table) : table_(table) {}

  // addressKept: a direct-routing datagram, whose later fragments go on unchanged.
  void remember(const engine::FragmentKey& key, uint32_t ip, bool addressKept, uint64_t nowMs) {
    table_.remember(key, {ip, addressKept}, nowMs);
    model_[asTuple(key)] = {ip, addressKept, nowMs + engine::FragmentTable::kLifetimeMs};
    if (ip != 0) {
      const engine::FragmentTarget found = table_.find(key, nowMs);
      require(found.ip == ip && found.addressKept == addressKept, "a datagram just remembered is found");
    }
  }
  engine::FragmentTarget find(const engine::FragmentKey& key, uint64_t nowMs) const {
    engine::FragmentTarget found = table_.find(key, nowMs);
    if (kMutant) found.ip ^= 1;  // a table that returns a neighbouring address
    if (found.ip != 0) {
      const auto it = model_.find(asTuple(key));
      require(it != model_.end() && it->second.ip == found.ip && it->second.addressKept == found.addressKept &&
                  it->second.expiresMs > nowMs,
              "a lookup finds only what was last remembered for that datagram, unexpired");
    }
    return found;
  }

 private:
  static ModelKey asTuple(const engine::FragmentKey& key) { return {key.source, key.destination, key.id, key.protocol}; }
  engine::FragmentTable& table_;
  std::map<ModelKey, Remembered> model_;
};

void laterFragment(const Model& model, ExactBuffer& frame, uint64_t nowMs, bool toVip) {
  const uint8_t* ip = frame.get() + 14;
  const engine::FragmentKey key{read32(ip + 12), read32(ip + 16), uint16_t(read16(ip + 4)), ip[9]};
  const engine::FragmentTarget target = model.find(key, nowMs);
  // A direct-routing datagram's fragment is sent as it came: no rewrite to check.
  if (target.ip == 0 || target.addressKept) return;
  const uint32_t address = target.ip;
  const ExactBuffer before(frame.get(), frame.size);
  const auto field = toVip ? packet::AddressField::Destination : packet::AddressField::Source;
  const auto error = packet::rewriteFragmentAddress(frame.get(), field, address);
  if (error != packet::RewriteError::None) {
    require(before.get()[22] <= 1 && std::memcmp(before.get(), frame.get(), frame.size) == 0,
            "a fragment is refused only for its TTL, unchanged");
    return;
  }
  const size_t headerLength = size_t(ip[0] & 0xf) * 4;
  const size_t addressField = 14 + (toVip ? 16 : 12);
  require(ip[8] == before.get()[22] - 1, "the fragment's TTL went down by one");
  require(verifies(ip, headerLength), "the fragment's IP checksum verifies");
  require(read32(frame.get() + addressField) == address, "the fragment carries the remembered address");
  AllowedChanges allowed(frame.size);
  allowed.allow(22, 1);
  allowed.allow(24, 2);
  allowed.allow(addressField, 4);
  allowed.requireOthersUnchanged(before.get(), frame.get(), "a fragment's rewrite changes only TTL, checksum and address");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  // 1024 slots of 24 bytes: on the heap, like the worker's (a member of a heap-allocated Worker).
  const auto table = std::make_unique<engine::FragmentTable>();
  Model model(*table);
  uint64_t nowMs = 1'000'000;
  while (input.remaining() > 0) {
    const uint8_t kind = input.byte();
    nowMs += input.u16();
    if (kind & 1) {
      const uint32_t rewrittenIp = input.u32();
      size_t length = input.u16();
      const uint8_t* bytes = input.take(length);
      ExactBuffer frame(bytes, length);
      const packet::ParsedFrame parsed = packet::parseIpv4Frame(frame.get(), frame.size);
      if (parsed.error == packet::ParseError::None) {
        const packet::Ipv4FrameView& view = parsed.view;
        if (view.ip()[6] & 0x20) {  // a first fragment: remembered with the address it was given
          model.remember({view.sourceIp(), view.destinationIp(), uint16_t(read16(view.ip() + 4)), view.protocol}, rewrittenIp, (kind & 4) != 0, nowMs);
        }
      } else if (parsed.error == packet::ParseError::Fragment) {
        laterFragment(model, frame, nowMs, kind & 2);
      }
    } else {
      engine::FragmentKey key{};
      key.source = input.u32();
      key.destination = input.u32();
      key.id = input.u16();
      key.protocol = input.byte();
      const uint32_t ip = input.u32();
      if (kind & 2) {
        model.remember(key, ip, (kind & 4) != 0, nowMs);
      } else {
        model.find(key, nowMs);
      }
    }
  }
  return 0;
}
