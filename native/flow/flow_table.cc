#include "flow_table.h"

#include "persistence_templates.h"
#include "tcp_state.h"
#include "tcp_tracking.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <stdexcept>

namespace natlb::flow {

namespace {

// How far the eviction cursor looks for an unassured flow before giving up (the map is then mostly
// assured flows, which are never evicted).
constexpr uint32_t kEvictionScan = 1024;

constexpr size_t classCountField(UnassuredClass c) {
  return c == UnassuredClass::Udp ? header::kUnassuredUdpFlows : header::kHalfOpenFlows;
}

constexpr uint64_t mix64(uint64_t x) {  // murmur3 finalizer
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

uint32_t hashTuple(uint32_t seed, uint8_t protocol, uint32_t ipA, uint16_t portA, uint32_t ipB, uint16_t portB) {
  const uint64_t a = (uint64_t{ipA} << 32) | (uint64_t{portA} << 16) | portB;
  const uint64_t b = (uint64_t{ipB} << 32) | (uint64_t{protocol} << 8) | seed;
  return uint32_t(mix64(a ^ mix64(b + seed)));
}

}  // namespace

void FlowTable::initialize(uint8_t* memory, uint32_t capacity, uint32_t hashSeed) {
  const Offsets offsets = offsetsFor(capacity);
  std::memset(memory, 0, offsets.totalBytes);
  auto put32 = [&](size_t offset, uint32_t value) { std::memcpy(memory + offset, &value, 4); };
  put32(header::kMagic, kMagic);
  put32(header::kVersion, kLayoutVersion);
  put32(header::kCapacity, capacity);
  put32(header::kBucketCount, bucketCountFor(capacity));
  put32(header::kHashSeed, hashSeed);
}

FlowTable::FlowTable(uint8_t* memory, size_t bytes)
    : memory_(memory), localPortCursors_((uint64_t(std::random_device{}()) << 32) | std::random_device{}()) {
  if (bytes < kHeaderBytes || (reinterpret_cast<uintptr_t>(memory) & 7) != 0) {
    throw std::invalid_argument("flow map memory is too small or not 8-byte aligned");
  }
  uint32_t magic, version, capacity, buckets;
  std::memcpy(&magic, memory + header::kMagic, 4);
  std::memcpy(&version, memory + header::kVersion, 4);
  std::memcpy(&capacity, memory + header::kCapacity, 4);
  std::memcpy(&buckets, memory + header::kBucketCount, 4);
  std::memcpy(&hashSeed_, memory + header::kHashSeed, 4);
  if (magic != kMagic || version != kLayoutVersion) {
    throw std::invalid_argument("flow map memory is not initialized (bad magic or layout version)");
  }
  if (capacity < kMinCapacity || capacity > kMaxCapacity || buckets != bucketCountFor(capacity)) {
    throw std::invalid_argument("flow map header has an invalid capacity");
  }
  const Offsets offsets = offsetsFor(capacity);
  if (bytes < offsets.totalBytes) throw std::invalid_argument("flow map memory is smaller than its capacity needs");
  capacity_ = capacity;
  for (auto& reader : readers_) reader.store(kOutsideBatch, std::memory_order_relaxed);
  bucketMask_ = buckets - 1;
  realCounters_ = memory + offsets.realCounters;
  forwardBuckets_ = reinterpret_cast<uint32_t*>(memory + offsets.forwardBuckets);
  reverseBuckets_ = reinterpret_cast<uint32_t*>(memory + offsets.reverseBuckets);
  freeRing_ = reinterpret_cast<uint32_t*>(memory + offsets.freeRing);
  entries_ = memory + offsets.entries;
}

uint32_t FlowTable::hashForward(const ForwardKey& key) const {
  return hashTuple(hashSeed_, key.protocol, key.clientIp, key.clientPort, key.vip, key.vport);
}

uint32_t FlowTable::hashReverse(const ReverseKey& key) const {
  return hashTuple(hashSeed_, key.protocol, key.realIp, key.realPort, key.clientIp, key.clientPort);
}

bool FlowTable::matchesForward(const FlowEntry& e, const ForwardKey& key) const {
  return e.live() && ((e.flags() & flags::kTemplate) != 0) == key.isTemplate && e.load<uint32_t>(entry::kClientIp) == key.clientIp &&
         e.load<uint16_t>(entry::kClientPort) == key.clientPort && e.load<uint32_t>(entry::kVip) == key.vip &&
         e.load<uint16_t>(entry::kVport) == key.vport && e.load<uint8_t>(entry::kProtocol) == key.protocol;
}

bool FlowTable::matchesReverse(const FlowEntry& e, const ReverseKey& key) const {
  if (!e.live() || (e.flags() & flags::kTemplate)) return false;
  const ReplyDestination destination = replyDestinationOf(e);
  return e.load<uint32_t>(entry::kRealIp) == key.realIp && e.load<uint16_t>(entry::kRealPort) == key.realPort &&
         destination.ip == key.clientIp && destination.port == key.clientPort && e.load<uint8_t>(entry::kProtocol) == key.protocol;
}

uint32_t FlowTable::findForward(const ForwardKey& key) const {
  uint32_t ref = bucket(forwardBuckets_, hashForward(key)).load(std::memory_order_acquire);
  for (uint32_t steps = 0; ref != 0 && ref <= capacity_ && steps < capacity_; ++steps) {
    const FlowEntry e = entryAt(ref);
    if (matchesForward(e, key)) return ref;
    ref = e.load<uint32_t>(entry::kNextForward, std::memory_order_acquire);
  }
  return 0;
}

uint32_t FlowTable::findReverse(const ReverseKey& key) const {
  uint32_t ref = bucket(reverseBuckets_, hashReverse(key)).load(std::memory_order_acquire);
  for (uint32_t steps = 0; ref != 0 && ref <= capacity_ && steps < capacity_; ++steps) {
    const FlowEntry e = entryAt(ref);
    if (matchesReverse(e, key)) return ref;
    ref = e.load<uint32_t>(entry::kNextReverse, std::memory_order_acquire);
  }
  return 0;
}

size_t FlowTable::registerReader() {
  for (size_t reader = 0; reader < kMaxReaders; ++reader) {
    bool unused = false;
    if (!readerInUse_[reader].compare_exchange_strong(unused, true)) continue;
    readers_[reader].store(kOutsideBatch, std::memory_order_seq_cst);
    size_t count = readerCount_.load();
    while (count < reader + 1 && !readerCount_.compare_exchange_weak(count, reader + 1)) {
    }
    return reader;
  }
  throw std::length_error("too many flow map readers");
}

void FlowTable::unregisterReader(size_t reader) {
  readers_[reader].store(kOutsideBatch, std::memory_order_seq_cst);
  readerInUse_[reader].store(false);
}

// An entry freed at `freedEpoch` may be reused once no reader is still inside a batch it entered
// before the free (such a reader may hold the entry's ref or be walking its links).
bool FlowTable::reusable(uint32_t freedEpoch) const {
  const size_t readers = std::min(readerCount_.load(std::memory_order_acquire), kMaxReaders);
  for (size_t i = 0; i < readers; ++i) {
    const uint64_t entered = readers_[i].load(std::memory_order_seq_cst);
    if (entered != kOutsideBatch && int32_t(uint32_t(entered) - freedEpoch) <= 0) return false;
  }
  return true;
}

uint32_t FlowTable::allocateLocked() {
  auto bump = headerField<uint32_t>(header::kBumpAllocated);
  const uint32_t bumped = bump.load(std::memory_order_relaxed);
  if (bumped < capacity_) {
    bump.store(bumped + 1, std::memory_order_relaxed);
    return bumped + 1;
  }
  // Every entry handed out and not live is in the free ring (writers hold the mutex).
  const uint32_t freeCount = bumped - headerField<uint32_t>(header::kLiveCount).load(std::memory_order_relaxed);
  if (freeCount == 0) return 0;
  auto head = headerField<uint32_t>(header::kFreeHead);
  const uint32_t position = head.load(std::memory_order_relaxed);
  const uint32_t ref = freeRing_[position];
  if (!reusable(entryAt(ref).load<uint32_t>(entry::kFreedEpoch))) return 0;
  head.store(position + 1 == capacity_ ? 0 : position + 1, std::memory_order_relaxed);
  return ref;
}

uint32_t FlowTable::unassuredCount(UnassuredClass c) const {
  return headerField<uint32_t>(classCountField(c)).load(std::memory_order_relaxed);
}

void FlowTable::leaveUnassuredClass(const FlowEntry& e) {
  if (e.takeFlags(flags::kUnassured) & flags::kUnassured) {
    headerField<uint32_t>(classCountField(unassuredClassOf(e.load<uint8_t>(entry::kProtocol))))
        .fetch_sub(1, std::memory_order_relaxed);
  }
}

// A template is assured with the first flow it controls that proves itself: a spoofed flood's
// templates stay as evictable as its flows.
void FlowTable::assure(const FlowEntry& e) {
  leaveUnassuredClass(e);
  if (const auto controlling = controllingTemplate(e)) leaveUnassuredClass(*controlling);
}

// Adds `delta` to the count a flow in `state` belongs to (kReleasedState: none).
void FlowTable::countFlow(uint16_t realId, uint8_t state, int32_t delta) const {
  if (state == kReleasedState) return;
  const size_t field = isActive(FlowState(state)) ? real_counters::kActive : real_counters::kInactive;
  realCounter(realId, field).fetch_add(uint32_t(delta), std::memory_order_relaxed);
}

void FlowTable::raiseState(const FlowEntry& e, FlowState target) {
  const std::optional<FlowState> from = e.raiseState(target);
  if (!from || isActive(*from) == isActive(target)) return;
  const uint16_t realId = e.load<uint16_t>(entry::kRealId);
  countFlow(realId, uint8_t(target), 1);
  countFlow(realId, uint8_t(*from), -1);
}

bool FlowTable::underPressure() const {
  const uint64_t live = headerField<uint32_t>(header::kLiveCount).load(std::memory_order_relaxed);
  return live * 1000 >= uint64_t{capacity_} * defences_.pressureAtPermille.load(std::memory_order_relaxed);
}

// Evicts one unassured flow of class `c`, found from a rotating cursor (so evictions spread over the
// map, like conntrack's early drop); false when none was found within the scan.
bool FlowTable::evictUnassuredLocked(UnassuredClass c, size_t reasonCounter) {
  const uint32_t used = headerField<uint32_t>(header::kBumpAllocated).load(std::memory_order_relaxed);
  for (uint32_t scanned = 0; scanned < used && scanned < kEvictionScan; ++scanned) {
    if (evictionCursor_ >= used) evictionCursor_ = 0;
    const uint32_t ref = ++evictionCursor_;
    const FlowEntry e = entryAt(ref);
    if (!e.live() || !(e.flags() & flags::kUnassured) || unassuredClassOf(e.load<uint8_t>(entry::kProtocol)) != c) continue;
    releaseLocked(ref);
    headerField<uint64_t>(reasonCounter).fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  return false;
}

// Keeps a small reserve of the map free once it is nearly full: an evicted entry is reusable only after
// the current batches end, so room has to be made a little ahead of the flows that need it.
void FlowTable::makeRoomLocked(UnassuredClass incoming) {
  const uint32_t reserve = std::max<uint32_t>(1, capacity_ / 64);
  const uint32_t live = headerField<uint32_t>(header::kLiveCount).load(std::memory_order_relaxed);
  if (live < capacity_ - reserve) return;
  const UnassuredClass other = incoming == UnassuredClass::Udp ? UnassuredClass::HalfOpenTcp : UnassuredClass::Udp;
  // The class holding more gives way first.
  const UnassuredClass first = unassuredCount(other) > unassuredCount(incoming) ? other : incoming;
  const UnassuredClass second = first == incoming ? other : incoming;
  auto roomCounter = [](UnassuredClass c) {
    return c == UnassuredClass::Udp ? header::kEvictedUdpRoom : header::kEvictedHalfOpenRoom;
  };
  if (!evictUnassuredLocked(first, roomCounter(first))) evictUnassuredLocked(second, roomCounter(second));
}

// Makes room as the flood defences say for a new entry of class `unassured` and allocates it; 0 when
// the map is full (counted).
uint32_t FlowTable::allocateFlowLocked(UnassuredClass unassured) {
  const uint32_t share = unassured == UnassuredClass::Udp ? defences_.udpSharePermille.load(std::memory_order_relaxed)
                                                           : defences_.halfOpenSharePermille.load(std::memory_order_relaxed);
  if (uint64_t{unassuredCount(unassured)} * 1000 >= uint64_t{capacity_} * share) {
    evictUnassuredLocked(unassured, unassured == UnassuredClass::Udp ? header::kEvictedUdpQuota : header::kEvictedHalfOpenQuota);
  }
  makeRoomLocked(unassured);
  const uint32_t ref = allocateLocked();
  if (ref == 0) headerField<uint64_t>(header::kFullDrops).fetch_add(1, std::memory_order_relaxed);
  return ref;
}

// Fills a fresh entry (its state, flags and template fields already stored) and links it into the
// indexes (a template into the forward one only: nothing comes back to it), live and unassured.
void FlowTable::linkLocked(uint32_t ref, const ForwardKey& key, const RealEndpoint& real, uint64_t nowMs,
                           uint8_t timeoutProfile) {
  const FlowEntry e = entryAt(ref);
  e.store<uint8_t>(entry::kProtocol, key.protocol);
  e.store<uint16_t>(entry::kRealId, real.id);
  e.store<uint32_t>(entry::kClientIp, key.clientIp);
  e.store<uint32_t>(entry::kVip, key.vip);
  e.store<uint32_t>(entry::kRealIp, real.ip);
  e.store<uint16_t>(entry::kClientPort, key.clientPort);
  e.store<uint16_t>(entry::kVport, key.vport);
  e.store<uint16_t>(entry::kRealPort, real.port);
  e.store<uint64_t>(entry::kLastSeenMs, nowMs);
  e.store<uint64_t>(entry::kCreatedMs, nowMs);
  e.store<uint64_t>(entry::kClaimedMs, nowMs);  // its first frame to the real claims its replies
  e.store<uint64_t>(entry::kSyncedMs, 0);
  for (size_t sequence : {entry::kClientSequenceEnd, entry::kRealSequenceEnd, entry::kClientWindow, entry::kRealWindow}) {
    e.store<uint32_t>(sequence, 0);
  }
  e.store<uint8_t>(entry::kClientWindowScale, kNoWindowScale);
  e.store<uint8_t>(entry::kRealWindowScale, kNoWindowScale);
  e.store<uint8_t>(entry::kTimeoutProfile, timeoutProfile);
  for (size_t counter : {entry::kPacketsIn, entry::kBytesIn, entry::kPacketsOut, entry::kBytesOut, entry::kKernelPacketsIn,
                         entry::kKernelBytesIn, entry::kKernelPacketsOut, entry::kKernelBytesOut, entry::kKernelReadMs}) {
    e.store<uint64_t>(counter, 0);
  }
  auto forwardHead = bucket(forwardBuckets_, hashForward(key));
  e.store<uint32_t>(entry::kNextForward, forwardHead.load(std::memory_order_relaxed));
  const ReplyDestination destination = replyDestinationOf(e);
  const ReverseKey reverse{key.protocol, real.ip, real.port, destination.ip, destination.port};
  auto reverseHead = bucket(reverseBuckets_, hashReverse(reverse));
  const bool linksReverse = !key.isTemplate && hasReplyIndex(e.flags());
  if (linksReverse) e.store<uint32_t>(entry::kNextReverse, reverseHead.load(std::memory_order_relaxed));
  e.store<uint32_t>(entry::kStatus, uint32_t(EntryStatus::Live), std::memory_order_release);
  forwardHead.store(ref, std::memory_order_release);
  if (linksReverse) reverseHead.store(ref, std::memory_order_release);
  headerField<uint32_t>(header::kLiveCount).fetch_add(1, std::memory_order_relaxed);
  headerField<uint32_t>(classCountField(unassuredClassOf(key.protocol))).fetch_add(1, std::memory_order_relaxed);
}

// Under the writers' lock the reply index is complete, so a port found free here stays free until this
// flow is linked: no two live flows share a reply tuple.
std::optional<ReplyDestination> FlowTable::chooseLocalSourceLocked(uint8_t protocol, const RealEndpoint& real,
                                                                    const LocalSourcePool& pool, uint64_t start) {
  for (uint32_t tried = 0; tried < pool.count; ++tried) {
    const uint32_t address = pool.addresses[(uint32_t(start) + tried) % pool.count];
    uint32_t& cursor = localPortCursors_.of(protocol, real.ip, real.port, address);
    const auto port = allocateLocalPort(pool.ports, cursor, [&](uint16_t candidate) {
      return findReverse(ReverseKey{protocol, real.ip, real.port, address, candidate}) != 0;
    });
    if (port) return ReplyDestination{address, *port};
  }
  return std::nullopt;
}

uint32_t FlowTable::insert(const ForwardKey& key, const RealEndpoint& real, FlowState state, uint64_t nowMs,
                          uint8_t timeoutProfile, uint32_t templateRef, uint16_t modeFlags, const LocalSourcePool* pool,
                          uint64_t poolStart, InsertRefusal* refusal) {
  std::lock_guard lock(writers_);
  if (const uint32_t existing = findForward(key)) return existing;
  std::optional<ReplyDestination> local;
  if (modeFlags & flags::kFullNat) {
    if (pool != nullptr) local = chooseLocalSourceLocked(key.protocol, real, *pool, poolStart);
    if (!local) {
      if (refusal != nullptr) *refusal = InsertRefusal::LocalPortsExhausted;
      return 0;
    }
  }
  const uint32_t ref = allocateFlowLocked(unassuredClassOf(key.protocol));
  if (ref == 0) {
    if (refusal != nullptr) *refusal = InsertRefusal::Full;
    return 0;
  }
  const FlowEntry e = entryAt(ref);
  e.store<uint32_t>(entry::kLocalIp, local ? local->ip : 0);
  e.store<uint16_t>(entry::kLocalPort, local ? local->port : uint16_t{0});
  e.store<uint8_t>(entry::kState, uint8_t(state));
  e.store<uint16_t>(entry::kFlags, uint16_t(flags::kUnassured | (modeFlags & flags::kModeFlags)));
  e.store<uint32_t>(entry::kTemplateRef, 0);
  controlLocked(e, templateRef, nowMs);
  linkLocked(ref, key, real, nowMs, timeoutProfile);
  countFlow(real.id, uint8_t(state), 1);
  headerField<uint64_t>(header::kInserted).fetch_add(1, std::memory_order_relaxed);
  return ref;
}

SyncedOutcome FlowTable::applySynced(const SyncedFlow& flow, uint64_t nowMs) {
  std::lock_guard lock(writers_);
  const uint16_t mode = flow.modeFlags & flags::kModeFlags;
  if (const uint32_t existing = findForward(flow.key)) {
    const FlowEntry e = entryAt(existing);
    const RealEndpoint real = e.real();
    const bool same = real.ip == flow.real.ip && real.port == flow.real.port && (e.flags() & flags::kModeFlags) == mode &&
                      (!(mode & flags::kFullNat) || (e.load<uint32_t>(entry::kLocalIp) == flow.local.ip &&
                                                     e.load<uint16_t>(entry::kLocalPort) == flow.local.port));
    // A closing flow and a record of an earlier state: the peer's client opened a new connection on
    // the same ports (the peer's worker reused the entry, allowsReuse); so does this instance.
    const FlowState current = e.state();
    const bool reused = uint8_t(current) != kReleasedState && flow.state < current && allowsReuse(current);
    if (same && !reused) {
      raiseState(e, flow.state);
      if (flow.key.protocol == packet::kProtocolUdp ? flow.assured : flow.state != FlowState::SynRecv) assure(e);
      e.raise(entry::kLastSeenMs, nowMs);
      e.store<uint64_t>(entry::kSyncedMs, nowMs);
      if (e.load<uint32_t>(entry::kTemplateRef) == 0) controlLocked(e, flow.templateRef, nowMs);
      return SyncedOutcome::Updated;
    }
    releaseLocked(existing);  // the peer's flow is the newer one (a new connection on the same ports)
  }
  const ReverseKey reverse{flow.key.protocol, flow.real.ip, flow.real.port,
                           (mode & flags::kFullNat) ? flow.local.ip : flow.key.clientIp,
                           (mode & flags::kFullNat) ? flow.local.port : flow.key.clientPort};
  if (!(mode & flags::kDirectRouting) && findReverse(reverse) != 0) return SyncedOutcome::Conflict;
  const uint32_t ref = allocateFlowLocked(unassuredClassOf(flow.key.protocol));
  if (ref == 0) return SyncedOutcome::Full;
  const FlowEntry e = entryAt(ref);
  e.store<uint32_t>(entry::kLocalIp, (mode & flags::kFullNat) ? flow.local.ip : 0);
  e.store<uint16_t>(entry::kLocalPort, (mode & flags::kFullNat) ? flow.local.port : uint16_t{0});
  e.store<uint8_t>(entry::kState, uint8_t(flow.state));
  e.store<uint16_t>(entry::kFlags, uint16_t(flags::kUnassured | flags::kMidStreamStart | mode));
  e.store<uint32_t>(entry::kTemplateRef, 0);
  controlLocked(e, flow.templateRef, nowMs);
  linkLocked(ref, flow.key, flow.real, nowMs, flow.timeoutProfile);
  countFlow(flow.real.id, uint8_t(flow.state), 1);
  const bool proven = flow.key.protocol == packet::kProtocolUdp ? flow.assured : flow.state != FlowState::SynRecv;
  if (proven) leaveUnassuredClass(e);
  e.store<uint64_t>(entry::kSyncedMs, nowMs);
  // Claimed now, not with its first frame to the real: after a take-over the real's replies may come
  // before the client's next segment does.
  if (claims_ != nullptr && hasReplyIndex(e.flags())) claims_->renew(e);
  return SyncedOutcome::Inserted;
}

void FlowTable::unlinkLocked(uint32_t ref) {
  const FlowEntry e = entryAt(ref);
  auto unlinkFrom = [&](uint32_t* buckets, uint32_t hash, size_t linkOffset) {
    uint32_t* link = &buckets[hash & bucketMask_];
    for (uint32_t steps = 0; steps < capacity_; ++steps) {
      const uint32_t current = std::atomic_ref<uint32_t>(*link).load(std::memory_order_relaxed);
      if (current == 0) return;
      uint32_t* next = reinterpret_cast<uint32_t*>(entries_ + size_t(current - 1) * kEntryBytes + linkOffset);
      if (current == ref) {
        std::atomic_ref<uint32_t>(*link).store(std::atomic_ref<uint32_t>(*next).load(std::memory_order_relaxed),
                                               std::memory_order_release);
        return;
      }
      link = next;
    }
  };
  const ForwardKey forward{e.load<uint8_t>(entry::kProtocol), e.load<uint32_t>(entry::kClientIp),
                           e.load<uint16_t>(entry::kClientPort), e.load<uint32_t>(entry::kVip),
                           e.load<uint16_t>(entry::kVport)};
  const ReplyDestination destination = replyDestinationOf(e);
  const ReverseKey reverse{forward.protocol, e.load<uint32_t>(entry::kRealIp), e.load<uint16_t>(entry::kRealPort),
                           destination.ip, destination.port};
  const bool isTemplate = (e.flags() & flags::kTemplate) != 0;
  unlinkFrom(forwardBuckets_, hashForward(ForwardKey{forward.protocol, forward.clientIp, forward.clientPort, forward.vip, forward.vport, isTemplate}),
             entry::kNextForward);
  if (hasReplyIndex(e.flags())) unlinkFrom(reverseBuckets_, hashReverse(reverse), entry::kNextReverse);
}

void FlowTable::releaseLocked(uint32_t ref) {
  const FlowEntry e = entryAt(ref);
  if (claims_ != nullptr && claimsReplies(e.flags())) claims_->release(e);  // a template or a DR flow claims nothing
  leaveUnassuredClass(e);
  unlinkLocked(ref);
  if (isOffloaded(e)) {
    refreshOffloaded(e, 0);  // the kernel's last counts reach the real's totals before they go
    offloaded_->withdraw(e);
  }
  // Taking the state byte settles a race with a worker raising it: whichever moves it last counts.
  const uint8_t state = e.takeState();
  if (e.flags() & flags::kTemplate) {
    realCounter(e.load<uint16_t>(entry::kRealId), real_counters::kTemplates).fetch_sub(1, std::memory_order_relaxed);
  } else {
    countFlow(e.load<uint16_t>(entry::kRealId), state, -1);
    releaseControlLocked(e);
  }
  e.store<uint32_t>(entry::kStatus, uint32_t(EntryStatus::Free), std::memory_order_release);
  // Readers that enter a batch from here on cannot reach the entry (it is unlinked): the epoch tells
  // allocateLocked when the readers that might have are all done.
  const uint64_t epoch = epoch_.load(std::memory_order_relaxed);
  e.store<uint32_t>(entry::kFreedEpoch, uint32_t(epoch));
  epoch_.store(epoch + 1, std::memory_order_seq_cst);
  auto tail = headerField<uint32_t>(header::kFreeTail);
  const uint32_t position = tail.load(std::memory_order_relaxed);
  freeRing_[position] = ref;
  tail.store(position + 1 == capacity_ ? 0 : position + 1, std::memory_order_relaxed);
  headerField<uint32_t>(header::kLiveCount).fetch_sub(1, std::memory_order_relaxed);
}

void FlowTable::remove(uint32_t ref, uint64_t) {
  std::lock_guard lock(writers_);
  if (ref == 0 || ref > capacity_ || !entryAt(ref).live()) return;
  releaseLocked(ref);
}

void FlowTable::setReplyClaims(ReplyClaims* claims) {
  std::lock_guard lock(writers_);
  claims_ = claims;
}

void FlowTable::setOffloadedFlows(OffloadedFlows* offloaded) {
  std::lock_guard lock(writers_);
  offloaded_ = offloaded;
  if (offloaded != nullptr) return;
  // The kernel's map went with the fast path: a later one may take these flows again.
  const uint32_t used = headerField<uint32_t>(header::kBumpAllocated).load(std::memory_order_relaxed);
  for (uint32_t ref = 1; ref <= used; ++ref) entryAt(ref).clearFlags(flags::kOffloaded | flags::kUserSpaceOnly);
}

bool FlowTable::isOffloaded(const FlowEntry& entry) const {
  return offloaded_ != nullptr && (entry.load<uint16_t>(entry::kFlags) & flags::kOffloaded) != 0;
}

// The kernel's counts go to fields of their own: the workers keep counting what user space forwards
// (FIN, RST, segments still in the rings at the hand-over) in theirs.
void FlowTable::refreshOffloaded(const FlowEntry& e, uint64_t nowMs) {
  if (nowMs != 0) e.store<uint64_t>(entry::kKernelReadMs, nowMs);
  const auto activity = offloaded_->activityOf(e);
  if (!activity) return;
  e.raise(entry::kLastSeenMs, activity->lastSeenMs);
  // What this read-back raised the flow's kernel counts by goes to its real's totals: every raise is
  // counted once, so the kernel's bytes reach the totals exactly once however often they are read.
  const KernelTrafficAdded added{e.raise(entry::kKernelPacketsIn, activity->packetsIn), e.raise(entry::kKernelBytesIn, activity->bytesIn),
                                 e.raise(entry::kKernelPacketsOut, activity->packetsOut), e.raise(entry::kKernelBytesOut, activity->bytesOut)};
  if (added.packetsIn | added.bytesIn | added.packetsOut | added.bytesOut) offloaded_->counted(e.load<uint16_t>(entry::kRealId), added);
  mergeKernelTracking(e, *activity);
}

void FlowTable::refreshFromKernel(const FlowEntry& e) {
  if (isOffloaded(e)) refreshOffloaded(e, 0);
}

size_t FlowTable::sweep(uint64_t nowMs, const TimeoutProfiles& timeouts, size_t budget) {
  // Offloaded flows get their activity from the kernel once a second each, a bounded number per sweep
  // (two lookups each): counters in the map stay about a second behind for up to ~10 k flows (more
  // lag beyond), and an offloaded flow is never expired without asking.
  constexpr size_t kRefreshBudget = 1024;
  constexpr uint64_t kRefreshAfterMs = 1000;
  size_t refreshBudget = kRefreshBudget;
  const bool pressure = underPressure();
  const uint64_t pressureTimeoutMs = uint64_t{defences_.pressureTimeoutSeconds.load(std::memory_order_relaxed)} * 1000;
  // Scans without the writers' mutex (workers insert new flows meanwhile) and takes it only to
  // remove an expired entry, after checking again under it. 0: alive; 1: expired by its state's
  // timeout; 2: expired early, an unassured flow under pressure.
  auto expiry = [&](const FlowEntry& e) -> int {
    if (!e.live()) return 0;
    if (e.flags() & flags::kTemplate) {
      const uint64_t lastSeen = e.load<uint64_t>(entry::kLastSeenMs);
      return int(templateExpiry(e.load<uint32_t>(entry::kControlledFlows), nowMs > lastSeen ? nowMs - lastSeen : 0,
                                uint64_t{e.load<uint32_t>(entry::kTemplateTimeoutS)} * 1000,
                                pressure && (e.flags() & flags::kUnassured), pressureTimeoutMs));
    }
    const uint64_t timeoutMs = timeouts.timeoutMs(e.load<uint8_t>(entry::kTimeoutProfile), e.load<uint8_t>(entry::kState));
    const uint64_t lastSeen = e.load<uint64_t>(entry::kLastSeenMs);
    const uint64_t idleMs = nowMs > lastSeen ? nowMs - lastSeen : 0;
    if (idleMs > timeoutMs) return 1;
    return pressure && (e.flags() & flags::kUnassured) && idleMs > pressureTimeoutMs ? 2 : 0;
  };
  const uint32_t used = headerField<uint32_t>(header::kBumpAllocated).load(std::memory_order_relaxed);
  size_t removed = 0, removedEarly = 0;
  for (size_t visited = 0; visited < budget && visited < used; ++visited) {
    if (sweepCursor_ >= used) sweepCursor_ = 0;
    const uint32_t ref = ++sweepCursor_;
    const FlowEntry e = entryAt(ref);
    // A closing flow (both FINs seen) is read once after its last activity user space saw, not every
    // second: thousands of TIME_WAITs would otherwise take the whole budget. Its expiry reads it again.
    const uint64_t kernelReadMs = e.load<uint64_t>(entry::kKernelReadMs);
    const bool closing = e.state() >= FlowState::TimeWait;
    if (refreshBudget > 0 && e.live() && isOffloaded(e) && nowMs >= kernelReadMs + kRefreshAfterMs &&
        (!closing || kernelReadMs <= e.load<uint64_t>(entry::kLastSeenMs))) {
      --refreshBudget;
      refreshOffloaded(e, nowMs);
    }
    const uint64_t claimedMs = e.load<uint64_t>(entry::kClaimedMs);
    if (claims_ != nullptr && e.live() && claimsReplies(e.flags()) &&
        (nowMs >= claimedMs + kReplyClaimRenewMs || claimedMs < renewClaimsBeforeMs_.load(std::memory_order_relaxed))) {
      std::lock_guard lock(writers_);
      if (e.live()) {
        claims_->renew(e);
        e.store<uint64_t>(entry::kClaimedMs, nowMs);
      }
    }
    if (expiry(e) == 0) continue;
    std::lock_guard lock(writers_);
    if (isOffloaded(e)) refreshOffloaded(e, nowMs);
    const int verdict = expiry(e);
    if (verdict == 0) continue;
    releaseLocked(ref);
    ++removed;
    if (verdict == 2) ++removedEarly;
  }
  headerField<uint64_t>(header::kExpired).fetch_add(removed, std::memory_order_relaxed);
  headerField<uint64_t>(header::kExpiredEarly).fetch_add(removedEarly, std::memory_order_relaxed);
  return removed;
}

void FlowTable::publishClock(uint64_t nowMs) {
  headerField<uint64_t>(header::kClockMs).store(nowMs, std::memory_order_relaxed);
}

}  // namespace natlb::flow
