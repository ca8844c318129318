#include "flow_sync.h"

#include <poll.h>
#include <pthread.h>

#include <algorithm>
#include <memory>
#include <ctime>
#include <random>

#include "../flow/persistence_templates.h"
#include "../flow/tcp_state.h"
#include "flow_records.h"

namespace natlb::sync {

uint64_t realtimeMs() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return uint64_t(now.tv_sec) * 1000 + uint64_t(now.tv_nsec) / 1000000;
}

namespace {

uint32_t randomSenderId() {
  std::random_device random;
  uint32_t id = 0;
  while (id == 0) id = random();
  return id;
}

}  // namespace

FlowSync::FlowSync(engine::EngineContext& context, SyncOptions options)
    : context_(context),
      options_(std::move(options)),
      socket_(options_.listen, options_.multicast),
      senderId_(randomSenderId()),
      reader_(context.flows.registerReader()) {
  pending_.reserve(kMaxRecordsPerDatagram);
  // Events queued before this sync (a previous one's leftovers) are stale: start from an empty queue.
  context_.syncEvents.forEach([](FlowEventQueue& q) { q.drain([](const FlowRecord&) {}, FlowEventQueue::kCapacity); });
  context_.syncEvents.enabled.store(true, std::memory_order_release);
  thread_ = std::thread([this] { run(); });
}

FlowSync::~FlowSync() {
  context_.syncEvents.enabled.store(false, std::memory_order_release);
  running_.store(false);
  if (thread_.joinable()) thread_.join();
  context_.flows.unregisterReader(reader_);
}

std::array<uint64_t, size_t(SyncCounter::Count)> FlowSync::counters() const {
  std::array<uint64_t, size_t(SyncCounter::Count)> out{};
  for (size_t i = 0; i < out.size(); ++i) out[i] = counters_.get(SyncCounter(i));
  return out;
}

std::vector<Endpoint> FlowSync::destinations() const {
  std::vector<Endpoint> to = options_.peers;
  if (options_.multicast) to.push_back({options_.multicast->group, options_.listen.port});
  return to;
}

void FlowSync::run() {
  // Named, so its CPU time can be read apart from the workers' (/proc/PID/task/*/comm; bench/syncCost.ts).
  pthread_setname_np(pthread_self(), kThreadName);
  std::array<ReceivedDatagram, SyncSocket::kBatch> batch;
  while (running_.load(std::memory_order_relaxed)) {
    pollfd descriptor{socket_.fd(), POLLIN, 0};
    ::poll(&descriptor, 1, int(kFlushMs));
    const uint64_t nowMs = engine::monotonicMs();
    context_.flows.enterBatch(reader_);
    for (size_t round = 0; round < 8; ++round) {  // bounded: the rest waits for the next turn
      const size_t received = socket_.receive(batch);
      for (size_t i = 0; i < received; ++i) handle(batch[i], nowMs);
      if (received < SyncSocket::kBatch) break;
    }
    drainEvents(nowMs);
    refreshEstablished(nowMs);
    if (!pending_.empty() && nowMs >= pendingSinceMs_ + kFlushMs) flush();
    serveSnapshot();
    context_.flows.leaveBatch(reader_);
    askForSnapshot(nowMs);
  }
  flush();
}

bool FlowSync::sendMessage(MessageType type, const FlowRecord* records, size_t count, const std::vector<Endpoint>& to) {
  std::array<uint8_t, kMaxDatagramBytes> datagram;
  const MessageHeader header{type, senderId_, ++sequence_, realtimeMs()};
  const size_t length = encodeMessage(header, {records, count}, options_.key, datagram.data());
  if (length == 0) return false;
  bool sent = false;
  for (const Endpoint& peer : to) {
    if (socket_.sendTo(peer, datagram.data(), length) == 0) {
      counters_.add(SyncCounter::SentDatagrams);
      counters_.add(SyncCounter::SentRecords, count);
      counters_.add(SyncCounter::SentBytes, length);
      sent = true;
    } else {
      counters_.add(SyncCounter::SendErrors);
    }
  }
  return sent;
}

void FlowSync::queueRecord(const FlowRecord& record, uint64_t nowMs) {
  if (pending_.empty()) pendingSinceMs_ = nowMs;
  pending_.push_back(record);
  if (pending_.size() == kMaxRecordsPerDatagram) flush();
}

void FlowSync::flush() {
  if (pending_.empty()) return;
  sendMessage(MessageType::Flows, pending_.data(), pending_.size(), destinations());
  pending_.clear();
}

std::optional<FlowRecord> FlowSync::templateRecord(const flow::FlowEntry& t, const engine::ServiceTable& services) const {
  using namespace flow::entry;
  const engine::Service* service = services.find(t.load<uint32_t>(kVip), t.load<uint16_t>(kVport), t.load<uint8_t>(kProtocol));
  if (service == nullptr || !service->persistence.enabled()) return std::nullopt;  // it goes with its service
  const FlowRecord record = templateRecordOf(t, service->persistence.netmask);
  if (!isValidRecord(record)) return std::nullopt;
  return record;
}

// A persistent flow's first event brings its template along, once (the template's kSyncedMs is 0 until
// it is sent or applied; refreshEstablished sends it again): ahead of the flow, so the peer links them.
void FlowSync::queueTemplateOf(const FlowRecord& flowRecord, const engine::ServiceTable& services, uint64_t nowMs) {
  const engine::Service* service = services.find(flowRecord.vip, flowRecord.vport, flowRecord.protocol);
  if (service == nullptr || !service->persistence.enabled()) return;
  const flow::Persistence& persistence = service->persistence;
  const uint32_t ref = context_.flows.findForward(
      flow::templateKeyOf(flowRecord.protocol, flowRecord.clientIp, persistence.netmask, flowRecord.vip, flowRecord.vport));
  if (ref == 0) return;
  const flow::FlowEntry t = context_.flows.entryAt(ref);
  if (t.load<uint64_t>(flow::entry::kSyncedMs) != 0) return;
  const auto record = templateRecord(t, services);
  if (!record) return;
  t.store<uint64_t>(flow::entry::kSyncedMs, nowMs);
  queueRecord(*record, nowMs);
}

void FlowSync::drainEvents(uint64_t nowMs) {
  uint64_t drops = context_.syncEvents.unqueued.load(std::memory_order_relaxed);
  const auto services = context_.services.load(std::memory_order_acquire);
  context_.syncEvents.forEach([&](FlowEventQueue& queue) {
    queue.drain([&](const FlowRecord& record) {
      if (record.flags & record_flags::kPersistent) queueTemplateOf(record, *services, nowMs);
      queueRecord(record, nowMs);
    }, FlowEventQueue::kCapacity);
    drops += queue.drops();
  });
  if (drops > queueDropsSeen_) counters_.add(SyncCounter::DroppedQueueFull, drops - queueDropsSeen_);
  queueDropsSeen_ = drops;
}

// IPVS's sync_refresh_period: an established flow (or a UDP one) that had traffic since it was last
// sent goes again once a period, so the peers' copies do not time out while it lives here. Flows a
// peer synced and that had no traffic here since are not sent back (kSyncedMs is when they were applied).
// A persistence template goes again once a period while it controls flows or had a new connection
// since, so a peer's copy does not expire while it is alive here.
void FlowSync::refreshEstablished(uint64_t nowMs) {
  const uint64_t periodMs = uint64_t{options_.refreshSeconds} * 1000;
  const uint32_t used = context_.flows.usedEntries();
  if (used == 0 || periodMs == 0) return;
  using namespace flow::entry;
  // The whole map twice a period, so no flow waits much longer than a period: a few hundred entries a
  // turn for a million flows, not a scan of the map every 5 ms.
  const size_t budget = std::min<size_t>(kRefreshScanPerTick, uint64_t{used} * kFlushMs * 2 / periodMs + 1);
  std::shared_ptr<const engine::ServiceTable> services;  // loaded at the first template
  for (size_t visited = 0; visited < budget && visited < used; ++visited) {
    if (refreshCursor_ >= used) refreshCursor_ = 0;
    const flow::FlowEntry e = context_.flows.entryAt(++refreshCursor_);
    if (!e.live()) continue;
    if (e.flags() & flow::flags::kTemplate) {
      const uint64_t syncedMs = e.load<uint64_t>(kSyncedMs);
      const uint64_t since = syncedMs != 0 ? syncedMs : e.load<uint64_t>(kCreatedMs);
      if (nowMs < since + periodMs) continue;
      if (e.load<uint32_t>(kControlledFlows) == 0 && e.load<uint64_t>(kLastSeenMs) <= since) continue;
      if (!services) services = context_.services.load(std::memory_order_acquire);
      const auto record = templateRecord(e, *services);
      if (!record) continue;
      e.store<uint64_t>(kSyncedMs, nowMs);
      queueRecord(*record, nowMs);
      counters_.add(SyncCounter::RefreshRecordsSent);
      continue;
    }
    if (!goesToPeers(e)) continue;
    const auto state = flow::FlowState(e.load<uint8_t>(kState));
    if (state != flow::FlowState::Established && state != flow::FlowState::Udp) continue;
    const uint64_t syncedMs = e.load<uint64_t>(kSyncedMs);
    const uint64_t since = syncedMs != 0 ? syncedMs : e.load<uint64_t>(kCreatedMs);
    if (nowMs < since + periodMs || e.load<uint64_t>(kLastSeenMs) <= since) continue;
    e.store<uint64_t>(kSyncedMs, nowMs);
    queueRecord(recordOf(e), nowMs);
    counters_.add(SyncCounter::RefreshRecordsSent);
  }
}

void FlowSync::serveSnapshot() {
  if (snapshots_.empty()) return;
  SnapshotServing& serving = snapshots_.front();
  const std::vector<Endpoint> to{serving.to};
  const uint32_t used = context_.flows.usedEntries();
  std::array<FlowRecord, kMaxRecordsPerDatagram> records;
  const auto services = context_.services.load(std::memory_order_acquire);
  for (size_t sent = 0; sent < kSnapshotDatagramsPerTick && serving.cursor < used; ++sent) {
    size_t count = 0;
    while (count < records.size() && serving.cursor < used) {
      const flow::FlowEntry e = context_.flows.entryAt(++serving.cursor);
      if (!e.live()) continue;
      if (e.flags() & flow::flags::kTemplate) {
        if (const auto record = templateRecord(e, *services)) records[count++] = *record;
        continue;
      }
      if (!goesToPeers(e)) continue;
      const FlowRecord record = recordOf(e);
      if (isValidRecord(record)) records[count++] = record;
    }
    if (count == 0) break;
    sendMessage(MessageType::Snapshot, records.data(), count, to);
    counters_.add(SyncCounter::SnapshotRecordsSent, count);
  }
  if (serving.cursor >= used) {
    sendMessage(MessageType::SnapshotEnd, nullptr, 0, to);
    counters_.add(SyncCounter::SnapshotRequestsServed);
    snapshots_.pop_front();
  }
}

void FlowSync::askForSnapshot(uint64_t nowMs) {
  if (snapshotReceived_ || snapshotTries_ >= kSnapshotTries || nowMs < snapshotAskedMs_ + kSnapshotRetryMs) return;
  const std::vector<Endpoint> to = destinations();
  if (to.empty()) return;
  ++snapshotTries_;
  snapshotAskedMs_ = nowMs;
  if (sendMessage(MessageType::SnapshotRequest, nullptr, 0, to)) counters_.add(SyncCounter::SnapshotRequestsSent);
}

void FlowSync::handle(const ReceivedDatagram& datagram, uint64_t nowMs) {
  counters_.add(SyncCounter::ReceivedDatagrams);
  counters_.add(SyncCounter::ReceivedBytes, std::min(datagram.length, kMaxDatagramBytes));
  if (datagram.length > kMaxDatagramBytes) {
    counters_.add(SyncCounter::RejectedTruncated);
    return;
  }
  const DecodedMessage message = decodeMessage({datagram.bytes.data(), datagram.length}, options_.key);
  switch (message.error) {
    case DecodeError::None: break;
    case DecodeError::Truncated: counters_.add(SyncCounter::RejectedTruncated); return;
    case DecodeError::NotSync: counters_.add(SyncCounter::RejectedNotSync); return;
    case DecodeError::WrongVersion: counters_.add(SyncCounter::RejectedWrongVersion); return;
    case DecodeError::BadMac: counters_.add(SyncCounter::RejectedBadMac); return;
    case DecodeError::UnknownType: counters_.add(SyncCounter::RejectedUnknownType); return;
  }
  if (message.header.senderId == senderId_) return;  // our own, looped back
  const uint64_t wallMs = realtimeMs();
  const uint64_t skewMs = uint64_t{options_.maxClockSkewSeconds} * 1000;
  const uint64_t stamped = message.header.timestampMs;
  if ((stamped > wallMs ? stamped - wallMs : wallMs - stamped) > skewMs) {
    counters_.add(SyncCounter::RejectedStale);
    return;
  }
  const ReplayWindow::Verdict verdict = replay_.accept(message.header.senderId, message.header.sequence, nowMs);
  if (verdict == ReplayWindow::Verdict::Replayed) {
    counters_.add(SyncCounter::RejectedReplayed);
    return;
  }
  if (verdict == ReplayWindow::Verdict::FirstFromSender) {
    counters_.add(SyncCounter::PeersHeard);
    // A peer this instance had not heard: it may hold flows this one missed (it ran while this one was
    // away, or the network between them was down). Ask it; its request, if any, is served below.
    if (message.header.type != MessageType::SnapshotRequest && message.header.type != MessageType::Snapshot &&
        message.header.type != MessageType::SnapshotEnd) {
      if (sendMessage(MessageType::SnapshotRequest, nullptr, 0, {datagram.from})) counters_.add(SyncCounter::SnapshotRequestsSent);
    }
  }
  switch (message.header.type) {
    case MessageType::SnapshotRequest: {
      const bool queued = std::any_of(snapshots_.begin(), snapshots_.end(), [&](const SnapshotServing& s) { return s.to == datagram.from; });
      if (!queued && snapshots_.size() < kMaxPendingSnapshots) snapshots_.push_back({datagram.from, 0});
      return;
    }
    case MessageType::SnapshotEnd:
      snapshotReceived_ = true;
      counters_.add(SyncCounter::SnapshotsCompleted);
      return;
    case MessageType::Snapshot:
      counters_.add(SyncCounter::SnapshotRecordsReceived, message.records.size());
      snapshotReceived_ = true;  // a peer answers: no need to ask again
      break;
    case MessageType::Flows:
      break;
  }
  for (const FlowRecord& record : message.records) apply(record, nowMs);
}

void FlowSync::apply(const FlowRecord& record, uint64_t nowMs) {
  if (!isValidRecord(record)) {
    counters_.add(SyncCounter::RejectedInvalidRecord);
    return;
  }
  const auto services = context_.services.load(std::memory_order_acquire);
  const engine::Service* service = services->find(record.vip, record.vport, record.protocol);
  const flow::Persistence* persistence = service != nullptr && service->persistence.enabled() ? &service->persistence : nullptr;
  // A template is only of use here if this instance's service keys its templates the same way.
  const bool isTemplate = record.kind == RecordKind::Template;
  if (service == nullptr || (isTemplate && (persistence == nullptr || persistence->netmask != record.netmask))) {
    counters_.add(SyncCounter::RejectedUnknownService);
    return;
  }
  const auto real = std::find_if(service->reals.begin(), service->reals.end(), [&](const flow::RealEndpoint& r) {
    return r.ip == record.realIp && r.port == record.realPort;
  });
  if (real == service->reals.end()) {
    counters_.add(SyncCounter::RejectedUnknownReal);
    return;
  }
  const bool assured = (record.flags & record_flags::kAssured) != 0;
  if (isTemplate) {
    const flow::ForwardKey key =
        flow::templateKeyOf(record.protocol, record.clientIp, record.netmask, record.vip, record.vport);
    count(context_.flows.applySyncedTemplate(key, *real, persistence->timeoutS, assured, nowMs));
    return;
  }
  // A flow the peer made through a template is controlled by this instance's template for its client:
  // the one that came ahead of it, or one bound now to the flow's real (a snapshot sends entries in map
  // order, a template may come after its flows).
  uint32_t templateRef = 0;
  if ((record.flags & record_flags::kPersistent) && persistence != nullptr) {
    const flow::ForwardKey key =
        flow::templateKeyOf(record.protocol, record.clientIp, persistence->netmask, record.vip, record.vport);
    templateRef = context_.flows.bindTemplate(key, *real, persistence->timeoutS, nowMs, std::nullopt);
    if (templateRef != 0 && context_.flows.entryAt(templateRef).load<uint64_t>(flow::entry::kSyncedMs) == 0) {
      context_.flows.entryAt(templateRef).store<uint64_t>(flow::entry::kSyncedMs, nowMs);  // not to be sent back
    }
  }
  const flow::SyncedFlow synced{
      {record.protocol, record.clientIp, record.clientPort, record.vip, record.vport},
      *real,
      flow::FlowState(record.state),
      modeFlagsOf(record),
      {record.localIp, record.localPort},
      assured,
      service->timeouts.profile,
      templateRef,
  };
  count(context_.flows.applySynced(synced, nowMs));
}

void FlowSync::count(flow::SyncedOutcome outcome) {
  switch (outcome) {
    case flow::SyncedOutcome::Inserted: counters_.add(SyncCounter::AppliedInserted); break;
    case flow::SyncedOutcome::Updated: counters_.add(SyncCounter::AppliedUpdated); break;
    case flow::SyncedOutcome::Full: counters_.add(SyncCounter::DroppedMapFull); break;
    case flow::SyncedOutcome::Conflict: counters_.add(SyncCounter::RejectedConflict); break;
  }
}

}  // namespace natlb::sync
