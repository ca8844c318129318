#include "neighbour_cache.h"

namespace natlb::engine {

void NeighbourCache::learn(uint32_t ip, const packet::MacAddress& mac, int ifindex, NeighbourSource source, uint64_t nowMs) {
  if (ip == 0) return;
  std::lock_guard lock(mutex_);
  const uint64_t ownAnswerMs = source == NeighbourSource::OwnArpReply ? nowMs : 0;
  auto [it, inserted] = entries_.try_emplace(ip, Known{NeighbourEntry{ip, mac, ifindex}, ownAnswerMs});
  if (!inserted) {
    Known& known = it->second;
    if (source == NeighbourSource::OwnArpReply) {
      known.ownAnswerMs = nowMs;
    } else if (known.ownAnswerMs != 0 && nowMs < known.ownAnswerMs + kOwnAnswerTrustMs) {
      return;  // natlb's own answer is recent: the kernel's entry does not overrule it
    }
    if (known.entry.mac == mac && known.entry.ifindex == ifindex) return;
    known.entry.mac = mac;
    known.entry.ifindex = ifindex;
  }
  generation_.fetch_add(1, std::memory_order_release);
}

void NeighbourCache::forgetInterface(int ifindex) {
  std::lock_guard lock(mutex_);
  const size_t forgotten = std::erase_if(entries_, [&](const auto& item) { return item.second.entry.ifindex == ifindex; });
  if (forgotten > 0) generation_.fetch_add(1, std::memory_order_release);
}

std::optional<packet::MacAddress> NeighbourCache::find(uint32_t ip) const {
  std::lock_guard lock(mutex_);
  const auto found = entries_.find(ip);
  if (found == entries_.end()) return std::nullopt;
  return found->second.entry.mac;
}

std::vector<NeighbourEntry> NeighbourCache::snapshot() const {
  std::lock_guard lock(mutex_);
  std::vector<NeighbourEntry> out;
  out.reserve(entries_.size());
  for (const auto& [ip, known] : entries_) out.push_back(known.entry);
  return out;
}

bool NeighbourCache::claimRequest(uint32_t ip, uint64_t nowMs, uint64_t intervalMs) {
  std::lock_guard lock(mutex_);
  uint64_t& last = lastRequestMs_[ip];
  if (last != 0 && nowMs - last < intervalMs) return false;
  last = nowMs;
  return true;
}

bool NeighbourCache::awaitsReply(uint32_t ip, uint64_t nowMs) const {
  constexpr uint64_t kReplyWindowMs = 3000;
  std::lock_guard lock(mutex_);
  const auto found = lastRequestMs_.find(ip);
  return found != lastRequestMs_.end() && nowMs - found->second <= kReplyWindowMs;
}

void NeighbourView::refreshIfStale() {
  const uint64_t generation = shared_.generation();
  if (generation != seenGeneration_) {
    local_.clear();
    seenGeneration_ = generation;
  }
}

std::optional<packet::MacAddress> NeighbourView::find(uint32_t ip) {
  refreshIfStale();
  if (const auto found = local_.find(ip); found != local_.end()) return found->second;
  const auto mac = shared_.find(ip);
  if (mac) local_.emplace(ip, *mac);
  return mac;
}

bool NeighbourView::knows(uint32_t ip, const packet::MacAddress& mac) {
  const auto current = find(ip);
  return current && *current == mac;
}

}  // namespace natlb::engine
