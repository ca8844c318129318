// Per real server traffic, as `ipvsadm -L --stats` shows it: connections created, packets and bytes
// in (client -> real) and out (real -> client). Bytes are IP bytes (header included), packets are the
// frames natlb or the kernel fast path handled (a GSO super-frame counts once), as in a flow entry's
// counters (flow_layout.h) and in IPVS, which counts skbs.
//
// Counting costs no locked instruction and no shared cache line per packet: each worker owns a block
// indexed by real id (one writer, plain load+store, like engine/counters.h), and the control plane sums
// the blocks on read. What the kernel fast path forwarded reaches a block of its own when the flow map
// reads an offloaded flow's counts back (a few times a second per flow, not per packet; several threads
// read back, so that block takes atomic adds). A stopped worker's block is folded into `retired`, so
// totals never go back across a data-plane restart.
#pragma once
#include <sys/mman.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <new>
#include <string_view>
#include <vector>

#include "../flow/flow_layout.h"
#include "../io/mapped_memory.h"

namespace natlb::engine {

enum class RealStat : uint8_t { Connections, PacketsIn, PacketsOut, BytesIn, BytesOut, Count };
constexpr size_t kRealStatCount = size_t(RealStat::Count);

constexpr std::array<std::string_view, kRealStatCount> kRealStatNames = {"connections", "packetsIn", "packetsOut", "bytesIn", "bytesOut"};

using RealTraffic = std::array<uint64_t, kRealStatCount>;

// One counter per (real id, stat). Anonymous memory, so only the pages of ids in use are ever backed.
class RealStatsBlock {
 public:
  RealStatsBlock() {
    const size_t bytes = flow::kRealIdCount * kRealStatCount * sizeof(uint64_t);
    void* address = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (address == MAP_FAILED) throw std::bad_alloc();
    memory_ = io::MappedMemory(address, bytes);
  }

  // One writer (the block's worker): no locked instruction.
  void add(uint16_t realId, RealStat stat, uint64_t value) {
    std::atomic_ref<uint64_t> slot(slotOf(realId, stat));
    slot.store(slot.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
  }
  // Several writers (read-backs of the kernel's counts from more than one thread).
  void addShared(uint16_t realId, RealStat stat, uint64_t value) {
    if (value != 0) std::atomic_ref<uint64_t>(slotOf(realId, stat)).fetch_add(value, std::memory_order_relaxed);
  }
  uint64_t get(uint16_t realId, RealStat stat) const {
    return std::atomic_ref<uint64_t>(slotOf(realId, stat)).load(std::memory_order_relaxed);
  }
  void addTo(uint16_t realId, RealTraffic& sum) const {
    for (size_t stat = 0; stat < kRealStatCount; ++stat) sum[stat] += get(realId, RealStat(stat));
  }

 private:
  uint64_t& slotOf(uint16_t realId, RealStat stat) const {
    return reinterpret_cast<uint64_t*>(memory_.bytes())[size_t(realId) * kRealStatCount + size_t(stat)];
  }
  io::MappedMemory memory_;
};

// The blocks that outlive the workers: what stopped workers counted, and what the kernel forwarded.
class RealStats {
 public:
  RealStatsBlock& kernel() { return kernel_; }

  // A worker that stops hands its counts over (called while it no longer runs, by one thread).
  void retire(const RealStatsBlock& worker) {
    for (uint32_t id = 0; id < flow::kRealIdCount; ++id) {
      for (size_t stat = 0; stat < kRealStatCount; ++stat) {
        if (const uint64_t value = worker.get(uint16_t(id), RealStat(stat))) retired_.add(uint16_t(id), RealStat(stat), value);
      }
    }
  }

  // A real's totals: the retired and kernel blocks plus the running workers' blocks.
  RealTraffic sum(uint16_t realId, const std::vector<const RealStatsBlock*>& workers) const {
    RealTraffic total{};
    retired_.addTo(realId, total);
    kernel_.addTo(realId, total);
    for (const RealStatsBlock* worker : workers) worker->addTo(realId, total);
    return total;
  }

 private:
  RealStatsBlock retired_;
  RealStatsBlock kernel_;
};

}  // namespace natlb::engine
