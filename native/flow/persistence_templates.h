// Persistence (ipvsadm -p TIMEOUT -M NETMASK): a client, or every client of a network, sticks to one
// real of a service across connections and UDP flows. As in IPVS (ip_vs_sched_persist), the choice is
// kept in the flow map as a template: an entry flagged kTemplate, keyed by (protocol, client address &
// netmask, port 0, VIP, VPORT), holding the real. A flow created through a template is controlled by it
// (IPVS's n_control); the template lives while it controls a live flow, offloaded or not, and expires
// its timeout after the last of them ends, or after the last new connection through it (IPVS restarts
// a template's timer with each one; ip_vs_conn_expire re-arms a template that still controls flows).
// Templates are no connections: not in the per-real active/inactive counts, never offloaded, never
// forwarded. Under a flood they are as evictable as the flows that made them: a template is unassured
// until a flow it controls proves itself (flow_table.h), so spoofed SYNs cannot fill the map with them.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "flow_table.h"

namespace natlb::flow {

// A service's persistence settings; timeoutS 0: none. Which reals keep their persistent clients is the
// control plane's call, as IPVS's ip_vs_check_template makes it with expire_quiescent_template=0: a
// real that is up keeps them, drained (weight 0) or not; a real down or out of the service loses them.
struct Persistence {
  uint32_t timeoutS = 0;
  uint32_t netmask = 0xffffffff;
  std::vector<uint16_t> keepingRealIds;  // sorted
  bool enabled() const { return timeoutS != 0; }
  bool keepsClientsOf(uint16_t realId) const {
    return std::binary_search(keepingRealIds.begin(), keepingRealIds.end(), realId);
  }
};

// A netmask is contiguous when its host part, ~mask, is of the form 0..01..1.
constexpr bool isContiguousNetmask(uint32_t mask) {
  const uint32_t host = ~mask;
  return (host & (host + 1)) == 0;
}

// The key of the template that covers a client of a service.
constexpr ForwardKey templateKeyOf(uint8_t protocol, uint32_t clientIp, uint32_t netmask, uint32_t vip, uint16_t vport) {
  return ForwardKey{protocol, clientIp & netmask, 0, vip, vport, true};
}

enum class TemplateExpiry : int { Alive = 0, TimedOut = 1, ExpiredEarly = 2 };

// Whether a template goes now: never while it controls a flow; else after its timeout, or (an
// unassured one while the map is under pressure) after the short pressure timeout.
constexpr TemplateExpiry templateExpiry(uint32_t controlledFlows, uint64_t idleMs, uint64_t timeoutMs,
                                        bool unassuredUnderPressure, uint64_t pressureTimeoutMs) {
  if (controlledFlows > 0) return TemplateExpiry::Alive;
  if (idleMs > timeoutMs) return TemplateExpiry::TimedOut;
  return unassuredUnderPressure && idleMs > pressureTimeoutMs ? TemplateExpiry::ExpiredEarly : TemplateExpiry::Alive;
}

}  // namespace natlb::flow
