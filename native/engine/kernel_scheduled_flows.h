// Flows the kernel fast path scheduled itself (native/bpf/forward_established.bpf.c): the TC program
// picks a real for a SYN to a published service, creates the flow's kernel entries and reports it
// through its event ring. A worker reads the ring before each batch and applies the events here, so the
// flow map stays the one truth: the flow gets its entry (offloaded from birth, flags::kKernelScheduled),
// and later its established state and FINs, as user space would have tracked them.
//
// Which services the program may schedule for, and with which reals and routes, is decided here too
// (kernelServiceOf, kernelRoutesOf): exactly the ones whose pick needs nothing but the selection table.
#pragma once
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "../bpf/kernel_flow.h"
#include "../flow/flow_table.h"
#include "route_table.h"
#include "service_table.h"

namespace natlb::engine {

struct EngineContext;

class KernelOffload;

// The program's copy of a service, or nothing when its new connections must be scheduled in user space:
// not NAT over TCP, a pick that reads more than the slots (persistence, limits, a fallback real, the
// least-connection family, hashing, whose tables user space alone keeps consistent across instances),
// or more reals or slots than the program's table holds.
std::optional<kernel_service> kernelServiceOf(const Service& service);
std::vector<std::pair<kernel_service_key, kernel_service>> kernelServicesOf(const ServiceTable& services);
// natlb's routes, each marked with whether natlb manages its interface.
std::vector<std::pair<kernel_route_key, kernel_route>> kernelRoutesOf(const RouteTable& routes, const EngineContext& context);

enum class KernelEventOutcome : uint8_t {
  Adopted,   // a new flow in the map
  Refused,   // its kernel entries were taken out again: its SYN's retransmission goes to user space
  Advanced,  // an existing flow's state moved
  Ignored,   // nothing to do (a flow gone meanwhile, or an event with nothing new)
};
struct KernelEventResult {
  KernelEventOutcome outcome = KernelEventOutcome::Ignored;
  uint32_t ref = 0;
};

KernelEventResult applyKernelFlowEvent(const kernel_flow_event& event, const ServiceTable& services, flow::FlowTable& flows,
                                       KernelOffload& offload, uint64_t nowMs);

}  // namespace natlb::engine
