// Full NAT (forwarding "fullnat", DPVS's FNAT): a flow's frames reach the real from one of natlb's own
// addresses (a local address, DPVS's "laddr") and a port natlb allocates, so the real answers natlb by
// plain routing. A port is free for (local address, real ip, real port, protocol) when no live flow's
// reply tuple (real -> local address:port) uses it: the reply index says which are in use, and the flow
// map frees the port with the flow. Freed is not yet reusable: the real closed first, so it holds the
// pair in TIME_WAIT (60 s on Linux) and answers a new SYN on it with the old connection's ACK unless
// the SYN's sequence or timestamp is newer, which a different client's need not be. So ports are handed
// out in turn from a cursor per (local address, real, protocol), not picked at random:
// a pair comes back only after the rest of the range was used (or is in use).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace natlb::flow {

struct LocalPortRange {
  uint16_t first = 1024;
  uint16_t last = 32767;  // below Linux's ephemeral range (32768..60999): natlb's own connections keep theirs
  constexpr uint32_t size() const { return last >= first ? uint32_t(last) - first + 1 : 0; }
};

// The first port of `range`, walking from `cursor` (an offset into the range) and wrapping around, that
// `inUse` says is free; the cursor then points past it. Nothing when all are taken (the pool is
// exhausted for this real), the cursor unmoved. At most range.size() probes: a new flow of an exhausted
// pool is refused in bounded time.
template <typename InUse>
std::optional<uint16_t> allocateLocalPort(LocalPortRange range, uint32_t& cursor, InUse&& inUse) {
  const uint32_t size = range.size();
  for (uint32_t probe = 0; probe < size; ++probe) {
    const uint32_t offset = (cursor + probe) % size;
    const uint16_t port = uint16_t(range.first + offset);
    if (!inUse(port)) {
      cursor = (offset + 1) % size;
      return port;
    }
  }
  return std::nullopt;
}

// The cursors of allocateLocalPort, one per (protocol, real, local address) as far as a fixed table
// tells them apart: pairs that hash to one slot share a cursor, which only shortens their cycle (each
// still walks its ports in order), and the table needs no eviction and no allocation per flow. Seeded
// at random, so a restarted natlb does not begin on the ports its last run just left in TIME_WAIT.
class LocalPortCursors {
 public:
  explicit LocalPortCursors(uint64_t seed) {
    for (uint32_t& cursor : cursors_) cursor = uint32_t(mix(seed++));
  }
  uint32_t& of(uint8_t protocol, uint32_t realIp, uint16_t realPort, uint32_t localIp) {
    const uint64_t key = (uint64_t(realIp) << 32) | (uint64_t(realPort) << 16) | protocol;
    return cursors_[mix(key ^ mix(localIp)) % kSlots];
  }

 private:
  static constexpr size_t kSlots = 4096;
  // splitmix64's finalizer: every input bit moves the slot.
  static constexpr uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }
  std::array<uint32_t, kSlots> cursors_{};
};

// A service's source pool: its local addresses and the port range each offers per real.
struct LocalSourcePool {
  const uint32_t* addresses = nullptr;
  uint32_t count = 0;
  LocalPortRange ports{};
};

}  // namespace natlb::flow
