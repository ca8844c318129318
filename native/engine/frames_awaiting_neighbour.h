// Frames held while their next hop's MAC is being resolved, as the kernel queues packets on an
// unresolved neighbour (a few per neighbour, for a short while): natlb takes MAC addresses only from
// replies to its own ARP requests and the kernel's table, never from the frames it receives, so the
// first reply to a new on-link client waits here for the ARP reply instead of being lost.
// One per worker thread; copies of the frames, so the receive slots can be released.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../io/received_frame.h"

namespace natlb::engine {

class FramesAwaitingNeighbour {
 public:
  static constexpr size_t kSlots = 64;
  static constexpr size_t kPerNeighbour = 3;
  static constexpr size_t kMaxFrameBytes = 2048;  // held frames are ordinary ones; GSO super-frames are not held
  static constexpr uint64_t kHoldMs = 3000;        // the kernel gives up on a neighbour after ~3 s too

  FramesAwaitingNeighbour();

  // Copies the frame; false when it cannot be held (too long, too many for this neighbour, full).
  // `claimsReply`: whether it goes out with the reply claim (a direct-routing frame claims nothing).
  bool hold(const io::ReceivedFrame& frame, uint32_t nextHop, int egressIfindex, uint64_t nowMs, bool claimsReply = true);
  bool empty() const { return held_ == 0; }

  // For every held frame: `send(frame, nextHop, egressIfindex, claimsReply)` returns true when it queued the frame
  // for sending (its bytes stay valid until finishSent); frames held too long go to `expire(frame)`.
  template <typename Send, typename Expire>
  void resolve(uint64_t nowMs, Send&& send, Expire&& expire) {
    for (Slot& slot : slots_) {
      if (slot.state != State::Held) continue;
      io::ReceivedFrame frame = frameOf(slot);
      if (send(frame, slot.nextHop, slot.egressIfindex, slot.claimsReply)) {
        slot.state = State::Sending;
      } else if (nowMs >= slot.heldAtMs + kHoldMs) {
        expire(frame);
        release(slot);
      }
    }
  }
  // The frames resolve() queued have been sent: their slots are free again.
  void finishSent();

 private:
  enum class State : uint8_t { Free, Held, Sending };
  struct Slot {
    State state = State::Free;
    uint32_t nextHop = 0;
    int egressIfindex = 0;
    bool claimsReply = true;
    uint64_t heldAtMs = 0;
    uint32_t length = 0;
    uint8_t* bytes = nullptr;  // virtio-net header, then the frame
  };
  io::ReceivedFrame frameOf(const Slot& slot) const;
  void release(Slot& slot);

  std::vector<uint8_t> storage_;
  std::array<Slot, kSlots> slots_{};
  size_t held_ = 0;
};

}  // namespace natlb::engine
