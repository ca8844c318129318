// Engine counters: every frame the engine sees ends in exactly one "outcome" counter, and every drop
// has a reason. Each thread owns its own Counters (one writer: a plain load+store, no locked
// instruction and no cache line shared between workers); the control plane sums snapshots.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace natlb::engine {

enum class Counter : uint8_t {
  RxFrames,
  RxBytes,
  RxSteeredFrames,  // of rxFrames, those the XDP program steered to an AF_XDP socket
  TxFrames,
  TxBytes,
  TxCoalescedSegments,  // MTU segments sent inside GSO super-frames (each super-frame counts once in txFrames)
  ToReal,          // client frames rewritten and sent to a real server
  ToClient,        // replies rewritten and sent to the client
  FragmentsForwarded,  // later fragments of a NAT datagram, rewritten like its first fragment
  NewFlows,
  ArpRepliesSent,
  ArpRequestsSent,
  ArpRepliesLearned,  // replies to natlb's own requests: the only ARP it learns from
  GratuitousArpSent,
  IcmpEchoReplies,  // pings to a VIP answered
  IcmpErrorsToReal, // ICMP errors about a flow's packets, translated for its real server
  IcmpErrorsToClient, // ICMP errors from the backend side about a flow, translated for its client
  TcpUntracked,    // of toReal/toClient: forwarded without moving the flow's TCP tracking or state
                   // (outside the window, or an inexact RST: the endpoint judges it)
  IcmpFragmentationNeededSent,  // router duties: answers to DF packets too long for the egress link
  IcmpTimeExceededSent,         // and to packets whose TTL ran out
  IcmpErrorsNotSent,            // over the rate limit (1000/s, bursts of 50), or nothing to quote
  HeldForNeighbour,             // frames that waited for their next hop's ARP reply (sent or, later, dropped)
  Ignored,         // frames that are not the balancer's business (the kernel handles them)
  ArpIgnored,      // ARP that natlb neither answers nor learns from (unsolicited replies, others' requests)
  DropTruncated,
  DropMalformed,
  DropFragment,
  DropTtlExpired,
  DropTooBig,      // longer than the egress link's MTU (answered with "fragmentation needed" when DF is set)
  DropNoService,   // to a VIP on a port/protocol no service has
  DropNoReal,      // the service has no usable real server
  DropRealsFull,   // every usable real is at its connection limit (maxConns) and the service has no fallback real
  DropNoFlow,      // TCP segment without SYN and without a flow; a reply the kernel left to natlb whose flow is gone
  DropOutOfWindow, // a RST or FIN whose sequence number does not fit its connection (blind injection)
  DropFlowTableFull,
  DropNoRoute,
  DropNoNeighbour,
  DropTxError,
  DropVlan,
  RingDrops,       // frames the kernel could not put into a full ring
  // The kernel fast path: segments (GSO super-frames count once) and IP bytes it forwarded, which no
  // ring saw; flows handed to it, and flows it had no room for (user space forwards those).
  KernelForwardedPackets,
  KernelForwardedBytes,
  FlowsOffloaded,
  OffloadRefused,
  // Control frames that release or renew reply claims in the kernel's list (flow/reply_claims.h), and
  // those the kernel refused (the list then keeps a stale claim until it times out).
  ReplyClaimSignals,
  ReplyClaimSignalErrors,
  // Flows ended because their real went down or was removed (config deadRealFlows), and the resets
  // sent to the ends of such TCP connections.
  DeadRealFlowsEnded,
  TcpResetsSent,
  // Socket errors the receive rings reported (ENETDOWN: their interface went down or was deleted); each
  // is read and cleared, so the worker waits for frames again instead of waking at once.
  RingErrors,
  // Direct routing (config forwarding "dr"): client frames sent to their real with only the MACs
  // changed, and those dropped because the real is not directly reachable (its route has a gateway).
  ToRealDirect,
  DropNotOnLink,
  // Full NAT (config forwarding "fullnat"): new flows refused because every local address had every
  // port of its range in use towards the chosen real (flow/local_ports.h).
  DropFullnatPortsExhausted,
  // Mid-stream pick-up (service midStreamPickUp, behind ECMP): TCP segments without SYN of a flow this
  // instance did not know, given a flow to the real the consistent hash picks instead of dropNoFlow.
  MidStreamPickUps,
  // An active/backup pair (engine/gateway_role.h): ARP requests for a VIP left unanswered because this
  // gateway is not the master (an outcome, like arpIgnored); and client frames to a service that reached
  // it while not the master (a client or switch with a stale ARP entry): not an outcome, they go on to
  // be forwarded (toReal) or dropped with their reason like any other.
  ArpSilentNotMaster,
  VipFramesNotMaster,
  // Resets deadRealFlows "reset" could not send: natlb never saw the sequence number their receiver
  // expects (an end that has sent nothing yet; a direct-routing client that acknowledged nothing yet).
  TcpResetsWithoutSequence,
  // New connections the kernel fast path scheduled itself (engine/kernel_scheduled_flows.h): flows
  // user space took into the map from its events (newFlows counts them too); flows it refused (the
  // service or real went meanwhile, the map was full): their retransmitted SYN comes to user space;
  // and SYNs the program left to user space because its event ring was full.
  KernelScheduledFlows,
  KernelScheduledRefused,
  KernelEventRingFull,
  Count,
};

constexpr std::array<std::string_view, size_t(Counter::Count)> kCounterNames = {
    "rxFrames",        "rxBytes",         "rxSteeredFrames", "txFrames",          "txBytes",          "txCoalescedSegments",          "toReal",
    "toClient",        "fragmentsForwarded",   "newFlows",          "arpRepliesSent",   "arpRequestsSent", "arpRepliesLearned",
    "gratuitousArpSent", "icmpEchoReplies", "icmpErrorsToReal", "icmpErrorsToClient", "tcpUntracked", "icmpFragmentationNeededSent", "icmpTimeExceededSent", "icmpErrorsNotSent", "heldForNeighbour", "ignored", "arpIgnored",       "dropTruncated",     "dropMalformed",    "dropFragment",
    "dropTtlExpired",  "dropTooBig",  "dropNoService",   "dropNoReal",        "dropRealsFull",        "dropNoFlow",       "dropOutOfWindow", "dropFlowTableFull",
    "dropNoRoute",     "dropNoNeighbour", "dropTxError",       "dropVlan",         "ringDrops",
    "kernelForwardedPackets", "kernelForwardedBytes", "flowsOffloaded", "offloadRefused",
    "replyClaimSignals", "replyClaimSignalErrors", "deadRealFlowsEnded", "tcpResetsSent", "ringErrors",
    "toRealDirect", "dropNotOnLink", "dropFullnatPortsExhausted", "midStreamPickUps",
    "arpSilentNotMaster", "vipFramesNotMaster", "tcpResetsWithoutSequence",
    "kernelScheduledFlows", "kernelScheduledRefused", "kernelEventRingFull",
};

class Counters {
 public:
  void add(Counter counter, uint64_t value = 1) {
    auto& slot = values_[size_t(counter)];
    slot.store(slot.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
  }
  uint64_t get(Counter counter) const { return values_[size_t(counter)].load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, size_t(Counter::Count)> values_{};
};

}  // namespace natlb::engine
