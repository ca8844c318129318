// The kernel fast path's maps, as both sides see them: the TC program (forward_established.bpf.c)
// reads them per packet, the XDP steering program consults the flow map, and user space
// (native/io/kernel_forwarding.cc) writes them: a TCP flow's entries when it is established, the
// services whose new connections the kernel may schedule itself, and the routes. The TC program
// writes the entries of the flows it schedules, and tells user space about them (kernel_flow_event).
// Plain C with fixed-width kernel types, so clang (BPF target) and the C++ addon share it.
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
  // the highest seq + payload forwarded (host order; user space's value at the hand-over), raised by at
  // most 64 MiB per segment and never by a SYN but the one that starts a side, and the largest window
  // field (unscaled) seen. Written without atomics: a lost raise leaves it a segment behind, well
  // inside the window the check allows.
  // A direct-routing entry (the client's direction alone) tracks no window: it keeps the client's
  // latest acknowledgement instead (host order, raised likewise), the sequence number a reset to the
  // client must carry (flow_layout.h, kRealSequenceEnd).
  __u32 sequence_end;
  union {
    __u32 window;           // NAT, full NAT
    __u32 acknowledgement;  // direct routing
  };
  __u32 kernel_flags;       // enum kernel_flow_flags, set with atomic ORs by the TC program
  // A scheduled flow's reply direction: the sequence end of the real's SYN-ACK (host order), which the
  // client's ACK that ends the handshake must acknowledge, or what the real sent after it.
  __u32 syn_sequence_end;
};

// A flow the TC program scheduled itself (its SYN never reached user space) carries its whole life in
// the kernel: its SYN, SYN-ACK and FINs are forwarded there too, and user space learns its birth, the
// end of its handshake and its FINs from events (kernel_flow_event). RSTs still go to user space,
// which judges them against the sequence numbers the events and the read-backs give it.
enum kernel_flow_flags {
  kernel_flow_scheduled_here = 1,  // created by the TC program (both directions)
  kernel_flow_syn_ack_seen = 2,    // the reply direction: the real's SYN-ACK went through
  kernel_flow_handshake_done = 4,  // the client direction: its ACK of that SYN-ACK went through
  kernel_flow_fin_seen = 8,        // this direction sent its FIN
};

// The services whose new connections the TC program schedules (user space publishes the eligible ones:
// NAT, TCP, a round-robin or random pick over at most kernel_service_max_reals reals and
// kernel_service_max_slots slots, nothing that needs user space at the pick: no persistence, limits,
// fallback real, least-connection counts or flow sync of picks).
enum {
  kernel_service_max_reals = 64,
  kernel_service_max_slots = 256,  // a power of two: the program masks slot indexes with it
};
enum kernel_service_pick { kernel_service_pick_cursor = 0, kernel_service_pick_random = 1 };

struct kernel_service_key {
  __u32 vip;        // network order
  __u16 port;       // network order
  __u16 protocol;   // IPPROTO_TCP
};

struct kernel_real {
  __u32 ip;         // network order
  __u16 port;       // network order
  __u16 id;         // the control plane's real id
};

struct kernel_service {
  __u32 cursor;              // round robin, advanced by the TC program (atomically)
  __u16 slot_count;          // 1..kernel_service_max_slots
  __u8 pick;                 // enum kernel_service_pick
  __u8 reserved;
  struct kernel_real reals[kernel_service_max_reals];
  __u8 slots[kernel_service_max_slots];  // indexes into reals
};

// natlb's routes (engine/route_table.h, the control plane's copy of the main table), for the next hops
// of a flow the program schedules: an LPM trie keyed by prefix.
struct kernel_route_key {
  __u32 prefix_length;
  __u32 prefix;     // network order
};
struct kernel_route {
  __u32 ifindex;
  __u32 gateway;    // network order; 0: on-link, the destination is the next hop
  __u32 managed;    // 1 if natlb manages the interface (the program forwards only through those)
};

// Whether the program may schedule at all (user space closes it under a SYN flood, so the flood
// defences of the flow map see every half-open connection, and on a gateway that is not the master).
struct kernel_scheduling_control {
  __u32 enabled;
};

// What the program tells user space (a BPF ring buffer, read by the workers without wake-ups).
enum kernel_flow_event_kind {
  kernel_flow_event_scheduled = 0,  // a SYN was scheduled: the flow's entries exist
  kernel_flow_event_established = 1,  // the client acknowledged the real's SYN-ACK
  kernel_flow_event_client_fin = 2,
  kernel_flow_event_real_fin = 3,
};
struct kernel_flow_event {
  __u32 kind;               // enum kernel_flow_event_kind
  // The flow, as the client sent its SYN (network order).
  __u32 client_ip;
  __u32 vip;
  __u16 client_port;
  __u16 vport;
  __u32 real_ip;            // network order
  __u16 real_port;          // network order
  __u16 real_id;
  // TCP tracking (host order): each side's sequence end and largest window field (unscaled); the
  // real's only from the established event on.
  __u32 client_sequence_end;
  __u32 real_sequence_end;
  __u32 client_window;
  __u32 real_window;
};

// Totals over all flows (per CPU), for the engine's counters.
struct kernel_forwarding_totals {
  __u64 packets;
  __u64 bytes;
  __u64 flows_scheduled;     // SYNs the program scheduled
  __u64 events_lost;         // SYNs left to user space because the event ring was full
};

// TCP flags that always go to user space: they change a flow's state (FIN 0x01, SYN 0x02, RST 0x04).
enum { kernel_flow_state_changing_tcp_flags = 0x07 };
