// A token bucket on the worker's millisecond clock: at most `perSecond` on average, `burst` at once.
// For ICMP errors natlb originates (Linux: net.ipv4.icmp_msgs_per_sec 1000, icmp_msgs_burst 50).
#pragma once
#include <algorithm>
#include <cstdint>

namespace natlb::engine {

class TokenBucket {
 public:
  constexpr TokenBucket(uint32_t perSecond, uint32_t burst) : perSecond_(perSecond), burst_(burst), tokens_(burst) {}

  bool take(uint64_t nowMs) {
    if (nowMs > lastMs_) {
      tokens_ = std::min<uint64_t>(burst_, tokens_ + (nowMs - lastMs_) * perSecond_ / 1000);
      lastMs_ = nowMs;
    }
    if (tokens_ == 0) return false;
    --tokens_;
    return true;
  }

 private:
  uint32_t perSecond_;
  uint32_t burst_;
  uint64_t tokens_;
  uint64_t lastMs_ = 0;
};

}  // namespace natlb::engine
