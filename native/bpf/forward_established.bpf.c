// The kernel fast path (TC ingress, on every interface natlb manages): a TCP segment of an established
// flow, or of a flow this program scheduled itself (below), is rewritten here (NAT: one endpoint, TTL, checksums; full NAT: both endpoints; direct routing: nothing but the Ethernet
// addresses, which the redirect sets) and redirected to the interface towards its next hop (for a
// one-armed direct-routing balancer, the one it came in on), without being copied to user space. Everything else, and every segment that changes a
// flow's state (SYN, FIN, RST), goes on as before to the next tcx program, the classic tc filters, and
// natlb's receive rings, which sit after TC: the workers then handle it. User space decides which flows
// are here (kernel_flow.h).
//
// New connections: a SYN to a service user space published in kernel_services is scheduled here, as
// the worker would (the service's round-robin cursor or a random slot), its two entries created, and
// user space told through kernel_flow_events; the flow then never crosses user space but for its RSTs
// (kernel_flow.h, kernel_flow_flags). Short connections cost the gateway no more than kernel NAT.
//
// Checksums are updated, not recomputed, with the kernel's helpers: they keep a GSO super-frame's
// partial checksum (the pseudo-header seed) and a complete one right, so 64 KB frames stay whole.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "kernel_flows_map.bpf.h"

enum { address_family_inet = 2 };  // AF_INET, which no uapi header of the BPF target defines
// tcx's "not mine, go on" (TCX_NEXT in newer <linux/bpf.h>). TC_ACT_OK would end the ingress hook:
// later tcx programs and every classic tc filter on the interface would be skipped.
enum { tcx_next = -1 };

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct kernel_forwarding_totals);
} kernel_forwarding_totals SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, struct kernel_service_key);
  __type(value, struct kernel_service);
} kernel_services SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 65536);
  __type(key, struct kernel_route_key);
  __type(value, struct kernel_route);
} kernel_routes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct kernel_scheduling_control);
} kernel_scheduling SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20);
} kernel_flow_events SEC(".maps");

// How far one segment may move a side's tracked sequence end (see forward_established): 64 MiB.
static const __u32 max_sequence_advance = 1u << 26;

static const __u32 ip_checksum_offset = ETH_HLEN + __builtin_offsetof(struct iphdr, check);
static const __u32 ip_ttl_offset = ETH_HLEN + __builtin_offsetof(struct iphdr, ttl);

// One endpoint replaced (address and port), the IP and TCP checksums updated (the address is in the
// pseudo-header). 0, or -1 when a helper failed. Packet pointers are invalid after it.
static __always_inline int replaceEndpoint(struct __sk_buff* skb, __u32 addressOffset, __u32 portOffset, __u32 checkOffset,
                                           __u32 oldIp, __u32 newIp, __u16 oldPort, __u16 newPort) {
  if (bpf_l4_csum_replace(skb, checkOffset, oldIp, newIp, BPF_F_PSEUDO_HDR | 4) != 0) return -1;
  if (bpf_l3_csum_replace(skb, ip_checksum_offset, oldIp, newIp, 4) != 0) return -1;
  if (bpf_skb_store_bytes(skb, addressOffset, &newIp, 4, 0) != 0) return -1;
  if (bpf_l4_csum_replace(skb, checkOffset, oldPort, newPort, 2) != 0) return -1;
  if (bpf_skb_store_bytes(skb, portOffset, &newPort, 2, 0) != 0) return -1;
  return 0;
}

// NAT: the TTL one less and the endpoints action->rewrite names replaced (NAT one, full NAT both),
// checksums updated. 0, or -1 when a helper failed (the packet is then dropped). Packet pointers are
// invalid after it.
static __always_inline int rewriteEndpoints(struct __sk_buff* skb, const struct kernel_flow_action* action,
                                            const struct iphdr* ip, const struct tcphdr* tcp, __u32 ipHeaderLength) {
  const int source = action->rewrite == kernel_flow_rewrite_source || action->rewrite == kernel_flow_rewrite_both;
  const int destination = action->rewrite == kernel_flow_rewrite_destination || action->rewrite == kernel_flow_rewrite_both;
  // TTL: the 16-bit word (TTL, protocol) changes by one in its high byte.
  const __u16 oldTtlWord = *(const __u16*)&ip->ttl;
  const __u8 newTtl = ip->ttl - 1;
  const __u16 newTtlWord = bpf_htons(((__u16)newTtl << 8) | IPPROTO_TCP);
  const __u32 l4 = ETH_HLEN + ipHeaderLength;
  const __u32 checkOffset = l4 + __builtin_offsetof(struct tcphdr, check);
  const __u32 oldSourceIp = ip->saddr;
  const __u32 oldDestinationIp = ip->daddr;
  const __u16 oldSourcePort = tcp->source;
  const __u16 oldDestinationPort = tcp->dest;
  // Everything needed is copied above: the helpers below invalidate packet pointers.
  if (bpf_l3_csum_replace(skb, ip_checksum_offset, oldTtlWord, newTtlWord, 2) != 0) return -1;
  if (bpf_skb_store_bytes(skb, ip_ttl_offset, &newTtl, 1, 0) != 0) return -1;
  if (source && replaceEndpoint(skb, ETH_HLEN + __builtin_offsetof(struct iphdr, saddr),
                                l4 + __builtin_offsetof(struct tcphdr, source), checkOffset, oldSourceIp,
                                action->new_source_ip, oldSourcePort, action->new_source_port) != 0) {
    return -1;
  }
  if (destination && replaceEndpoint(skb, ETH_HLEN + __builtin_offsetof(struct iphdr, daddr),
                                     l4 + __builtin_offsetof(struct tcphdr, dest), checkOffset, oldDestinationIp,
                                     action->new_destination_ip, oldDestinationPort, action->new_destination_port) != 0) {
    return -1;
  }
  return 0;
}

static __always_inline struct kernel_forwarding_totals* forwardingTotals(void) {
  const __u32 zero = 0;
  return bpf_map_lookup_elem(&kernel_forwarding_totals, &zero);
}

// A segment of a flow in the map that user space must see: marked "for another host", as the kernel
// set-up marks the frames natlb owns (flow/reply_claims.h), so the kernel's own IP stack leaves it alone
// and natlb's rings, which sit after TC, take it. A flow the program scheduled has no claim in the
// kernel's list (a frame redirected from ingress skips the egress rule that adds claims): this is what
// keeps its replies natlb's while it lives here.
static __always_inline int passToUserSpace(struct __sk_buff* skb) {
  bpf_skb_change_type(skb, 3 /* PACKET_OTHERHOST */);
  return tcx_next;
}

// A NAT flow's reply direction (real -> client), from its request direction's key (client -> VIP).
static __always_inline struct kernel_flow_key replyKeyOf(__u32 realIp, __u16 realPort, const struct kernel_flow_key* request) {
  struct kernel_flow_key reply = {
      .source_ip = realIp,
      .destination_ip = request->source_ip,
      .source_port = realPort,
      .destination_port = request->source_port,
      .protocol = IPPROTO_TCP,
  };
  return reply;
}

// The next hop towards `destination` by natlb's routes, if it is on an interface natlb manages.
static __always_inline int nextHopTowards(__u32 destination, __u32* ifindex, __u32* nextHop) {
  struct kernel_route_key key = {.prefix_length = 32, .prefix = destination};
  const struct kernel_route* route = bpf_map_lookup_elem(&kernel_routes, &key);
  if (!route || !route->managed) return -1;
  *ifindex = route->ifindex;
  *nextHop = route->gateway ? route->gateway : destination;
  return 0;
}

static __always_inline void sendEvent(__u32 kind, const struct kernel_flow_event* flow) {
  struct kernel_flow_event* event = bpf_ringbuf_reserve(&kernel_flow_events, sizeof *event, 0);
  if (!event) {
    struct kernel_forwarding_totals* totals = forwardingTotals();
    if (totals) totals->events_lost += 1;
    return;
  }
  *event = *flow;
  event->kind = kind;
  // No wake-up: the workers read the ring at every batch and at least every few milliseconds.
  bpf_ringbuf_submit(event, BPF_RB_NO_WAKEUP);
}

// The flow an entry of a scheduled flow belongs to, as an event names it, from the segment and entry.
static __always_inline void describeFlow(struct kernel_flow_event* flow, const struct kernel_flow_action* action,
                                         const struct kernel_flow_key* key) {
  if (action->rewrite == kernel_flow_rewrite_destination) {  // client -> VIP
    flow->client_ip = key->source_ip;
    flow->client_port = key->source_port;
    flow->vip = key->destination_ip;
    flow->vport = key->destination_port;
    flow->real_ip = action->new_destination_ip;
    flow->real_port = action->new_destination_port;
  } else {  // real -> client
    flow->client_ip = key->destination_ip;
    flow->client_port = key->destination_port;
    flow->vip = action->new_source_ip;
    flow->vport = action->new_source_port;
    flow->real_ip = key->source_ip;
    flow->real_port = key->source_port;
  }
}

// A SYN to a published service: pick its real, create both entries, tell user space. 0 when the flow
// exists now (the caller forwards the SYN by it), -1 when user space must take the SYN.
static __always_inline int scheduleConnection(const struct kernel_flow_key* key, const struct iphdr* ip,
                                              const struct tcphdr* tcp) {
  const __u32 zero = 0;
  const struct kernel_scheduling_control* control = bpf_map_lookup_elem(&kernel_scheduling, &zero);
  if (!control || !control->enabled) return -1;
  struct kernel_service_key serviceKey = {.vip = key->destination_ip, .port = key->destination_port, .protocol = IPPROTO_TCP};
  struct kernel_service* service = bpf_map_lookup_elem(&kernel_services, &serviceKey);
  if (!service) return -1;
  const __u32 slots = service->slot_count;
  if (slots == 0 || slots > kernel_service_max_slots) return -1;
  const __u32 turn = service->pick == kernel_service_pick_random ? bpf_get_prandom_u32()
                                                                  : __sync_fetch_and_add(&service->cursor, 1);
  const __u32 realIndex = service->slots[(turn % slots) & (kernel_service_max_slots - 1)];
  if (realIndex >= kernel_service_max_reals) return -1;
  const struct kernel_real real = service->reals[realIndex];
  struct kernel_flow_action toReal = {
      .new_destination_ip = real.ip,
      .new_destination_port = real.port,
      .rewrite = kernel_flow_rewrite_destination,
      .sequence_end = bpf_ntohl(tcp->seq) + 1,  // the SYN counts one
      .kernel_flags = kernel_flow_scheduled_here,
  };
  struct kernel_flow_action toClient = {
      .new_source_ip = key->destination_ip,
      .new_source_port = key->destination_port,
      .rewrite = kernel_flow_rewrite_source,
      .kernel_flags = kernel_flow_scheduled_here,
  };
  if (nextHopTowards(real.ip, &toReal.egress_ifindex, &toReal.next_hop) != 0 ||
      nextHopTowards(key->source_ip, &toClient.egress_ifindex, &toClient.next_hop) != 0) {
    return -1;
  }
  toReal.last_seen_ns = toClient.last_seen_ns = bpf_ktime_get_ns();
  struct kernel_flow_key replyKey = replyKeyOf(real.ip, real.port, key);
  // Another flow may own either key (a SYN the program is scheduling on another CPU, or a user-space
  // flow): user space sorts that out.
  if (bpf_map_update_elem(&kernel_flows, key, &toReal, BPF_NOEXIST) != 0) return -1;
  if (bpf_map_update_elem(&kernel_flows, &replyKey, &toClient, BPF_NOEXIST) != 0) {
    bpf_map_delete_elem(&kernel_flows, key);
    return -1;
  }
  struct kernel_flow_event* event = bpf_ringbuf_reserve(&kernel_flow_events, sizeof *event, 0);
  struct kernel_forwarding_totals* totals = forwardingTotals();
  if (!event) {
    // User space would never learn of the flow: it takes the SYN instead.
    bpf_map_delete_elem(&kernel_flows, &replyKey);
    bpf_map_delete_elem(&kernel_flows, key);
    if (totals) totals->events_lost += 1;
    return -1;
  }
  event->kind = kernel_flow_event_scheduled;
  event->client_ip = key->source_ip;
  event->client_port = key->source_port;
  event->vip = key->destination_ip;
  event->vport = key->destination_port;
  event->real_ip = real.ip;
  event->real_port = real.port;
  event->real_id = real.id;
  event->client_sequence_end = bpf_ntohl(tcp->seq) + 1;
  event->real_sequence_end = 0;
  event->client_window = bpf_ntohs(tcp->window);
  event->real_window = 0;
  bpf_ringbuf_submit(event, BPF_RB_NO_WAKEUP);
  if (totals) totals->flows_scheduled += 1;
  return 0;
}

// Whether a segment of a flow scheduled here stays here (RSTs never get this far). A SYN only while
// nothing closed (a retransmitted one; a SYN on a closing flow starts a new connection: user space's);
// a SYN-ACK only from the real. Before its SYN-ACK the real's segments go to user space: a bare ACK
// then is a TIME_WAIT's answer to the SYN, which user space records, so that it lets the client's RST
// that ends the TIME_WAIT through (flow/tcp_window.h).
static __always_inline int staysInKernel(const struct kernel_flow_action* action, __u8 flags, __u32 sequence) {
  if ((flags & 0x03) == 0x03 /* SYN and FIN */) return 0;
  const int fromClient = action->rewrite == kernel_flow_rewrite_destination;
  if (!(flags & 0x02 /* SYN */)) return fromClient || (action->kernel_flags & kernel_flow_syn_ack_seen);
  if (action->kernel_flags & kernel_flow_fin_seen) return 0;
  if (fromClient) return !(flags & 0x10 /* ACK */);
  // The real's SYN-ACK, or a retransmission of it (the same sequence number): any other is user space's
  // to judge (a spoofed one, from the backend LAN).
  return (flags & 0x10) && (!(action->kernel_flags & kernel_flow_syn_ack_seen) || sequence + 1 == action->syn_sequence_end);
}

// A client's SYN on a flow scheduled here whose both sides have sent their FIN: a new connection on the
// same ports (the client reuses them while natlb still keeps the old one's TIME_WAIT), as user space
// treats it (flow/tcp_state.h, allowsReuse). The old entries are deleted; user space, told of the new
// flow, lets the old one go (engine/kernel_scheduled_flows.cc). Other cases (a closing flow only one
// side ended) go to user space, which judges them.
static __always_inline int reusesClosedFlow(const struct kernel_flow_action* action, const struct kernel_flow_key* key,
                                            __u8 flags) {
  if ((flags & 0x17) != 0x02 || action->rewrite != kernel_flow_rewrite_destination ||
      !(action->kernel_flags & kernel_flow_fin_seen)) {
    return 0;
  }
  struct kernel_flow_key replyKey = replyKeyOf(action->new_destination_ip, action->new_destination_port, key);
  const struct kernel_flow_action* reply = bpf_map_lookup_elem(&kernel_flows, &replyKey);
  if (!reply || !(reply->kernel_flags & kernel_flow_scheduled_here) || !(reply->kernel_flags & kernel_flow_fin_seen)) return 0;
  bpf_map_delete_elem(&kernel_flows, &replyKey);
  bpf_map_delete_elem(&kernel_flows, key);
  return 1;
}

// What a scheduled flow's segment tells user space: the end of the handshake (the client's ACK of the
// real's SYN-ACK, exactly), or a side's first FIN. Once each.
static __always_inline void trackScheduledFlow(struct kernel_flow_action* action, const struct kernel_flow_key* key,
                                               __u8 flags, __u32 acknowledgement) {
  const int fromClient = action->rewrite == kernel_flow_rewrite_destination;
  struct kernel_flow_event flow = {};
  if ((flags & 0x02) && !fromClient) {
    if (!(action->kernel_flags & kernel_flow_syn_ack_seen)) action->syn_sequence_end = action->sequence_end;
    __sync_fetch_and_or(&action->kernel_flags, kernel_flow_syn_ack_seen);
  } else if (fromClient && (flags & 0x10) && !(flags & 0x02) && !(action->kernel_flags & kernel_flow_handshake_done)) {
    struct kernel_flow_key replyKey = replyKeyOf(action->new_destination_ip, action->new_destination_port, key);
    const struct kernel_flow_action* reply = bpf_map_lookup_elem(&kernel_flows, &replyKey);
    if (reply && (reply->kernel_flags & kernel_flow_syn_ack_seen) &&
        acknowledgement - reply->syn_sequence_end <= reply->sequence_end - reply->syn_sequence_end &&
        !(__sync_fetch_and_or(&action->kernel_flags, kernel_flow_handshake_done) & kernel_flow_handshake_done)) {
      describeFlow(&flow, action, key);
      flow.client_sequence_end = action->sequence_end;
      flow.real_sequence_end = reply->sequence_end;
      flow.client_window = action->window;
      flow.real_window = reply->window;
      sendEvent(kernel_flow_event_established, &flow);
    }
  }
  if ((flags & 0x01 /* FIN */) && !(__sync_fetch_and_or(&action->kernel_flags, kernel_flow_fin_seen) & kernel_flow_fin_seen)) {
    describeFlow(&flow, action, key);
    sendEvent(fromClient ? kernel_flow_event_client_fin : kernel_flow_event_real_fin, &flow);
  }
}

SEC("tc")
int forward_established(struct __sk_buff* skb) {
  // Only what user space would forward: IPv4 unicast to this host, untagged (it drops VLAN frames).
  if (skb->protocol != bpf_htons(ETH_P_IP) || skb->pkt_type != 0 /* PACKET_HOST */ || skb->vlan_present) {
    return tcx_next;
  }
  // The headers of a GSO frame are in its linear part; make sure, for the longest IP header.
  const __u32 headers = ETH_HLEN + 60 + sizeof(struct tcphdr);
  if ((void*)(long)skb->data + headers > (void*)(long)skb->data_end) {
    bpf_skb_pull_data(skb, skb->len < headers ? skb->len : headers);
  }
  void* data = (void*)(long)skb->data;
  void* end = (void*)(long)skb->data_end;
  struct iphdr* ip = data + ETH_HLEN;
  if ((void*)(ip + 1) > end || ip->version != 4 || ip->protocol != IPPROTO_TCP) return tcx_next;
  if (ip->frag_off & bpf_htons(0x3fff)) return tcx_next;  // fragments: user space tracks them
  // IP options (rare) and malformed headers go to user space, which checks them and counts the drops
  // (dropMalformed) as a router would; the fast path forwards only plain, well-formed segments.
  const __u32 ipHeaderLength = ip->ihl * 4;
  if (ipHeaderLength != sizeof(*ip)) return tcx_next;
  struct tcphdr* tcp = (void*)ip + ipHeaderLength;
  if ((void*)(tcp + 1) > end) return tcx_next;
  const __u32 tcpHeaderLength = tcp->doff * 4;
  if (tcpHeaderLength < sizeof(*tcp)) return tcx_next;
  const __u8 flags = ((__u8*)tcp)[13];

  struct kernel_flow_key key = {
      .source_ip = ip->saddr,
      .destination_ip = ip->daddr,
      .source_port = tcp->source,
      .destination_port = tcp->dest,
      .protocol = IPPROTO_TCP,
  };
  struct kernel_flow_action* action = bpf_map_lookup_elem(&kernel_flows, &key);
  if (flags & 0x04 /* RST */) return action ? passToUserSpace(skb) : tcx_next;  // judged by user space, always
  int justScheduled = 0;  // this SYN made the flow: its window starts the client's tracking
  if (!action) {
    // A connection's first SYN: scheduled here if its service is published, and the TTL allows it.
    if ((flags & 0x17) != 0x02 || ip->ttl <= 1 || scheduleConnection(&key, ip, tcp) != 0) return tcx_next;
    action = bpf_map_lookup_elem(&kernel_flows, &key);
    if (!action) return tcx_next;
    justScheduled = 1;
  } else if (action->kernel_flags & kernel_flow_scheduled_here) {
    if (reusesClosedFlow(action, &key, flags)) {
      // The old flow's entries went: this SYN is a new connection's, scheduled as any first SYN.
      if (ip->ttl <= 1 || scheduleConnection(&key, ip, tcp) != 0) return tcx_next;
      action = bpf_map_lookup_elem(&kernel_flows, &key);
      if (!action) return tcx_next;
      justScheduled = 1;
    } else if (!staysInKernel(action, flags, bpf_ntohl(tcp->seq))) {
      return passToUserSpace(skb);
    }
  } else if (flags & kernel_flow_state_changing_tcp_flags) {
    return passToUserSpace(skb);
  }
  // A direct-routing frame is delivered on a link natlb is attached to, not routed: as in user space
  // (worker.cc, forwardDirect), its IP header, TTL included, leaves as it came.
  const int translates = action->rewrite != kernel_flow_rewrite_none;
  if (translates && ip->ttl <= 1) return passToUserSpace(skb);  // user space counts the drop
  // IP bytes, as user space counts them; a BIG TCP frame's tot_len is 0, its length is the skb's.
  const __u32 ipLength = ip->tot_len ? bpf_ntohs(ip->tot_len) : skb->len - ETH_HLEN;
  if (ipLength < ipHeaderLength + tcpHeaderLength || ipLength > skb->len - ETH_HLEN) return passToUserSpace(skb);
  // A segment too long for the egress goes to user space, which answers it with "fragmentation needed".
  // A GSO frame is judged by its segments (BPF_MTU_CHK_SEGS): without the flag it passes whatever its
  // segment size, and a NIC would put too-long frames on the link.
  __u32 mtuLength = 0;
  if (bpf_check_mtu(skb, action->egress_ifindex, &mtuLength, 0, BPF_MTU_CHK_SEGS) != BPF_MTU_CHK_RET_SUCCESS) return passToUserSpace(skb);

  // Read before the rewrite, which invalidates the packet pointers. SYN and FIN count one each.
  const __u32 payload = ipLength > ipHeaderLength + tcpHeaderLength ? ipLength - ipHeaderLength - tcpHeaderLength : 0;
  const __u32 sequenceEnd = bpf_ntohl(tcp->seq) + payload + ((flags & 0x02) ? 1 : 0) + (flags & 0x01);
  const __u32 window = bpf_ntohs(tcp->window);
  const __u32 acknowledgement = bpf_ntohl(tcp->ack_seq);
  if (translates && rewriteEndpoints(skb, action, ip, tcp, ipHeaderLength) != 0) return TC_ACT_SHOT;
  // What moves a side's tracking (user space judges RSTs and FINs by it): the real's first SYN-ACK starts
  // its side (the entry was made with nothing); the SYN that made the flow started the client's. Any
  // other SYN, retransmitted or spoofed, goes to its real and moves nothing. Other segments raise a
  // side's end, by at most max_sequence_advance: a real segment is never that far ahead of what passed
  // here, and a blind attacker's random sequence number fits 1 time in 64.
  const int syn = flags & 0x02;
  const int firstSynAck = syn && (flags & 0x10) && action->rewrite == kernel_flow_rewrite_source &&
                          (action->kernel_flags & (kernel_flow_scheduled_here | kernel_flow_syn_ack_seen)) == kernel_flow_scheduled_here;
  const __u32 advance = sequenceEnd - action->sequence_end;
  if (firstSynAck || (!syn && (__s32)advance > 0 && advance <= max_sequence_advance)) action->sequence_end = sequenceEnd;
  if (translates) {
    if ((!syn || firstSynAck || justScheduled) && window > action->window) action->window = window;
  } else if ((flags & 0x10 /* ACK */) && (__s32)(acknowledgement - action->acknowledgement) > 0) {
    // Direct routing tracks no window (user space sees the client's side only, and checks none), but
    // keeps the client's latest acknowledgement: what a reset to the client must carry.
    action->acknowledgement = acknowledgement;
  }
  if (action->kernel_flags & kernel_flow_scheduled_here) trackScheduledFlow(action, &key, flags, acknowledgement);
  __sync_fetch_and_add(&action->packets, 1);
  __sync_fetch_and_add(&action->bytes, ipLength);
  action->last_seen_ns = bpf_ktime_get_ns();
  struct kernel_forwarding_totals* totals = forwardingTotals();
  if (totals) {
    totals->packets += 1;
    totals->bytes += ipLength;
  }
  struct bpf_redir_neigh nextHop = {.nh_family = address_family_inet, .ipv4_nh = action->next_hop};
  return bpf_redirect_neigh(action->egress_ifindex, &nextHop, sizeof nextHop, 0);
}

char LICENSE[] SEC("license") = "GPL";
