// IPv4 -> MAC for next hops, learned from the replies to natlb's own ARP requests and from the kernel's
// neighbour table (seeded by the control plane); never from what other hosts send unasked. Workers read
// through a per-thread copy that is refreshed when the shared table's generation changes, so the hot
// path takes no lock.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "../packet/wire.h"

namespace natlb::engine {

struct NeighbourEntry {
  uint32_t ip;
  packet::MacAddress mac;
  int ifindex;
};

// Where a neighbour's MAC came from. natlb's own ARP wins over the kernel's table for a while: the
// kernel takes an unsolicited ARP reply for a neighbour it knows (arp_accept=0 only stops new ones),
// so a host on the link can rewrite the kernel's entry; natlb re-asks its next hops every 30 s.
enum class NeighbourSource : uint8_t { OwnArpReply, KernelTable };

class NeighbourCache {
 public:
  // Records ip -> mac; cheap when nothing changes. The kernel's table does not overrule an answer to
  // natlb's own request younger than kOwnAnswerTrustMs.
  static constexpr uint64_t kOwnAnswerTrustMs = 60000;
  void learn(uint32_t ip, const packet::MacAddress& mac, int ifindex, NeighbourSource source, uint64_t nowMs);
  std::optional<packet::MacAddress> find(uint32_t ip) const;
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  std::vector<NeighbourEntry> snapshot() const;
  // Whether an ARP request for ip may be sent now (at most one per ip per interval).
  bool claimRequest(uint32_t ip, uint64_t nowMs, uint64_t intervalMs);
  // Whether natlb asked for ip lately, so a reply from it is an answer and not an unsolicited claim.
  bool awaitsReply(uint32_t ip, uint64_t nowMs) const;
  // Forgets the neighbours learned on an interface that is gone (deleted; one of that name may come
  // back with another ifindex, and its peers with other MACs): they are asked for again.
  void forgetInterface(int ifindex);

 private:
  mutable std::mutex mutex_;
  struct Known {
    NeighbourEntry entry;
    uint64_t ownAnswerMs;  // when natlb's own request was last answered (0: never)
  };
  std::unordered_map<uint32_t, Known> entries_;
  std::unordered_map<uint32_t, uint64_t> lastRequestMs_;
  std::atomic<uint64_t> generation_{1};
};

// A worker's lock-free view: a private copy revalidated against the shared generation.
class NeighbourView {
 public:
  explicit NeighbourView(const NeighbourCache& shared) : shared_(shared) {}
  std::optional<packet::MacAddress> find(uint32_t ip);
  bool knows(uint32_t ip, const packet::MacAddress& mac);

 private:
  void refreshIfStale();
  const NeighbourCache& shared_;
  uint64_t seenGeneration_ = 0;
  std::unordered_map<uint32_t, packet::MacAddress> local_;
};

}  // namespace natlb::engine
