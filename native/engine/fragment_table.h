// Later IPv4 fragments carry no ports, so they cannot be matched to a flow; the first fragment can.
// When a worker rewrites a first fragment it remembers the datagram (addresses, IP id, protocol) and
// the address it rewrote, and later fragments of the same datagram get the same address rewrite.
// Per worker (a datagram's fragments arrive on one interface, in order): no lock. Fragments that
// arrive before their first fragment are dropped and counted (IPVS would reassemble them).
#pragma once
#include <array>
#include <cstdint>

namespace natlb::engine {

struct FragmentKey {
  uint32_t source;
  uint32_t destination;
  uint16_t id;
  uint8_t protocol;
  bool operator==(const FragmentKey&) const = default;
};

class FragmentTable {
 public:
  static constexpr uint64_t kLifetimeMs = 5000;  // well past any fragment train; the kernel waits 30 s

  void remember(const FragmentKey& key, uint32_t rewrittenIp, uint64_t nowMs) {
    slots_[indexOf(key)] = Slot{key, rewrittenIp, nowMs + kLifetimeMs};
  }
  // The address to write into a later fragment of `key`, or 0.
  uint32_t find(const FragmentKey& key, uint64_t nowMs) const {
    const Slot& slot = slots_[indexOf(key)];
    return slot.expiresMs > nowMs && slot.key == key ? slot.rewrittenIp : 0;
  }

 private:
  struct Slot {
    FragmentKey key{};
    uint32_t rewrittenIp = 0;
    uint64_t expiresMs = 0;
  };
  static size_t indexOf(const FragmentKey& key) {
    uint64_t h = (uint64_t{key.source} << 32 | key.destination) * 0x9e3779b97f4a7c15ULL;
    h ^= (uint64_t{key.id} << 8 | key.protocol) * 0xc2b2ae3d27d4eb4fULL;
    return size_t(h >> 54) & (kSlots - 1);
  }
  static constexpr size_t kSlots = 1024;
  std::array<Slot, kSlots> slots_{};
};

}  // namespace natlb::engine
