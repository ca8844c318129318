#include "frames_awaiting_neighbour.h"

#include <cstring>

namespace natlb::engine {

namespace {
constexpr size_t kSlotBytes = sizeof(io::VirtioNetHeader) + FramesAwaitingNeighbour::kMaxFrameBytes;
}  // namespace

FramesAwaitingNeighbour::FramesAwaitingNeighbour() : storage_(kSlots * kSlotBytes) {
  for (size_t i = 0; i < kSlots; ++i) slots_[i].bytes = storage_.data() + i * kSlotBytes;
}

bool FramesAwaitingNeighbour::hold(const io::ReceivedFrame& frame, uint32_t nextHop, int egressIfindex, uint64_t nowMs,
                                   bool claimsReply) {
  if (frame.length > kMaxFrameBytes || frame.vnet == nullptr || frame.vnet->gsoType != 0) return false;
  size_t forThisHop = 0;
  Slot* free = nullptr;
  for (Slot& slot : slots_) {
    if (slot.state == State::Free) {
      if (free == nullptr) free = &slot;
    } else if (slot.nextHop == nextHop) {
      ++forThisHop;
    }
  }
  if (free == nullptr || forThisHop >= kPerNeighbour) return false;
  std::memcpy(free->bytes, frame.vnet, sizeof(io::VirtioNetHeader));
  std::memcpy(free->bytes + sizeof(io::VirtioNetHeader), frame.frame, frame.length);
  free->state = State::Held;
  free->nextHop = nextHop;
  free->egressIfindex = egressIfindex;
  free->claimsReply = claimsReply;
  free->heldAtMs = nowMs;
  free->length = frame.length;
  ++held_;
  return true;
}

io::ReceivedFrame FramesAwaitingNeighbour::frameOf(const Slot& slot) const {
  io::ReceivedFrame frame{};
  frame.vnet = reinterpret_cast<io::VirtioNetHeader*>(slot.bytes);
  frame.frame = slot.bytes + sizeof(io::VirtioNetHeader);
  frame.length = slot.length;
  return frame;
}

void FramesAwaitingNeighbour::release(Slot& slot) {
  slot.state = State::Free;
  --held_;
}

void FramesAwaitingNeighbour::finishSent() {
  for (Slot& slot : slots_) {
    if (slot.state == State::Sending) release(slot);
  }
}

}  // namespace natlb::engine
