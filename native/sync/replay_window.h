// Which senders' datagrams have been seen, so a captured datagram sent again is rejected (IPsec's
// anti-replay window, RFC 4303 3.4.3): per sender id, the highest sequence number accepted and a bitmap
// of the 64 before it. Pure; the receiver owns one. Senders are few (the peers): a full table forgets
// the one heard from longest ago (only authenticated datagrams reach it).
#pragma once
#include <array>
#include <cstdint>

namespace natlb::sync {

class ReplayWindow {
 public:
  static constexpr uint64_t kWindow = 64;
  static constexpr size_t kMaxSenders = 32;

  enum class Verdict : uint8_t { Fresh, FirstFromSender, Replayed };

  // Accepts `sequence` from `sender` (and remembers it) unless it was seen or is older than the window.
  // FirstFromSender: a sender id not heard from before (a peer that started, or started again).
  Verdict accept(uint32_t sender, uint64_t sequence, uint64_t nowMs) {
    Slot* slot = find(sender);
    if (slot == nullptr) {
      slot = oldest();
      *slot = Slot{sender, sequence, 1, nowMs, true};
      return Verdict::FirstFromSender;
    }
    slot->heardMs = nowMs;
    if (sequence > slot->highest) {
      const uint64_t shift = sequence - slot->highest;
      slot->seen = shift >= kWindow ? 1 : (slot->seen << shift) | 1;
      slot->highest = sequence;
      return Verdict::Fresh;
    }
    const uint64_t behind = slot->highest - sequence;
    if (behind >= kWindow || (slot->seen & (uint64_t{1} << behind))) return Verdict::Replayed;
    slot->seen |= uint64_t{1} << behind;
    return Verdict::Fresh;
  }

  size_t senders() const {
    size_t n = 0;
    for (const Slot& s : slots_) n += s.used ? 1 : 0;
    return n;
  }

 private:
  struct Slot {
    uint32_t sender = 0;
    uint64_t highest = 0;
    uint64_t seen = 0;  // bit i: highest - i was accepted
    uint64_t heardMs = 0;
    bool used = false;
  };
  Slot* find(uint32_t sender) {
    for (Slot& s : slots_) {
      if (s.used && s.sender == sender) return &s;
    }
    return nullptr;
  }
  Slot* oldest() {
    Slot* pick = &slots_[0];
    for (Slot& s : slots_) {
      if (!s.used) return &s;
      if (s.heardMs < pick->heardMs) pick = &s;
    }
    return pick;
  }
  std::array<Slot, kMaxSenders> slots_{};
};

}  // namespace natlb::sync
