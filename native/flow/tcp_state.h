// The TCP state of a NAT flow, advanced by the flags seen in each direction (after ip_vs_proto_tcp.c,
// reduced to the states whose timeouts differ). Pure: no clock, no memory beyond the arguments.
#pragma once
#include <cstdint>

#include "../packet/wire.h"
#include "flow_layout.h"

namespace natlb::flow {

enum class Direction : uint8_t { FromClient, FromReal };

struct TcpTransition {
  FlowState state;
  uint16_t flags;
};

constexpr TcpTransition advanceTcpState(FlowState state, uint16_t flowFlags, Direction direction,
                                        uint8_t tcpFlags) {
  using namespace natlb::packet;
  if (tcpFlags & kTcpRst) return {FlowState::Close, flowFlags};
  if (tcpFlags & kTcpFin) {
    flowFlags |= direction == Direction::FromClient ? flags::kClientFin : flags::kRealFin;
    const bool bothClosed = (flowFlags & flags::kClientFin) && (flowFlags & flags::kRealFin);
    if (state == FlowState::Close) return {state, flowFlags};
    return {bothClosed ? FlowState::TimeWait : FlowState::FinWait, flowFlags};
  }
  if (state == FlowState::SynRecv && direction == Direction::FromClient && (tcpFlags & kTcpAck) &&
      !(tcpFlags & kTcpSyn)) {
    return {FlowState::Established, flowFlags};
  }
  return {state, flowFlags};
}

// The TCP state of a direct-routing flow, from the client's segments alone: IPVS's input-only table
// (ip_vs_proto_tcp.c, used for DR and tunnelled connections, which see no replies), reduced to these
// states. A RST in the handshake leaves it there (it may be a stray one); a FIN in the handshake ends in
// TIME_WAIT, after it in FIN_WAIT (the real's FIN is never seen); the client's ACK completes the
// handshake. A SYN changes nothing here (a closing flow's new SYN is a new flow: allowsReuse).
constexpr FlowState advanceInputOnlyTcpState(FlowState state, uint8_t tcpFlags) {
  using namespace natlb::packet;
  if (tcpFlags & kTcpRst) return state == FlowState::SynRecv ? state : FlowState::Close;
  if (tcpFlags & kTcpSyn) return state;
  if (tcpFlags & kTcpFin) {
    if (state == FlowState::SynRecv) return FlowState::TimeWait;
    return state == FlowState::Established ? FlowState::FinWait : state;
  }
  if ((tcpFlags & kTcpAck) && state == FlowState::SynRecv) return FlowState::Established;
  return state;
}

// IPVS counts a connection as active while established, inactive otherwise.
constexpr bool isActive(FlowState state) { return state == FlowState::Established; }

// A SYN that arrives on a closing flow starts a new connection (IPVS conn_reuse_mode).
constexpr bool allowsReuse(FlowState state) {
  return state == FlowState::TimeWait || state == FlowState::Close;
}

}  // namespace natlb::flow
