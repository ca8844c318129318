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
  std::optional<flow::RealEndpoint> real;  // none: the service has no usable real
  uint32_t templateRef = 0;                // the template the new flow is controlled by (0: none)
};

// `pick` is the service's scheduler (pickReal), called only when no template decides.
template <typename Pick>
ScheduledReal scheduleReal(const Service& service, flow::FlowTable& flows, const flow::ForwardKey& key, uint64_t nowMs,
                           Pick&& pick) {
  const flow::Persistence& persistence = service.persistence;
  if (!persistence.enabled()) {
    const flow::RealEndpoint* picked = pick();
    return {picked ? std::optional(*picked) : std::nullopt, 0};
  }
  const flow::ForwardKey templateKey =
      flow::templateKeyOf(key.protocol, key.clientIp, persistence.netmask, key.vip, key.vport);
  std::optional<uint32_t> staleSerial;
  if (const uint32_t found = flows.findForward(templateKey)) {
    const flow::FlowEntry t = flows.entryAt(found);
    const flow::RealEndpoint held = t.real();
    if (persistence.keepsClientsOf(held.id)) return {held, found};
    staleSerial = t.load<uint32_t>(flow::entry::kTemplateSerial);
  }
  const flow::RealEndpoint* picked = pick();
  if (picked == nullptr) return {};
  const uint32_t ref = flows.bindTemplate(templateKey, *picked, persistence.timeoutS, nowMs, staleSerial);
  if (ref == 0) return {*picked, 0};  // no room for a template: the flow goes where the scheduler said
  // Another worker may have bound the client first: its choice stands.
  return {flows.entryAt(ref).real(), ref};
}

}  // namespace natlb::engine
