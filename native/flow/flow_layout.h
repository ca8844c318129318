// The layout of the flow map in memory shared with TypeScript (a SharedArrayBuffer). This file is the
// one definition: the addon exports these numbers (flowLayout()) and src/flows reads them from there.
//
//   [header 128 B][real counters 12 B x 65536][forward buckets u32 x B][reverse buckets u32 x B]
//   [free ring u32 x C][entries 192 B x C]
//
// B (bucket count) is the power of two >= C (capacity). Bucket and link values are entry index + 1,
// 0 meaning "none". All multi-byte fields are host-endian (little endian on x86/arm64): JS typed arrays
// read them natively; addresses are IPv4 as u32 numbers (198.18.0.1 = 0xC6120001).
#pragma once
#include <cstddef>
#include <cstdint>

namespace natlb::flow {

constexpr uint32_t kMagic = 0x544c464e;  // "NFLT"
constexpr uint32_t kLayoutVersion = 7;
constexpr size_t kHeaderBytes = 128;
constexpr size_t kEntryBytes = 192;

// Header fields (byte offsets).
namespace header {
constexpr size_t kMagic = 0;           // u32
constexpr size_t kVersion = 4;         // u32
constexpr size_t kCapacity = 8;        // u32
constexpr size_t kBucketCount = 12;    // u32
constexpr size_t kBumpAllocated = 16;  // u32 entries ever handed out from the never-used tail
constexpr size_t kFreeHead = 20;       // u32 free ring read position (0..capacity-1)
constexpr size_t kFreeTail = 24;       // u32 free ring write position (0..capacity-1)
constexpr size_t kLiveCount = 28;      // u32 live entries
constexpr size_t kClockMs = 32;        // u64 engine's CLOCK_MONOTONIC ms at the last sweep
constexpr size_t kInserted = 40;       // u64 flows ever created
constexpr size_t kExpired = 48;        // u64 flows removed by timeout
constexpr size_t kFullDrops = 56;      // u64 new flows refused because the map was full
constexpr size_t kHashSeed = 64;       // u32 per-table seed of the index hash (no hash flooding)
// Flows that have not proven themselves yet (see flags::kUnassured), by class, and what the flood
// defences removed of them (flow_table.h: FlowTable::insert and sweep).
constexpr size_t kHalfOpenFlows = 68;        // u32 TCP flows still in their handshake
constexpr size_t kUnassuredUdpFlows = 72;    // u32 UDP flows without a reply, or a single exchange
constexpr size_t kEvictedHalfOpenQuota = 80; // u64 evicted because half-open flows held their share
constexpr size_t kEvictedUdpQuota = 88;      // u64 evicted because unassured UDP flows held their share
constexpr size_t kEvictedHalfOpenRoom = 96;  // u64 evicted to keep room for new flows in a full map
constexpr size_t kEvictedUdpRoom = 104;      // u64
constexpr size_t kExpiredEarly = 112;        // u64 unassured flows expired by the short timeout under pressure
// The last persistence template's serial (persistence_templates.h): in the map, so a table attached
// again to the same memory goes on numbering where the last one stopped.
constexpr size_t kTemplateSerial = 120;      // u32
}  // namespace header

// Per-real connection counts, indexed by an entry's real id (u16, so every id has a slot), kept exact
// by the table on every insert, state change and removal (flow_table.h), so status, metrics and
// draining read them instead of walking the entries. Like ipvsadm's ActiveConn/InActConn: active is
// an ESTABLISHED TCP flow, inactive every other live flow (UDP included). Persistence templates are
// no connections: they have a count of their own.
constexpr size_t kRealIdCount = 65536;
constexpr size_t kRealCountersBytes = 12;
namespace real_counters {
constexpr size_t kActive = 0;     // u32
constexpr size_t kInactive = 4;   // u32
constexpr size_t kTemplates = 8;  // u32 persistence templates holding this real
}  // namespace real_counters

// Entry fields (byte offsets within one entry).
namespace entry {
constexpr size_t kStatus = 0;        // u32: EntryStatus
constexpr size_t kProtocol = 4;      // u8: 6 TCP, 17 UDP
constexpr size_t kState = 5;         // u8: FlowState
constexpr size_t kRealId = 6;        // u16: control-plane id of the real server
constexpr size_t kClientIp = 8;      // u32
constexpr size_t kVip = 12;          // u32
constexpr size_t kRealIp = 16;       // u32
constexpr size_t kClientPort = 20;   // u16
constexpr size_t kVport = 22;        // u16
constexpr size_t kRealPort = 24;     // u16
constexpr size_t kFlags = 26;        // u16: FlowFlags
constexpr size_t kFreedEpoch = 28;   // u32: the table's reader epoch when freed (reused once no reader can hold it)
constexpr size_t kLastSeenMs = 32;   // u64: CLOCK_MONOTONIC ms
constexpr size_t kNextForward = 40;  // u32: chain link in the forward index
constexpr size_t kNextReverse = 44;  // u32: chain link in the reverse index
constexpr size_t kPacketsIn = 48;    // u64 client -> real
constexpr size_t kBytesIn = 56;      // u64
constexpr size_t kPacketsOut = 64;   // u64 real -> client
constexpr size_t kBytesOut = 72;     // u64
constexpr size_t kCreatedMs = 80;    // u64
// What the kernel fast path forwarded of an offloaded flow, as last read back (only ever raised, with a
// compare-and-swap). A flow's totals are the user-space counters above plus these.
constexpr size_t kKernelPacketsIn = 88;    // u64
constexpr size_t kKernelBytesIn = 96;      // u64
constexpr size_t kKernelPacketsOut = 104;  // u64
constexpr size_t kKernelBytesOut = 112;    // u64
constexpr size_t kKernelReadMs = 120;      // u64: when the kernel's counts were last read back
// TCP sequence tracking, one side each (flow/tcp_window.h): the sequence number right after the last
// byte (SYN and FIN count one) the side has sent, and the largest window it advertised, in bytes.
// Each side's fields have one writer: the worker that receives that side's segments.
// A direct-routing flow (flags::kDirectRouting) tracks the client's sequence end alone, no windows, and
// keeps in kRealSequenceEnd the client's latest acknowledgement (flags::kRealTracked once it sent one):
// the real's sequence end as far as the client has received it, which is what a reset to the client
// must carry (deadRealFlows "reset"). The real's segments never cross natlb, so nothing else writes it.
constexpr size_t kClientSequenceEnd = 128;  // u32
constexpr size_t kRealSequenceEnd = 132;    // u32 (direct routing: the client's latest acknowledgement)
constexpr size_t kClientWindow = 136;       // u32 bytes
constexpr size_t kRealWindow = 140;         // u32 bytes
constexpr size_t kClientWindowScale = 144;  // u8: the shift its SYN offered, kNoWindowScale if none
constexpr size_t kRealWindowScale = 145;    // u8
constexpr size_t kTimeoutProfile = 146;     // u8: whose idle timeouts apply (timeout_profiles.h), 0 the global ones
// 147 reserved
// The acknowledgement of the bare ACK the real answered the client's SYN with, before any SYN-ACK (a
// TIME_WAIT's: tcp_window.h), while flags::kRealStrayAck is set. Its writer: the real side's worker.
constexpr size_t kRealStrayAck = 148;       // u32
constexpr size_t kClaimedMs = 152;          // u64: when the kernel was last told that natlb owns this flow's replies
// Persistence (flow/persistence_templates.h). A template is an entry flagged kTemplate, keyed by
// (protocol, client address & netmask, port 0, VIP, VPORT), holding the real its client sticks to;
// a flow created through one names it, so the template lives while it controls live flows.
constexpr size_t kControlledFlows = 160;  // u32, a template: live flows created through it (IPVS's n_control)
constexpr size_t kTemplateRef = 164;      // u32, a flow: its template's ref (0: none)
constexpr size_t kTemplateSerial = 168;   // u32, a template: its serial; a flow: its template's (refs are reused)
constexpr size_t kTemplateTimeoutS = 172; // u32, a template: seconds it outlives its last controlled flow
// Full NAT (flags::kFullNat): the local address and port the real sees as the flow's source; its
// replies come back to them (the reply index holds real -> local address:port, not the client).
constexpr size_t kLocalIp = 176;          // u32
constexpr size_t kLocalPort = 180;        // u16
// 182..183 reserved
// Flow sync (native/sync): when this flow was last sent to the peers or last applied from one, so the
// refresh re-sends only flows with traffic since, and a flow a peer just sent is not sent back.
constexpr size_t kSyncedMs = 184;         // u64
}  // namespace entry

constexpr uint8_t kNoWindowScale = 0xff;

enum class EntryStatus : uint32_t { Free = 0, Live = 1 };

// TCP states after kernel IPVS (ip_vs_proto_tcp.c), reduced to the ones that differ in timeout.
enum class FlowState : uint8_t {
  None = 0,
  SynRecv = 1,
  Established = 2,
  FinWait = 3,
  TimeWait = 4,
  Close = 5,
  Udp = 6,
};
constexpr size_t kFlowStateCount = 7;
// What a freed entry's state byte holds: above every state, so a worker that still holds the entry's
// ref cannot raise its state (and move its real's counts) once the table has let it go.
constexpr uint8_t kReleasedState = 0xff;

namespace flags {
constexpr uint16_t kClientFin = 1;
constexpr uint16_t kRealFin = 2;
constexpr uint16_t kOffloaded = 4;       // the kernel fast path forwards its established segments
constexpr uint16_t kUserSpaceOnly = 8;   // never (again) handed over: the kernel had no room, or its service went
constexpr uint16_t kSeenReply = 16;      // the real server has sent on it
// Not proven yet, so the first to go when the map is under pressure (conntrack's "not assured"): a TCP
// flow until its handshake completes, a UDP flow until the real has replied and the client still
// talks 2 s after the start. Counted in the header's class counts while set.
constexpr uint16_t kUnassured = 32;
// TCP tracking holds a side (its SYN or SYN-ACK has been recorded): flow/tcp_tracking.h.
// Direct routing: kClientTracked once the client sent a segment, kRealTracked once it acknowledged one.
constexpr uint16_t kClientTracked = 64;
constexpr uint16_t kRealTracked = 128;
constexpr uint16_t kXdpClaimed = 256;  // the AF_XDP path steers its replies (io/xdp_steering.h)
// A persistence template, not a connection: never forwarded, offloaded or counted as a real's flow.
constexpr uint16_t kTemplate = 512;
// Direct routing (LVS-DR): its frames reach the real unchanged but for the MAC, and the real answers
// the client directly, so it has no reply index entry, claims no replies, tracks TCP from the client's
// segments alone (tcp_state.h) and has one kernel fast path entry when offloaded (client -> VIP).
constexpr uint16_t kDirectRouting = 1024;
// Full NAT (flow/local_ports.h): both addresses rewritten, the source to a local address and port of
// natlb's; the reply index and the kernel's reply claim hold real -> local address:port. Offloaded like a
// NAT flow, with both endpoints rewritten each way (kernel_flow_rewrite_both).
constexpr uint16_t kFullNat = 2048;
// TCP tracking starts mid-stream: the flow's handshake was not seen here (synced from a peer, or picked
// up mid-stream), so a side's first segment, whatever it is, starts that side's tracking (conntrack's
// pick-up); a RST from a side never seen, which could be blind, is passed on without closing the flow.
constexpr uint16_t kMidStreamStart = 4096;
// Picked up mid-stream (service midStreamPickUp): created here by a TCP segment without SYN, for a
// connection another instance behind ECMP began (kMidStreamStart too). Unassured until the client still
// sends 2 s later (and, unless direct routing, the real has answered), and not synced to peers before.
// A flow with kMidStreamStart but not this one was synced from a peer.
constexpr uint16_t kPickedUp = 8192;
// The real answered the client's SYN with a bare ACK before any SYN-ACK: entry::kRealStrayAck holds it.
constexpr uint16_t kRealStrayAck = 16384;
// Scheduled by the kernel fast path itself (native/bpf/forward_established.bpf.c): its SYN never reached
// user space, which learnt of it, its handshake's end and its FINs from the program's events
// (engine/kernel_scheduled_flows.h). Offloaded from birth.
constexpr uint16_t kKernelScheduled = 32768;
// The flags that fix a flow's forwarding mode for its whole life.
constexpr uint16_t kModeFlags = kDirectRouting | kFullNat;
}  // namespace flags

// Whether a flow has an entry in the reverse (reply) index: what comes back on it (not a template, whose
// key no packet carries, nor a direct-routing flow, whose replies never cross natlb).
constexpr bool hasReplyIndex(uint16_t flowFlags) { return (flowFlags & (flags::kTemplate | flags::kDirectRouting)) == 0; }

// Whether the kernel's list holds the flow's reply tuple as natlb's (flow/reply_claims.h): every flow
// with a reply index, but one the kernel fast path scheduled, whose replies its TC program takes before
// the kernel's stack sees them, until it is withdrawn to user space (kUserSpaceOnly), which claims them.
constexpr bool claimsReplies(uint16_t flowFlags) {
  return hasReplyIndex(flowFlags) && (!(flowFlags & flags::kKernelScheduled) || (flowFlags & flags::kUserSpaceOnly));
}

constexpr uint32_t bucketCountFor(uint32_t capacity) {
  uint32_t buckets = 1;
  while (buckets < capacity) buckets <<= 1;
  return buckets;
}

struct Offsets {
  size_t realCounters;
  size_t forwardBuckets;
  size_t reverseBuckets;
  size_t freeRing;
  size_t entries;
  size_t totalBytes;
};

constexpr Offsets offsetsFor(uint32_t capacity) {
  const size_t buckets = bucketCountFor(capacity);
  Offsets offsets{};
  offsets.realCounters = kHeaderBytes;
  offsets.forwardBuckets = offsets.realCounters + kRealIdCount * kRealCountersBytes;
  offsets.reverseBuckets = offsets.forwardBuckets + buckets * 4;
  offsets.freeRing = offsets.reverseBuckets + buckets * 4;
  // entries start 64-byte aligned so u64 fields stay aligned and entries do not straddle lines needlessly
  offsets.entries = (offsets.freeRing + size_t{capacity} * 4 + 63) & ~size_t{63};
  offsets.totalBytes = offsets.entries + size_t{capacity} * kEntryBytes;
  return offsets;
}

constexpr uint32_t kMinCapacity = 16;
constexpr uint32_t kMaxCapacity = 1u << 24;

}  // namespace natlb::flow
