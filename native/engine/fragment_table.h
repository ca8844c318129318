// Later IPv4 fragments carry no ports, so they cannot be matched to a flow; the first fragment can.
// When a worker rewrites a first fragment it remembers the datagram (addresses, IP id, protocol) and
// the address it rewrote, and later fragments of the same datagram get the same address rewrite.
// A direct-routing datagram's later fragments keep their address: they go to the same real as its first.
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

// Where a later fragment goes: `ip` is the address written into it, or the direct-routing real it is
// sent to unchanged (addressKept).
// A full-NAT datagram's later fragments get both addresses: `fullNatSource` as the source, `ip` as the
// destination (0: not full NAT).
struct FragmentTarget {
  uint32_t ip = 0;
  bool addressKept = false;
  uint32_t fullNatSource = 0;
};

class FragmentTable {
 public:
  static constexpr uint64_t kLifetimeMs = 5000;  // well past any fragment train; the kernel waits 30 s

  void remember(const FragmentKey& key, FragmentTarget target, uint64_t nowMs) {
    slots_[indexOf(key)] = Slot{key, target, nowMs + kLifetimeMs};
  }
  // Where a later fragment of `key` goes; ip 0 when unknown.
  FragmentTarget find(const FragmentKey& key, uint64_t nowMs) const {
    const Slot& slot = slots_[indexOf(key)];
    return slot.expiresMs > nowMs && slot.key == key ? slot.target : FragmentTarget{};
  }

 private:
  struct Slot {
    FragmentKey key{};
    FragmentTarget target{};
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
