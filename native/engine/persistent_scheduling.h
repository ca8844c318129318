// Scheduling a new flow of a service with persistence (flow/persistence_templates.h): the client's
// template, when its real still keeps clients, wins over the scheduler; otherwise the scheduler picks
// and the template is made (or rebound) to hold its choice.
#pragma once
#include <cstdint>
#include <optional>

#include "../flow/persistence_templates.h"
#include "service_table.h"

namespace natlb::engine {

struct ScheduledReal {
  std::optional<flow::RealEndpoint> real;  // none: the service has no usable real (`kind` says why)
  uint32_t templateRef = 0;                // the template the new flow is controlled by (0: none)
  PickOutcome::Kind kind = PickOutcome::Kind::NoReal;
};

// `pick` is the service's scheduler (pickReal, returning a PickOutcome), called only when no template
// decides. The fallback real binds no template: its clients go back to the reals once there is room.
template <typename Pick>
ScheduledReal scheduleReal(const Service& service, flow::FlowTable& flows, const flow::ForwardKey& key, uint64_t nowMs,
                           Pick&& pick) {
  const flow::Persistence& persistence = service.persistence;
  if (!persistence.enabled()) {
    const PickOutcome picked = pick();
    return {picked.real ? std::optional(*picked.real) : std::nullopt, 0, picked.kind};
  }
  const flow::ForwardKey templateKey =
      flow::templateKeyOf(key.protocol, key.clientIp, persistence.netmask, key.vip, key.vport);
  std::optional<uint32_t> staleSerial;
  if (const uint32_t found = flows.findForward(templateKey)) {
    const flow::FlowEntry t = flows.entryAt(found);
    const flow::RealEndpoint held = t.real();
    if (persistence.keepsClientsOf(held.id)) return {held, found, PickOutcome::Kind::Real};
    staleSerial = t.load<uint32_t>(flow::entry::kTemplateSerial);
  }
  const PickOutcome picked = pick();
  if (picked.real == nullptr) return {std::nullopt, 0, picked.kind};
  if (picked.kind != PickOutcome::Kind::Real) return {*picked.real, 0, picked.kind};
  const uint32_t ref = flows.bindTemplate(templateKey, *picked.real, persistence.timeoutS, nowMs, staleSerial);
  if (ref == 0) return {*picked.real, 0, picked.kind};  // no room for a template: the flow goes where the scheduler said
  // Another worker may have bound the client first: its choice stands.
  return {flows.entryAt(ref).real(), ref, PickOutcome::Kind::Real};
}

}  // namespace natlb::engine
