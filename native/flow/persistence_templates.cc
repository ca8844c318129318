// The flow map's side of persistence templates (persistence_templates.h): binding a client to a real
// (here, or as a peer synced it), and the control count that keeps a template while its flows live.
#include "persistence_templates.h"

#include <algorithm>

namespace natlb::flow {

uint32_t FlowTable::bindTemplate(const ForwardKey& key, const RealEndpoint& real, uint32_t timeoutS, uint64_t nowMs,
                                 std::optional<uint32_t> staleSerial) {
  std::lock_guard lock(writers_);
  if (const uint32_t existing = findForward(key)) {
    const FlowEntry t = entryAt(existing);
    if (staleSerial && t.load<uint32_t>(entry::kTemplateSerial) == *staleSerial) {
      // Its real went (down, or out of the service): the client is rescheduled, and its flows still
      // live on the old real stay controlled by the template (IPVS expires the old template and makes
      // a new one; rebinding in place keeps one entry). Templates are in no reverse index, so the real
      // can change under the lock.
      realCounter(t.load<uint16_t>(entry::kRealId), real_counters::kTemplates).fetch_sub(1, std::memory_order_relaxed);
      t.store<uint16_t>(entry::kRealId, real.id);
      t.store<uint32_t>(entry::kRealIp, real.ip);
      t.store<uint16_t>(entry::kRealPort, real.port);
      realCounter(real.id, real_counters::kTemplates).fetch_add(1, std::memory_order_relaxed);
    }
    t.store<uint32_t>(entry::kTemplateTimeoutS, timeoutS);  // the service's current setting
    return existing;
  }
  return createTemplateLocked(key, real, timeoutS, nowMs);
}

uint32_t FlowTable::createTemplateLocked(const ForwardKey& key, const RealEndpoint& real, uint32_t timeoutS, uint64_t nowMs) {
  const uint32_t ref = allocateFlowLocked(unassuredClassOf(key.protocol));
  if (ref == 0) return 0;
  const FlowEntry t = entryAt(ref);
  // No TCP state: the released value, which no raise passes and no count follows (flow_layout.h).
  t.store<uint8_t>(entry::kState, kReleasedState);
  t.store<uint16_t>(entry::kFlags, flags::kUnassured | flags::kTemplate);
  t.store<uint32_t>(entry::kControlledFlows, 0);
  t.store<uint32_t>(entry::kTemplateRef, 0);
  // Distinguishes this template from a later one in the same entry: a flow that outlives its template
  // (evicted, or removed with its real) must not touch the next one's count.
  auto serial = headerField<uint32_t>(header::kTemplateSerial);
  const uint32_t next = serial.load(std::memory_order_relaxed) + 1;
  serial.store(next, std::memory_order_relaxed);
  t.store<uint32_t>(entry::kTemplateSerial, next);
  t.store<uint32_t>(entry::kTemplateTimeoutS, timeoutS);
  linkLocked(ref, key, real, nowMs, kGlobalTimeoutProfile);  // a template expires by its own timeout
  realCounter(real.id, real_counters::kTemplates).fetch_add(1, std::memory_order_relaxed);
  return ref;
}

SyncedOutcome FlowTable::applySyncedTemplate(const ForwardKey& key, const RealEndpoint& real, uint32_t timeoutS,
                                             bool assured, uint64_t nowMs) {
  std::lock_guard lock(writers_);
  uint32_t ref = findForward(key);
  const SyncedOutcome outcome = ref != 0 ? SyncedOutcome::Updated : SyncedOutcome::Inserted;
  if (ref != 0) {
    const RealEndpoint held = entryAt(ref).real();
    // The client is bound here already, and its flows here may be on that real: it stays.
    if (held.ip != real.ip || held.port != real.port) return SyncedOutcome::Conflict;
  } else {
    ref = createTemplateLocked(key, real, timeoutS, nowMs);
    if (ref == 0) return SyncedOutcome::Full;
  }
  const FlowEntry t = entryAt(ref);
  t.store<uint32_t>(entry::kTemplateTimeoutS, timeoutS);  // this instance's setting for the service
  t.raise(entry::kLastSeenMs, nowMs);  // alive on the peer: its timeout runs from now here
  t.store<uint64_t>(entry::kSyncedMs, nowMs);
  if (assured) leaveUnassuredClass(t);
  return outcome;
}

// The template was found in this batch: if it was freed since (evicted to make room just now), its
// entry is not reused before the batch ends, so live() tells.
void FlowTable::controlLocked(const FlowEntry& flow, uint32_t templateRef, uint64_t nowMs) {
  if (templateRef == 0 || templateRef > capacity_) return;
  const FlowEntry t = entryAt(templateRef);
  if (!t.live() || !(t.flags() & flags::kTemplate)) return;
  flow.store<uint32_t>(entry::kTemplateRef, templateRef);
  flow.store<uint32_t>(entry::kTemplateSerial, t.load<uint32_t>(entry::kTemplateSerial));
  t.store<uint32_t>(entry::kControlledFlows, t.load<uint32_t>(entry::kControlledFlows) + 1);
  t.raise(entry::kLastSeenMs, nowMs);  // IPVS restarts a template's timer with each new connection
}

std::optional<FlowEntry> FlowTable::controllingTemplate(const FlowEntry& flow) const {
  const uint32_t ref = flow.load<uint32_t>(entry::kTemplateRef);
  if (ref == 0 || ref > capacity_) return std::nullopt;
  const FlowEntry t = entryAt(ref);
  if (!t.live() || !(t.flags() & flags::kTemplate) ||
      t.load<uint32_t>(entry::kTemplateSerial) != flow.load<uint32_t>(entry::kTemplateSerial)) {
    return std::nullopt;
  }
  return t;
}

// A controlled flow is going: its template's timeout runs from now once it controls no other.
void FlowTable::releaseControlLocked(const FlowEntry& flow) {
  const auto t = controllingTemplate(flow);
  flow.store<uint32_t>(entry::kTemplateRef, 0);
  if (!t) return;
  const uint32_t controlled = t->load<uint32_t>(entry::kControlledFlows);
  if (controlled > 0) t->store<uint32_t>(entry::kControlledFlows, controlled - 1);
  t->raise(entry::kLastSeenMs, headerField<uint64_t>(header::kClockMs).load(std::memory_order_relaxed));
}

}  // namespace natlb::flow
