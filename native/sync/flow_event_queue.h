// What the workers tell the flow sync: a bounded single-producer single-consumer ring per worker (the
// worker pushes, the sync thread pops). A full ring drops the event and counts it: the packet path
// never waits for the sync.
#pragma once
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "sync_message.h"

namespace natlb::sync {

class FlowEventQueue {
 public:
  static constexpr size_t kCapacity = 4096;  // a power of two

  bool push(const FlowRecord& record) {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_.load(std::memory_order_acquire) >= kCapacity) {
      drops_.store(drops_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return false;
    }
    slots_[tail & (kCapacity - 1)] = record;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }
  template <typename Visit>
  size_t drain(Visit&& visit, size_t most) {
    const size_t head = head_.load(std::memory_order_relaxed);
    const size_t tail = tail_.load(std::memory_order_acquire);
    size_t taken = 0;
    for (; head + taken != tail && taken < most; ++taken) visit(slots_[(head + taken) & (kCapacity - 1)]);
    head_.store(head + taken, std::memory_order_release);
    return taken;
  }
  uint64_t drops() const { return drops_.load(std::memory_order_relaxed); }

 private:
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
  alignas(64) std::atomic<uint64_t> drops_{0};
  std::array<FlowRecord, kCapacity> slots_{};
};

// One queue per worker slot, made once with the engine (so the sync thread never sees one go away); a
// worker beyond the slots has none and its events are not synced (counted as drops).
class FlowEventQueues {
 public:
  static constexpr size_t kSlots = 8;
  FlowEventQueues() {
    for (auto& q : queues_) q = std::make_unique<FlowEventQueue>();
  }
  // Whether workers push events (a sync is configured). Read per event: one relaxed load.
  std::atomic<bool> enabled{false};
  FlowEventQueue* acquire() {
    for (size_t i = 0; i < kSlots; ++i) {
      bool unused = false;
      if (inUse_[i].compare_exchange_strong(unused, true)) return queues_[i].get();
    }
    return nullptr;
  }
  void release(FlowEventQueue* queue) {
    for (size_t i = 0; i < kSlots; ++i) {
      if (queues_[i].get() == queue) inUse_[i].store(false);
    }
  }
  template <typename Visit>
  void forEach(Visit&& visit) {
    for (auto& q : queues_) visit(*q);
  }
  // Events of workers without a queue.
  std::atomic<uint64_t> unqueued{0};

 private:
  std::array<std::unique_ptr<FlowEventQueue>, kSlots> queues_;
  std::array<std::atomic<bool>, kSlots> inUse_{};
};

}  // namespace natlb::sync
