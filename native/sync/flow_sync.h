// The flow sync (IPVS's sync daemon, active/active): one thread per engine that
//   - drains the workers' flow events (flow_event_queue.h) into datagrams to every peer (and the
//     multicast group), sent when full or kFlushMs after the first record waited;
//   - re-sends established flows that had traffic every refresh period, so a peer's copy lives on;
//   - reads the peers' datagrams, checks them (sync_message.h: MAC, version; replay_window.h; clock
//     skew) and applies their records to the flow map, mapping each real ip:port to this instance's
//     real id through the current services. An applied record is never sent on (no ping-pong);
//   - asks for a snapshot of every live flow when it starts, and when it first hears a peer; serves the
//     peers' requests, paced.
// Counted in sync_counters.h.
#pragma once
#include <atomic>
#include <deque>
#include <optional>
#include <thread>
#include <vector>

#include "../engine/engine_context.h"
#include "replay_window.h"
#include "sync_counters.h"
#include "sync_message.h"
#include "sync_socket.h"

namespace natlb::sync {

struct SyncOptions {
  Endpoint listen;
  std::vector<Endpoint> peers;
  std::optional<MulticastGroup> multicast;
  SyncKey key;
  uint32_t refreshSeconds = 30;
  uint32_t maxClockSkewSeconds = 30;  // a datagram stamped further from this host's clock is stale
};

class FlowSync {
 public:
  // Opens the socket (throws io::SystemError) and starts the thread.
  FlowSync(engine::EngineContext& context, SyncOptions options);
  ~FlowSync();
  FlowSync(const FlowSync&) = delete;
  FlowSync& operator=(const FlowSync&) = delete;

  std::array<uint64_t, size_t(SyncCounter::Count)> counters() const;
  uint32_t senderId() const { return senderId_; }

  static constexpr const char* kThreadName = "natlb-sync";
  static constexpr uint64_t kFlushMs = 5;
  static constexpr size_t kSnapshotDatagramsPerTick = 16;  // ~3 k datagrams/s, ~130 k flows/s
  static constexpr uint64_t kSnapshotRetryMs = 1000;
  static constexpr uint32_t kSnapshotTries = 10;
  static constexpr size_t kRefreshScanPerTick = 4096;  // at most, a turn
  static constexpr size_t kMaxPendingSnapshots = 8;

 private:
  void run();
  void receive(uint64_t nowMs);
  void handle(const ReceivedDatagram& datagram, uint64_t nowMs);
  void apply(const FlowRecord& record, uint64_t nowMs);
  void drainEvents(uint64_t nowMs);
  void refreshEstablished(uint64_t nowMs);
  void serveSnapshot();
  void askForSnapshot(uint64_t nowMs);
  void queueRecord(const FlowRecord& record, uint64_t nowMs);
  void flush();
  bool sendMessage(MessageType type, const FlowRecord* records, size_t count, const std::vector<Endpoint>& to);
  std::vector<Endpoint> destinations() const;

  engine::EngineContext& context_;
  SyncOptions options_;
  SyncSocket socket_;
  uint32_t senderId_;
  uint64_t sequence_ = 0;
  SyncCounters counters_;
  ReplayWindow replay_;
  std::vector<FlowRecord> pending_;
  uint64_t pendingSinceMs_ = 0;
  uint64_t queueDropsSeen_ = 0;
  size_t reader_;
  uint32_t refreshCursor_ = 0;
  // Snapshots this instance serves: one at a time, the others wait.
  struct SnapshotServing {
    Endpoint to;
    uint32_t cursor = 0;
  };
  std::deque<SnapshotServing> snapshots_;
  // The snapshot this instance asked for.
  bool snapshotReceived_ = false;
  uint32_t snapshotTries_ = 0;
  uint64_t snapshotAskedMs_ = 0;
  std::atomic<bool> running_{true};
  std::thread thread_;
};

uint64_t realtimeMs();

}  // namespace natlb::sync
