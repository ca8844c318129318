// Full NAT (forwarding "fullnat", DPVS's FNAT): a flow's frames reach the real from one of natlb's own
// addresses (a local address, DPVS's "laddr") and a port natlb allocates, so the real answers natlb by
// plain routing. A port is free for (local address, real ip, real port, protocol) when no live flow's
// reply tuple (real -> local address:port) uses it: the reply index is the allocator's only state, and
// the flow map frees the port with the flow. Pure: the caller says which ports are in use.
#pragma once
#include <cstdint>
#include <optional>

namespace natlb::flow {

struct LocalPortRange {
  uint16_t first = 1024;
  uint16_t last = 32767;  // below Linux's ephemeral range (32768..60999): natlb's own connections keep theirs
  constexpr uint32_t size() const { return last >= first ? uint32_t(last) - first + 1 : 0; }
};

// The first port of `range`, walking from the one `start` picks and wrapping around, that `inUse` says
// is free; nothing when all are taken (the pool is exhausted for this real). At most range.size()
// probes: a new flow of an exhausted pool is refused in bounded time.
template <typename InUse>
std::optional<uint16_t> allocateLocalPort(LocalPortRange range, uint32_t start, InUse&& inUse) {
  const uint32_t size = range.size();
  for (uint32_t probe = 0; probe < size; ++probe) {
    const uint16_t port = uint16_t(range.first + (start + probe) % size);
    if (!inUse(port)) return port;
  }
  return std::nullopt;
}

// A service's source pool: its local addresses and the port range each offers per real.
struct LocalSourcePool {
  const uint32_t* addresses = nullptr;
  uint32_t count = 0;
  LocalPortRange ports{};
};

}  // namespace natlb::flow
