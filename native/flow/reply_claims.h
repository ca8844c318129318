// Which frames natlb owns, and how the kernel learns it (this is the one definition; the kernel set-up,
// src/kernel/ownershipRuleset.ts, is generated from these facts, and the receive paths take what the
// kernel hands over):
//   - every frame to a VIP that arrives on a client interface;
//   - every reply of a natlb flow (real ip:port -> client ip:port, TCP or UDP) that arrives on a
//     backend interface, and the later fragments of such a reply.
// The kernel keeps the reply tuples in a list of its own (an nftables set) and marks what natlb owns
// as "for another host" at ingress: the kernel's own IP stack then leaves it alone (no forwarding, no
// netfilter, no conntrack) and natlb's receive rings, which sit after it, take it. Everything else goes
// through the kernel's normal path: the reals' own traffic, direct connections to the reals.
// natlb keeps the list with its own frames, so the packet path needs CAP_NET_RAW only: every frame it
// sends carries kClaimMark (SO_MARK) and the egress rule of the backend interfaces adds its reply tuple;
// control frames with kRenewMark and kReleaseMark renew or remove a tuple and go no further.
// The flow map releases a flow's claim when the flow goes and renews long-lived ones (both under its
// writers' lock, so a release never overtakes the claim of a new flow with the same reply tuple).
#pragma once
#include <cstdint>

namespace natlb::flow {

// The kernel forgets a claim this long after it was last made or renewed, so the claims of a natlb
// that died without undoing its kernel set-up go by themselves; live flows renew theirs well before.
constexpr uint32_t kReplyClaimLifetimeSeconds = 3600;
constexpr uint32_t kClaimMark = 0x6e6c6201;    // "nl" b 1: frames natlb forwards
constexpr uint32_t kRenewMark = 0x6e6c6202;    // control frames: the flow lives on
constexpr uint32_t kReleaseMark = 0x6e6c6203;  // control frames: the flow is gone
constexpr uint64_t kReplyClaimRenewMs = uint64_t{kReplyClaimLifetimeSeconds} * 1000 / 3;

class FlowEntry;

class ReplyClaims {
 public:
  virtual ~ReplyClaims() = default;
  // The flow is gone: its replies are the kernel's again.
  virtual void release(const FlowEntry& entry) = 0;
  // The flow lives on: keep its claim (the kernel forgets claims not renewed within the hour).
  virtual void renew(const FlowEntry& entry) = 0;
};

}  // namespace natlb::flow
