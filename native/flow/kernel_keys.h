// A flow's two directions as the kernel's BPF maps key them (bpf/kernel_flow.h): the packet's own
// addresses and ports in network order, as it arrives. The flow map holds host order.
#pragma once
#include <arpa/inet.h>

#include "../bpf/kernel_flow.h"
#include "flow_table.h"

namespace natlb::flow {

// client -> VIP:vport, as it arrives from the client side.
inline kernel_flow_key requestKeyOf(const FlowEntry& e) {
  return {htonl(e.load<uint32_t>(entry::kClientIp)), htonl(e.load<uint32_t>(entry::kVip)),
          htons(e.load<uint16_t>(entry::kClientPort)), htons(e.load<uint16_t>(entry::kVport)),
          uint32_t(e.load<uint8_t>(entry::kProtocol))};
}

// RIP:rport -> client (a full-NAT flow: -> its local address and port), as it arrives from the backend
// side: the tuple natlb claims from the kernel (reply_claims.h).
inline kernel_flow_key replyKeyOf(const FlowEntry& e) {
  const ReplyDestination destination = replyDestinationOf(e);
  return {htonl(e.load<uint32_t>(entry::kRealIp)), htonl(destination.ip), htons(e.load<uint16_t>(entry::kRealPort)),
          htons(destination.port), uint32_t(e.load<uint8_t>(entry::kProtocol))};
}

}  // namespace natlb::flow
