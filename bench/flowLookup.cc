// Flow map lookup rate at a small and a large number of live flows, in one table of the same
// capacity, calling the data plane's own FlowTable (native/flow) with no JavaScript per lookup.
// Built and run by bench/flowMap.ts:
//   g++ -O2 -std=c++20 -I native bench/flowLookup.cc native/flow/flow_table.cc -o flowlookup
//   flowlookup <capacity> <seconds per size> <entries> [<entries>..]
// Prints one JSON object: {"capacity":C,"tableBytes":B,"sizes":[{"entries":N,"insertNs":..,
//   "forwardLookupsPerSec":..,"reverseLookupsPerSec":..,"misses":0},..]}
// Lookups pick random live keys (xorshift), so the cache sees the whole table as a packet mix would.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "flow/flow_table.h"

using namespace natlb::flow;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint32_t kVip = 0xC6120064;  // 198.18.0.100
constexpr uint32_t kRealBase = 0xC612010B;  // 198.18.1.11

ForwardKey keyFor(uint32_t i) {
  // Many clients, many ports each: 198.18.(i / 60000) spread over the /15, ports 1024..61023.
  return ForwardKey{6, 0xC6120000u + 256u + (i / 60000u) * 7u, uint16_t(1024 + i % 60000u), kVip, 80};
}

RealEndpoint realFor(uint32_t i) { return RealEndpoint{kRealBase + i % 3, 8080, uint16_t(i % 3)}; }

struct Rng {
  uint64_t s;
  uint32_t next(uint32_t n) {  // uniform-enough index in [0, n)
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return uint32_t((uint64_t(uint32_t(s >> 16)) * n) >> 32);
  }
};

double secondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: flowlookup <capacity> <seconds per size> <entries> [<entries>..]\n");
    return 2;
  }
  const uint32_t capacity = uint32_t(std::strtoul(argv[1], nullptr, 10));
  const double seconds = std::strtod(argv[2], nullptr);
  if (capacity < kMinCapacity || capacity > kMaxCapacity || !(seconds > 0 && seconds <= 30)) {
    std::fprintf(stderr, "flowlookup: capacity must be %u..%u and seconds in (0, 30]\n", kMinCapacity, kMaxCapacity);
    return 2;
  }
  const size_t bytes = offsetsFor(capacity).totalBytes;
  std::string out = "{\"capacity\":" + std::to_string(capacity) + ",\"tableBytes\":" + std::to_string(bytes) + ",\"sizes\":[";
  for (int a = 3; a < argc; ++a) {
    const uint32_t entries = uint32_t(std::strtoul(argv[a], nullptr, 10));
    if (entries == 0 || entries > capacity) {
      std::fprintf(stderr, "flowlookup: entries must be 1..capacity, got %s\n", argv[a]);
      return 2;
    }
    auto* memory = static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) & ~size_t{63}));
    if (memory == nullptr) {
      std::fprintf(stderr, "flowlookup: out of memory (%zu bytes)\n", bytes);
      return 1;
    }
    FlowTable::initialize(memory, capacity, 0x9e3779b9u);
    FlowTable table(memory, bytes);
    const auto tInsert = Clock::now();
    for (uint32_t i = 0; i < entries; ++i) {
      const uint32_t ref = table.insert(keyFor(i), realFor(i), FlowState::Established, 1);
      if (ref == 0) {
        std::fprintf(stderr, "flowlookup: insert %u of %u failed (table full?)\n", i, entries);
        return 1;
      }
      // Established flows have proven themselves: unassured ones would be evicted to keep the flood
      // defences' shares, and their lookups would miss.
      table.assure(table.entryAt(ref));
    }
    const double insertNs = secondsSince(tInsert) * 1e9 / entries;

    Rng rng{0x2545F4914F6CDD1DULL};
    uint64_t misses = 0, checksum = 0, forward = 0, reverse = 0;
    // Forward lookups (client -> VIP), in batches so the clock is read rarely; bounded by time.
    auto t0 = Clock::now();
    double elapsed = 0;
    while ((elapsed = secondsSince(t0)) < seconds) {
      for (int k = 0; k < 100000; ++k) {
        const uint32_t ref = table.findForward(keyFor(rng.next(entries)));
        misses += ref == 0;
        checksum += ref;
      }
      forward += 100000;
    }
    const double forwardRate = double(forward) / elapsed;
    // Reverse lookups (real -> client), as the reply direction does.
    t0 = Clock::now();
    while ((elapsed = secondsSince(t0)) < seconds) {
      for (int k = 0; k < 100000; ++k) {
        const uint32_t i = rng.next(entries);
        const ForwardKey f = keyFor(i);
        const RealEndpoint r = realFor(i);
        const uint32_t ref = table.findReverse(ReverseKey{f.protocol, r.ip, r.port, f.clientIp, f.clientPort});
        misses += ref == 0;
        checksum += ref;
      }
      reverse += 100000;
    }
    const double reverseRate = double(reverse) / elapsed;
    std::free(memory);
    char item[320];
    std::snprintf(item, sizeof item,
                  "%s{\"entries\":%u,\"insertNs\":%.1f,\"forwardLookupsPerSec\":%.0f,\"reverseLookupsPerSec\":%.0f,"
                  "\"misses\":%llu,\"checksum\":%llu}",
                  a == 3 ? "" : ",", entries, insertNs, forwardRate, reverseRate, (unsigned long long)misses,
                  (unsigned long long)(checksum & 0xffffffff));
    out += item;
  }
  out += "]}\n";
  std::fputs(out.c_str(), stdout);
  return 0;
}
