// The flow sync's counters (one definition: the addon exports the names, status, stats and metrics
// show them). Written by the sync thread alone, except the queue drops (one writer per worker queue,
// flow_event_queue.h); read by the control plane.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace natlb::sync {

enum class SyncCounter : uint8_t {
  SentDatagrams,
  SentRecords,
  SentBytes,          // UDP payload bytes
  SendErrors,         // datagrams the socket refused (a peer unreachable, buffers full)
  ReceivedDatagrams,  // every datagram read, before any check
  ReceivedBytes,
  AppliedInserted,    // synced flows new to this instance
  AppliedUpdated,     // synced changes to flows it had
  RejectedTruncated,
  RejectedNotSync,
  RejectedWrongVersion,
  RejectedBadMac,
  RejectedUnknownType,
  RejectedReplayed,
  RejectedStale,          // timestamp further than the allowed skew from this host's clock
  RejectedInvalidRecord,  // authenticated, but not a flow (bad protocol, state, flags, zero address)
  RejectedUnknownService, // no service here for the record's VIP:port/protocol
  RejectedUnknownReal,    // the service has no real with the record's address and port here
  RejectedConflict,       // its reply tuple belongs to another flow here (full NAT local ports)
  DroppedQueueFull,       // flow events a worker could not queue (the sync thread fell behind)
  DroppedMapFull,         // synced flows the flow map had no room for
  SnapshotRequestsSent,
  SnapshotRequestsServed,
  SnapshotRecordsSent,
  SnapshotRecordsReceived,
  SnapshotsCompleted,     // snapshots this instance asked for and received to the end
  RefreshRecordsSent,     // established flows with traffic sent again (refreshS)
  PeersHeard,             // sender ids heard for the first time
  Count,
};

constexpr std::array<std::string_view, size_t(SyncCounter::Count)> kSyncCounterNames = {
    "sentDatagrams", "sentRecords", "sentBytes", "sendErrors", "receivedDatagrams", "receivedBytes",
    "appliedInserted", "appliedUpdated", "rejectedTruncated", "rejectedNotSync", "rejectedWrongVersion",
    "rejectedBadMac", "rejectedUnknownType", "rejectedReplayed", "rejectedStale", "rejectedInvalidRecord",
    "rejectedUnknownService", "rejectedUnknownReal", "rejectedConflict", "droppedQueueFull", "droppedMapFull",
    "snapshotRequestsSent", "snapshotRequestsServed", "snapshotRecordsSent", "snapshotRecordsReceived",
    "snapshotsCompleted", "refreshRecordsSent", "peersHeard",
};

class SyncCounters {
 public:
  void add(SyncCounter counter, uint64_t value = 1) {
    values_[size_t(counter)].fetch_add(value, std::memory_order_relaxed);
  }
  uint64_t get(SyncCounter counter) const { return values_[size_t(counter)].load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, size_t(SyncCounter::Count)> values_{};
};

}  // namespace natlb::sync
