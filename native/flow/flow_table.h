// The flow map: connection affinity in shared memory (layout in flow_layout.h). Lookups are
// lock-free and run on every packet from any worker; inserts and removals take one mutex (they happen
// once per connection). A freed entry is reused only once every reader that could have reached it has
// finished its batch (reader epochs), so a reader that raced with a removal still walks valid links.
//
// Floods: flows that have not proven themselves (flags::kUnassured: TCP before its handshake completes,
// UDP before a reply and a later packet) are the ones that give way. Each class may hold at most its
// share of the map (a new flow of a class at its share evicts an older one of the same class), a nearly
// full map evicts unassured flows to keep room for new connections, and under pressure (the map more
// than `pressureAt` full) unassured flows expire after a short timeout. Assured flows are never evicted.
#pragma once
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>

#include "../packet/wire.h"
#include "flow_layout.h"
#include "local_ports.h"
#include "offloaded_flows.h"
#include "reply_claims.h"
#include "timeout_profiles.h"

namespace natlb::flow {

struct ForwardKey {
  uint8_t protocol;
  uint32_t clientIp;
  uint16_t clientPort;
  uint32_t vip;
  uint16_t vport;
  bool isTemplate = false;  // a persistence template's key (persistence_templates.h), never a flow's
};

// A reply as it arrives: real -> the flow's reply destination, the client (nat) or natlb's local
// address and port (full NAT, replyDestinationOf).
struct ReverseKey {
  uint8_t protocol;
  uint32_t realIp;
  uint16_t realPort;
  uint32_t clientIp;
  uint16_t clientPort;
};

struct RealEndpoint {
  uint32_t ip;
  uint16_t port;
  uint16_t id;
};

// A handle to one entry: typed, atomic access to its fields in shared memory.
class FlowEntry {
 public:
  explicit FlowEntry(uint8_t* bytes) : bytes_(bytes) {}
  template <typename T>
  T load(size_t offset, std::memory_order order = std::memory_order_relaxed) const {
    return std::atomic_ref<T>(*reinterpret_cast<T*>(bytes_ + offset)).load(order);
  }
  template <typename T>
  void store(size_t offset, T value, std::memory_order order = std::memory_order_relaxed) const {
    std::atomic_ref<T>(*reinterpret_cast<T*>(bytes_ + offset)).store(value, order);
  }
  // Packet/byte counters have one writer each (a flow's client frames arrive on one interface, its
  // replies on another), so no locked read-modify-write is needed.
  void add(size_t offset, uint64_t value) const {
    std::atomic_ref<uint64_t> counter(*reinterpret_cast<uint64_t*>(bytes_ + offset));
    counter.store(counter.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
  }
  // Sets flag bits atomically (both directions' workers may set theirs at once); returns them all.
  uint16_t setFlags(uint16_t bits) const {
    return uint16_t(std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(bytes_ + entry::kFlags))
                        .fetch_or(bits, std::memory_order_relaxed) | bits);
  }
  // Clears flag bits atomically; returns the flags as they were (so exactly one caller sees a bit go).
  uint16_t takeFlags(uint16_t bits) const {
    return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(bytes_ + entry::kFlags))
        .fetch_and(uint16_t(~bits), std::memory_order_relaxed);
  }
  // Raises a u64 field to `value` if that is larger, against concurrent raises. Returns by how much
  // this call raised it: concurrent raises to the same value share the increment out, none twice.
  uint64_t raise(size_t offset, uint64_t value) const {
    std::atomic_ref<uint64_t> field(*reinterpret_cast<uint64_t*>(bytes_ + offset));
    uint64_t current = field.load(std::memory_order_relaxed);
    while (current < value) {
      if (field.compare_exchange_weak(current, value, std::memory_order_relaxed)) return value - current;
    }
    return 0;
  }
  void raise32(size_t offset, uint32_t value) const {
    std::atomic_ref<uint32_t> field(*reinterpret_cast<uint32_t*>(bytes_ + offset));
    uint32_t current = field.load(std::memory_order_relaxed);
    while (current < value && !field.compare_exchange_weak(current, value, std::memory_order_relaxed)) {
    }
  }
  // Raises a TCP sequence number field in serial-number order (RFC 1982) against concurrent raises.
  void raiseSequence(size_t offset, uint32_t value) const {
    std::atomic_ref<uint32_t> field(*reinterpret_cast<uint32_t*>(bytes_ + offset));
    uint32_t current = field.load(std::memory_order_relaxed);
    while (int32_t(value - current) > 0 && !field.compare_exchange_weak(current, value, std::memory_order_relaxed)) {
    }
  }
  void clearFlags(uint16_t bits) const {
    std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(bytes_ + entry::kFlags)).fetch_and(uint16_t(~bits), std::memory_order_relaxed);
  }
  // TCP states only move forward (SYN_RECV < ESTABLISHED < FIN_WAIT < TIME_WAIT < CLOSE), so two
  // workers racing to advance a flow end in the later state whatever the interleaving. Returns the
  // state it moved from, or nothing when it was already there or beyond (a freed entry always is):
  // exactly one caller sees each move. FlowTable::raiseState keeps the real's counts with it.
  std::optional<FlowState> raiseState(FlowState target) const {
    std::atomic_ref<uint8_t> state(*(bytes_ + entry::kState));
    uint8_t current = state.load(std::memory_order_relaxed);
    while (current < uint8_t(target)) {
      if (state.compare_exchange_weak(current, uint8_t(target), std::memory_order_relaxed)) return FlowState(current);
    }
    return std::nullopt;
  }
  // Marks the entry's state released (kReleasedState) and returns what it was.
  uint8_t takeState() const {
    return std::atomic_ref<uint8_t>(*(bytes_ + entry::kState)).exchange(kReleasedState, std::memory_order_relaxed);
  }
  bool live() const { return load<uint32_t>(entry::kStatus, std::memory_order_acquire) == uint32_t(EntryStatus::Live); }
  uint16_t flags() const { return load<uint16_t>(entry::kFlags); }
  FlowState state() const { return FlowState(load<uint8_t>(entry::kState)); }
  RealEndpoint real() const {
    return {load<uint32_t>(entry::kRealIp), load<uint16_t>(entry::kRealPort), load<uint16_t>(entry::kRealId)};
  }

 private:
  uint8_t* bytes_;
};

// Where a flow's replies are addressed: its client, or for a full-NAT flow its local address and port.
struct ReplyDestination {
  uint32_t ip;
  uint16_t port;
};
inline ReplyDestination replyDestinationOf(const FlowEntry& e) {
  if (e.flags() & flags::kFullNat) return {e.load<uint32_t>(entry::kLocalIp), e.load<uint16_t>(entry::kLocalPort)};
  return {e.load<uint32_t>(entry::kClientIp), e.load<uint16_t>(entry::kClientPort)};
}

// The two classes of unassured flows, each with its own share of the map.
enum class UnassuredClass : uint8_t { HalfOpenTcp, Udp };
constexpr size_t kUnassuredClassCount = 2;
constexpr UnassuredClass unassuredClassOf(uint8_t protocol) {
  return protocol == packet::kProtocolUdp ? UnassuredClass::Udp : UnassuredClass::HalfOpenTcp;
}

// A UDP flow that has had a reply and still carries packets this long after it began is a stream, not
// a probe or a single exchange (conntrack's rule for assuring UDP).
constexpr uint64_t kUdpAssuredAfterMs = 2000;

// Whether a flow has proven itself: TCP once out of SYN_RECV (its handshake completed, or it closed),
// UDP once the real replied and the exchange goes on.
constexpr bool hasProvenItself(uint8_t protocol, FlowState state, uint16_t flowFlags, uint64_t ageMs) {
  // A direct-routing flow never sees a reply: a client still sending after the time is its only proof.
  const uint16_t answered = flags::kSeenReply | flags::kDirectRouting;
  if (protocol == packet::kProtocolUdp) return (flowFlags & answered) && ageMs >= kUdpAssuredAfterMs;
  // Picked up mid-stream: no handshake to prove it, so as UDP (a spoofed segment makes one such flow, never more).
  if (flowFlags & flags::kPickedUp) return (flowFlags & answered) && ageMs >= kUdpAssuredAfterMs;
  return state != FlowState::SynRecv;
}

// How the map defends itself against floods (config floodProtection), in thousandths of the capacity.
struct FloodDefences {
  std::atomic<uint32_t> halfOpenSharePermille{500};
  std::atomic<uint32_t> udpSharePermille{500};
  std::atomic<uint32_t> pressureAtPermille{500};
  std::atomic<uint32_t> pressureTimeoutSeconds{5};
};

// A flow as a peer synced it (native/sync): its key, real (mapped to this instance's id), state and mode.
struct SyncedFlow {
  ForwardKey key;
  RealEndpoint real;
  FlowState state;
  uint16_t modeFlags;       // flags::kDirectRouting, flags::kFullNat or 0
  ReplyDestination local;   // full NAT: the local address and port the peer chose
  bool assured;             // it has proven itself on the peer
  uint8_t timeoutProfile;
  uint32_t templateRef = 0; // its client's persistence template here (found or bound in this batch), 0: none
};
enum class SyncedOutcome : uint8_t { Inserted, Updated, Full, Conflict };

// Why a new flow got no entry.
enum class InsertRefusal : uint8_t { None, Full, LocalPortsExhausted };

class FlowTable {
 public:
  // Writes a fresh, empty map into `memory` (offsetsFor(capacity).totalBytes long).
  static void initialize(uint8_t* memory, uint32_t capacity, uint32_t hashSeed);
  // Attaches to initialized memory; throws std::invalid_argument if it does not look like one.
  FlowTable(uint8_t* memory, size_t bytes);

  uint32_t capacity() const { return capacity_; }
  FlowEntry entryAt(uint32_t ref) const { return FlowEntry(entries_ + size_t(ref - 1) * kEntryBytes); }

  // 0 when absent; otherwise a ref (entry index + 1) valid for this packet's processing.
  uint32_t findForward(const ForwardKey& key) const;
  uint32_t findReverse(const ReverseKey& key) const;

  // Creates the flow (or returns the live one with this key), unassured (TCP in SYN_RECV, or UDP),
  // evicting unassured flows as the flood defences say; 0 when the map is full (counted). The flow
  // expires by the timeouts of `timeoutProfile` (its service's). A flow created through a persistence
  // template (`templateRef`, found in this batch) is controlled by it.
  // `modeFlags` (flags::kDirectRouting, flags::kFullNat or 0) is the flow's forwarding mode, for its
  // whole life. A full-NAT flow gets a local address and port from `pool` (local_ports.h): the address
  // `poolStart` picks first, the port next in turn for that address and the real; none free: 0, and
  // `refusal` says LocalPortsExhausted.
  uint32_t insert(const ForwardKey& key, const RealEndpoint& real, FlowState state, uint64_t nowMs,
                  uint8_t timeoutProfile = kGlobalTimeoutProfile, uint32_t templateRef = 0, uint16_t modeFlags = 0,
                  const LocalSourcePool* pool = nullptr, uint64_t poolStart = 0, InsertRefusal* refusal = nullptr);
  // Persistence templates (persistence_templates.cc). The live template with `key` (made by
  // templateKeyOf), or a new one holding `real`; an existing one whose serial is `staleSerial` (the
  // caller found its real unusable) is rebound to `real` first. A new template is unassured, like the
  // flow that makes it. 0 when the map has no room.
  uint32_t bindTemplate(const ForwardKey& key, const RealEndpoint& real, uint32_t timeoutS, uint64_t nowMs,
                        std::optional<uint32_t> staleSerial);
  // A template a peer synced (native/sync): a new one holding `real`, or the live one with this key
  // (holding the same real) kept alive; one holding another real is kept and the record refused
  // (Conflict), as IPVS's sync keeps an existing template's real (a flow's it replaces).
  SyncedOutcome applySyncedTemplate(const ForwardKey& key, const RealEndpoint& real, uint32_t timeoutS, bool assured,
                                    uint64_t nowMs);
  // A real's persistence templates (templates are no connections: not in activeFlowsOf/inactiveFlowsOf).
  uint32_t templatesOf(uint16_t realId) const { return realCounter(realId, real_counters::kTemplates).load(std::memory_order_relaxed); }
  // Advances a flow's TCP state (never back) and moves it between its real's active and inactive
  // counts. Lock-free, for the workers.
  void raiseState(const FlowEntry& entry, FlowState target);
  // A real's live flows, as kept in the shared counters (flow_layout.h): ESTABLISHED, and the rest.
  uint32_t activeFlowsOf(uint16_t realId) const { return realCounter(realId, real_counters::kActive).load(std::memory_order_relaxed); }
  uint32_t inactiveFlowsOf(uint16_t realId) const { return realCounter(realId, real_counters::kInactive).load(std::memory_order_relaxed); }
  // Applies a flow a peer synced: a new entry (flags::kMidStreamStart, its reply claimed at once
  // so replies that arrive here are natlb's), or the live one with its key raised to the synced state and
  // kept alive; one with the same key but another real or mode is replaced. Conflict: its reply tuple
  // is another live flow's (a full-NAT local port in use here). With a templateRef, the flow is
  // controlled by that template, as one created through it here.
  SyncedOutcome applySynced(const SyncedFlow& flow, uint64_t nowMs);
  // Entries ever handed out: refs 1..usedEntries() may be live (for scans).
  uint32_t usedEntries() const { return headerField<uint32_t>(header::kBumpAllocated).load(std::memory_order_relaxed); }
  // Removes a live flow (for reuse of a closing one by a new SYN).
  void remove(uint32_t ref, uint64_t nowMs);
  // The flow has proven itself (its handshake completed, or its UDP exchange goes on): it leaves its
  // unassured class and is never evicted. Lock-free; only the first call for a flow counts.
  void assure(const FlowEntry& entry);
  // Removes flows idle longer than their state's timeout in their profile (unassured ones, under
  // pressure, longer than the short timeout); looks at no more than `budget` entries. Offloaded flows
  // are judged by the kernel's activity, which also refreshes their counters. Renews the reply claims
  // of long-lived flows.
  size_t sweep(uint64_t nowMs, const TimeoutProfiles& timeouts, size_t budget);
  FloodDefences& floodDefences() { return defences_; }
  // TCP flows still in their handshake (the half-open class), and every live flow.
  uint32_t halfOpenFlows() const { return unassuredCount(UnassuredClass::HalfOpenTcp); }
  uint32_t liveFlows() const { return headerField<uint32_t>(header::kLiveCount).load(std::memory_order_relaxed); }
  // Where releases and renewals of reply claims go (nullptr: nowhere). Set while no worker runs.
  void setReplyClaims(ReplyClaims* claims);
  // Renews the claim of every flow live now, over the next sweeps (the kernel lost its list).
  void renewAllClaims(uint64_t nowMs) { renewClaimsBeforeMs_.store(nowMs, std::memory_order_relaxed); }

  // Readers that hold refs across a batch of frames (the workers) register once and bracket each batch:
  // an entry freed while a reader is inside a batch is not reused before that batch ends.
  size_t registerReader();
  void unregisterReader(size_t reader);
  void enterBatch(size_t reader) {
    readers_[reader].store(epoch_.load(std::memory_order_seq_cst), std::memory_order_seq_cst);
  }
  void leaveBatch(size_t reader) { readers_[reader].store(kOutsideBatch, std::memory_order_release); }
  // Where offloaded flows live (nullptr: nowhere, and every entry's hand-over flags are cleared). Set
  // while no worker runs; removal withdraws an offloaded flow from it.
  void setOffloadedFlows(OffloadedFlows* offloaded);
  // Once per flow: `handOver` puts it into the kernel; the entry is then marked kOffloaded (or
  // kUserSpaceOnly when it returns false). Serialized with removals, so no removed flow stays there.
  template <typename HandOver>
  void offload(uint32_t ref, HandOver&& handOver) {
    std::lock_guard lock(writers_);
    const FlowEntry e = entryAt(ref);
    if (offloaded_ == nullptr || !e.live() || (e.load<uint16_t>(entry::kFlags) & (flags::kOffloaded | flags::kUserSpaceOnly))) {
      return;
    }
    e.setFlags(handOver(e) ? flags::kOffloaded : flags::kUserSpaceOnly);
  }
  // Folds in what the kernel forwarded of an offloaded flow since the last read-back (counts, TCP
  // tracking); nothing for a flow user space forwards. For a worker about to judge a FIN or RST: the
  // flow's tracking must be current.
  void refreshFromKernel(const FlowEntry& entry);
  // Takes back from the kernel the offloaded flows `shouldWithdraw` names (their service is gone, their
  // next hop changed): user space then forwards them, and claims the replies of those the kernel
  // scheduled (`claim` false: the engine stops, nothing will forward them). The lock is taken per slice
  // of the map, so new connections wait for one slice, not the whole scan. Returns how many.
  template <typename Predicate>
  size_t withdrawOffloaded(Predicate&& shouldWithdraw, bool claim = true) {
    constexpr uint32_t kSlice = 4096;
    const uint32_t used = headerField<uint32_t>(header::kBumpAllocated).load(std::memory_order_relaxed);
    size_t withdrawn = 0;
    for (uint32_t first = 1; first <= used; first += kSlice) {
      std::lock_guard lock(writers_);
      if (offloaded_ == nullptr) return withdrawn;
      for (uint32_t ref = first; ref <= used && ref < first + kSlice; ++ref) {
        const FlowEntry e = entryAt(ref);
        if (!e.live() || !isOffloaded(e) || !shouldWithdraw(e)) continue;
        refreshOffloaded(e, 0);  // the kernel's last counts, before they go
        offloaded_->withdraw(e);
        e.clearFlags(flags::kOffloaded);
        e.setFlags(flags::kUserSpaceOnly);
        // A flow the kernel scheduled had no claim: its replies come to user space from now on.
        if (claim && claims_ != nullptr && (e.flags() & flags::kKernelScheduled) && claimsReplies(e.flags())) claims_->renew(e);
        ++withdrawn;
      }
    }
    return withdrawn;
  }
  // Removes the live flows `matches` names, in slices of the map under the lock; `beforeRemoval` sees
  // each one last (an offloaded one with the kernel's counts and tracking folded in). Returns how many.
  template <typename Predicate, typename Visit>
  size_t removeWhere(Predicate&& matches, Visit&& beforeRemoval) {
    constexpr uint32_t kSlice = 4096;
    const uint32_t used = headerField<uint32_t>(header::kBumpAllocated).load(std::memory_order_relaxed);
    size_t removed = 0;
    for (uint32_t first = 1; first <= used; first += kSlice) {
      std::lock_guard lock(writers_);
      for (uint32_t ref = first; ref <= used && ref < first + kSlice; ++ref) {
        const FlowEntry e = entryAt(ref);
        if (!e.live() || !matches(e)) continue;
        if (isOffloaded(e)) refreshOffloaded(e, 0);
        beforeRemoval(e);
        releaseLocked(ref);
        ++removed;
      }
    }
    return removed;
  }
  // Gives every live flow the timeout profile `profileOf` names for it (its service's profiles were
  // renumbered), in slices of the map under the lock, so an entry is not reused while it is looked at.
  template <typename ProfileOf>
  void reassignTimeoutProfiles(ProfileOf&& profileOf) {
    constexpr uint32_t kSlice = 4096;
    const uint32_t used = headerField<uint32_t>(header::kBumpAllocated).load(std::memory_order_relaxed);
    for (uint32_t first = 1; first <= used; first += kSlice) {
      std::lock_guard lock(writers_);
      for (uint32_t ref = first; ref <= used && ref < first + kSlice; ++ref) {
        const FlowEntry e = entryAt(ref);
        if (e.live()) e.store<uint8_t>(entry::kTimeoutProfile, profileOf(e));
      }
    }
  }
  void publishClock(uint64_t nowMs);

 private:
  template <typename T>
  std::atomic_ref<T> headerField(size_t offset) const {
    return std::atomic_ref<T>(*reinterpret_cast<T*>(memory_ + offset));
  }
  std::atomic_ref<uint32_t> bucket(uint32_t* buckets, uint32_t hash) const {
    return std::atomic_ref<uint32_t>(buckets[hash & bucketMask_]);
  }
  std::atomic_ref<uint32_t> realCounter(uint16_t realId, size_t field) const {
    return std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(realCounters_ + size_t{realId} * kRealCountersBytes + field));
  }
  void countFlow(uint16_t realId, uint8_t state, int32_t delta) const;
  uint32_t allocateFlowLocked(UnassuredClass unassured);
  void linkLocked(uint32_t ref, const ForwardKey& key, const RealEndpoint& real, uint64_t nowMs, uint8_t timeoutProfile);
  std::optional<ReplyDestination> chooseLocalSourceLocked(uint8_t protocol, const RealEndpoint& real,
                                                          const LocalSourcePool& pool, uint64_t start);
  // The live template a flow names (nullopt: none, or gone since); for the workers too (lock-free).
  std::optional<FlowEntry> controllingTemplate(const FlowEntry& flow) const;
  void releaseControlLocked(const FlowEntry& flow);
  uint32_t createTemplateLocked(const ForwardKey& key, const RealEndpoint& real, uint32_t timeoutS, uint64_t nowMs);
  // A new flow (or a synced one not yet linked) becomes controlled by the template at `templateRef`,
  // found in this batch, if it is still live.
  void controlLocked(const FlowEntry& flow, uint32_t templateRef, uint64_t nowMs);
  uint32_t hashForward(const ForwardKey& key) const;
  uint32_t hashReverse(const ReverseKey& key) const;
  bool matchesForward(const FlowEntry& entry, const ForwardKey& key) const;
  bool matchesReverse(const FlowEntry& entry, const ReverseKey& key) const;
  uint32_t allocateLocked();
  bool reusable(uint32_t freedEpoch) const;
  void unlinkLocked(uint32_t ref);
  void releaseLocked(uint32_t ref);
  bool isOffloaded(const FlowEntry& entry) const;
  void refreshOffloaded(const FlowEntry& entry, uint64_t nowMs);
  void leaveUnassuredClass(const FlowEntry& entry);
  uint32_t unassuredCount(UnassuredClass c) const;
  bool evictUnassuredLocked(UnassuredClass c, size_t reasonCounter);
  void makeRoomLocked(UnassuredClass incoming);
  bool underPressure() const;

  static constexpr size_t kMaxReaders = 64;
  static constexpr uint64_t kOutsideBatch = ~uint64_t{0};

  uint8_t* memory_;
  uint32_t capacity_;
  uint32_t bucketMask_;
  uint32_t hashSeed_;
  LocalPortCursors localPortCursors_;  // under writers_
  uint8_t* realCounters_;
  uint32_t* forwardBuckets_;
  uint32_t* reverseBuckets_;
  uint32_t* freeRing_;
  uint8_t* entries_;
  uint32_t sweepCursor_ = 0;
  uint32_t evictionCursor_ = 0;  // under writers_
  std::atomic<uint64_t> renewClaimsBeforeMs_{0};  // claims made before this are renewed now
  OffloadedFlows* offloaded_ = nullptr;
  ReplyClaims* claims_ = nullptr;
  FloodDefences defences_;
  std::atomic<uint64_t> epoch_{1};
  std::array<std::atomic<uint64_t>, kMaxReaders> readers_;
  std::array<std::atomic<bool>, kMaxReaders> readerInUse_{};
  std::atomic<size_t> readerCount_{0};
  std::mutex writers_;
};

}  // namespace natlb::flow
