// The kernel fast path's flow map, as both sides see it: the TC program (forward_established.bpf.c)
// reads it per packet, the XDP steering program consults it, and user space
// (native/io/kernel_forwarding.cc) writes it when a TCP flow is established and removes it when the
// flow ends. Plain C with fixed-width kernel types, so clang (BPF target) and the C++ addon share it.
#pragma once
#include <linux/types.h>

// One direction of a flow, keyed by the packet's own addresses (network order) as it arrives:
// client -> VIP:vport from the client side, RIP:rport -> client (full NAT: -> local:lport) from the
// backend side (a direct-routing flow's replies never reach natlb, so it has the first key alone).
struct kernel_flow_key {
  __u32 source_ip;
  __u32 destination_ip;
  __u16 source_port;
  __u16 destination_port;
  __u32 protocol;  // IPPROTO_TCP; a u32 so the key has no padding bytes (hash maps compare all bytes)
};

// What a matching packet's IP and TCP headers get before it leaves.
enum kernel_flow_rewrite {
  kernel_flow_rewrite_destination = 0,  // NAT towards the real: destination endpoint, TTL
  kernel_flow_rewrite_source = 1,       // NAT towards the client: source endpoint, TTL
  kernel_flow_rewrite_none = 2,         // direct routing (LVS-DR): nothing, the frame is readdressed only
  kernel_flow_rewrite_both = 3,         // full NAT: source and destination endpoints, TTL
};

// What to do with a matching packet: rewrite it (`rewrite`), then send it to `next_hop` through
// `egress_ifindex` (the kernel's neighbour table supplies the MAC addresses).
struct kernel_flow_action {
  // The endpoints that replace those `rewrite` names (network order; unused ones are zero).
  __u32 new_source_ip;
  __u32 new_destination_ip;
  __u16 new_source_port;
  __u16 new_destination_port;
  __u8 rewrite;            // enum kernel_flow_rewrite
  __u8 reserved[3];
  __u32 egress_ifindex;
  __u32 next_hop;          // network order
  // Written by the TC program; user space reads them for expiry and per-flow counters.
  __u64 packets;
  __u64 bytes;             // IP bytes, as the user-space path counts them
  __u64 last_seen_ns;      // bpf_ktime_get_ns(): CLOCK_MONOTONIC
  // TCP sequence tracking of a NAT direction (flow/tcp_window.h), carried on while the kernel forwards:
  // the highest seq + payload forwarded (host order; user space's value at the hand-over), and the
  // largest window field (unscaled) seen. Written without atomics: a lost raise leaves it a segment
  // behind, well inside the window the check allows.
  // A direct-routing entry (the client's direction alone) tracks no window: it keeps the client's
  // latest acknowledgement instead (host order, raised likewise), the sequence number a reset to the
  // client must carry (flow_layout.h, kRealSequenceEnd).
  __u32 sequence_end;
  union {
    __u32 window;           // NAT, full NAT
    __u32 acknowledgement;  // direct routing
  };
};

// Totals over all flows (per CPU), for the engine's counters.
struct kernel_forwarding_totals {
  __u64 packets;
  __u64 bytes;
};

// TCP flags that always go to user space: they change a flow's state (FIN 0x01, SYN 0x02, RST 0x04).
enum { kernel_flow_state_changing_tcp_flags = 0x07 };
