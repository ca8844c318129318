// The kernel fast path (TC ingress, on every interface natlb manages): a TCP segment of an established
// flow is rewritten here (NAT: one endpoint, TTL, checksums; full NAT: both endpoints; direct routing: nothing but the Ethernet
// addresses, which the redirect sets) and redirected to the interface towards its next hop (for a
// one-armed direct-routing balancer, the one it came in on), without being copied to user space. Everything else, and every segment that changes a
// flow's state (SYN, FIN, RST), goes on as before to the next tcx program, the classic tc filters, and
// natlb's receive rings, which sit after TC: the workers then handle it. User space decides which flows
// are here (kernel_flow.h).
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
  if (flags & kernel_flow_state_changing_tcp_flags) return tcx_next;

  struct kernel_flow_key key = {
      .source_ip = ip->saddr,
      .destination_ip = ip->daddr,
      .source_port = tcp->source,
      .destination_port = tcp->dest,
      .protocol = IPPROTO_TCP,
  };
  struct kernel_flow_action* action = bpf_map_lookup_elem(&kernel_flows, &key);
  if (!action) return tcx_next;
  // A direct-routing frame is delivered on a link natlb is attached to, not routed: as in user space
  // (worker.cc, forwardDirect), its IP header, TTL included, leaves as it came.
  const int translates = action->rewrite != kernel_flow_rewrite_none;
  if (translates && ip->ttl <= 1) return tcx_next;  // user space counts the drop
  // IP bytes, as user space counts them; a BIG TCP frame's tot_len is 0, its length is the skb's.
  const __u32 ipLength = ip->tot_len ? bpf_ntohs(ip->tot_len) : skb->len - ETH_HLEN;
  if (ipLength < ipHeaderLength + tcpHeaderLength || ipLength > skb->len - ETH_HLEN) return tcx_next;
  // A segment too long for the egress goes to user space, which answers it with "fragmentation needed".
  // A GSO frame is judged by its segments (BPF_MTU_CHK_SEGS): without the flag it passes whatever its
  // segment size, and a NIC would put too-long frames on the link.
  __u32 mtuLength = 0;
  if (bpf_check_mtu(skb, action->egress_ifindex, &mtuLength, 0, BPF_MTU_CHK_SEGS) != BPF_MTU_CHK_RET_SUCCESS) return tcx_next;

  // Read before the rewrite, which invalidates the packet pointers.
  const __u32 payload = ipLength > ipHeaderLength + tcpHeaderLength ? ipLength - ipHeaderLength - tcpHeaderLength : 0;
  const __u32 sequenceEnd = bpf_ntohl(tcp->seq) + payload;
  const __u32 window = bpf_ntohs(tcp->window);
  const __u32 acknowledgement = bpf_ntohl(tcp->ack_seq);
  if (translates && rewriteEndpoints(skb, action, ip, tcp, ipHeaderLength) != 0) return TC_ACT_SHOT;
  if ((__s32)(sequenceEnd - action->sequence_end) > 0) action->sequence_end = sequenceEnd;
  if (translates) {
    if (window > action->window) action->window = window;
  } else if ((flags & 0x10 /* ACK */) && (__s32)(acknowledgement - action->acknowledgement) > 0) {
    // Direct routing tracks no window (user space sees the client's side only, and checks none), but
    // keeps the client's latest acknowledgement: what a reset to the client must carry.
    action->acknowledgement = acknowledgement;
  }
  __sync_fetch_and_add(&action->packets, 1);
  __sync_fetch_and_add(&action->bytes, ipLength);
  action->last_seen_ns = bpf_ktime_get_ns();
  const __u32 zero = 0;
  struct kernel_forwarding_totals* totals = bpf_map_lookup_elem(&kernel_forwarding_totals, &zero);
  if (totals) {
    totals->packets += 1;
    totals->bytes += ipLength;
  }
  struct bpf_redir_neigh nextHop = {.nh_family = address_family_inet, .ipv4_nh = action->next_hop};
  return bpf_redirect_neigh(action->egress_ifindex, &nextHop, sizeof nextHop, 0);
}

char LICENSE[] SEC("license") = "GPL";
