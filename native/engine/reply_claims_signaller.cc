#include "reply_claims_signaller.h"

#include "../flow/flow_table.h"
#include "../flow/kernel_keys.h"
#include "../packet/claim_signal.h"

namespace natlb::engine {

ReplyClaimsSignaller::ReplyClaimsSignaller(const InterfaceConfig& backend)
    : mac_(backend.mac), renew_(backend.ifindex, flow::kRenewMark), release_(backend.ifindex, flow::kReleaseMark) {}

void ReplyClaimsSignaller::signal(io::ControlFrameSocket& socket, const flow::FlowEntry& e) {
  uint8_t frame[packet::kClaimSignalLength];
  const size_t length = packet::buildClaimSignal(
      frame, mac_,
      {e.load<uint8_t>(flow::entry::kProtocol), e.load<uint32_t>(flow::entry::kRealIp), e.load<uint16_t>(flow::entry::kRealPort),
       e.load<uint32_t>(flow::entry::kClientIp), e.load<uint16_t>(flow::entry::kClientPort)});
  if (socket.send(frame, length) == 0) {
    sent_.fetch_add(1, std::memory_order_relaxed);
  } else {
    errors_.fetch_add(1, std::memory_order_relaxed);
  }
}

void ReplyClaimsSignaller::release(const flow::FlowEntry& entry) {
  signal(release_, entry);
  if (entry.flags() & flow::flags::kXdpClaimed) {
    const kernel_flow_key reply = flow::replyKeyOf(entry);
    for (io::XdpSteering* steering : xdpSteerings_) steering->releaseReply(reply);
  }
}

void ReplyClaimsSignaller::renew(const flow::FlowEntry& entry) { signal(renew_, entry); }

}  // namespace natlb::engine
