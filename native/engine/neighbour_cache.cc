#include "neighbour_cache.h"

namespace natlb::engine {

void NeighbourCache::learn(uint32_t ip, const packet::MacAddress& mac, int ifindex) {
  if (ip == 0) return;
  std::lock_guard lock(mutex_);
  auto [it, inserted] = entries_.try_emplace(ip, NeighbourEntry{ip, mac, ifindex});
  if (!inserted) {
    if (it->second.mac == mac && it->second.ifindex == ifindex) return;
    it->second.mac = mac;
    it->second.ifindex = ifindex;
  }
  generation_.fetch_add(1, std::memory_order_release);
}

std::optional<packet::MacAddress> NeighbourCache::find(uint32_t ip) const {
  std::lock_guard lock(mutex_);
  const auto found = entries_.find(ip);
  if (found == entries_.end()) return std::nullopt;
  return found->second.mac;
}

std::vector<NeighbourEntry> NeighbourCache::snapshot() const {
  std::lock_guard lock(mutex_);
  std::vector<NeighbourEntry> out;
  out.reserve(entries_.size());
  for (const auto& [ip, entry] : entries_) out.push_back(entry);
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
