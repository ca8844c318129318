// XDP program for interfaces on the AF_XDP receive path: frames the balancer owns go to its AF_XDP
// socket (one per receive queue) and never enter the kernel's stack; every other frame (ARP, ICMP,
// the gateway's own traffic, the reals' own traffic) passes on to the kernel, whose verdict natlb's
// AF_PACKET rings then follow (native/flow/reply_claims.h says which frames natlb owns). Here:
//   - IPv4 to a VIP, any protocol but ICMP, fragments included;
//   - replies of natlb's flows that it has claimed here, and the later fragments of a claimed reply
//     steered here (remembered by source, destination, IP id and protocol, as the kernel set-up does);
// never frames to the gateway's own addresses (health checks, an admin's connection to a real).
// With the kernel fast path on, an established flow's segments pass to the kernel, whose TC program
// forwards them (forward_established.bpf.c).
// The user-space side fills the maps (native/io/xdp_steering.cc); an empty map steers nothing.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "kernel_flows_map.bpf.h"

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, 256);
  __type(key, __u32);   // receive queue
  __type(value, __u32); // AF_XDP socket
} receive_sockets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);  // the longest frame an AF_XDP chunk holds; longer ones pass to the kernel
} frame_limit SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);   // VIP, network order
  __type(value, __u8);
} vips SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u32);   // an address of the gateway, network order
  __type(value, __u8);
} local_addresses SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 65536);              // set from the flow map's capacity before loading
  __type(key, struct kernel_flow_key);     // a reply as it arrives: real -> client, TCP or UDP
  __type(value, __u8);
} claimed_replies SEC(".maps");

// The first fragment of a claimed reply was steered: its later fragments, which carry no ports, follow it.
struct fragment_key {
  __u32 source_ip;
  __u32 destination_ip;
  __u16 id;
  __u16 protocol;
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);  // the oldest go when it is full: a datagram's fragments come together
  __uint(max_entries, 65536);
  __type(key, struct fragment_key);
  __type(value, __u8);
} steered_fragments SEC(".maps");

static __always_inline int steer(struct xdp_md* ctx) {
  // XDP_PASS when no socket is bound to this queue (yet): the kernel then handles the frame.
  return bpf_redirect_map(&receive_sockets, ctx->rx_queue_index, XDP_PASS);
}

// A TCP segment the kernel fast path forwards: an established flow's, without SYN, FIN or RST.
static __always_inline int inKernelFastPath(struct iphdr* ip, __u8* l4, void* end) {
  if (ip->protocol != IPPROTO_TCP || (ip->frag_off & bpf_htons(0x3fff)) != 0 || ip->ihl < 5) return 0;
  if ((void*)(l4 + 20) > end) return 0;
  if (l4[13] & kernel_flow_state_changing_tcp_flags) return 0;
  struct kernel_flow_key key = {
      .source_ip = ip->saddr,
      .destination_ip = ip->daddr,
      .source_port = *(__u16*)l4,
      .destination_port = *(__u16*)(l4 + 2),
      .protocol = IPPROTO_TCP,
  };
  return bpf_map_lookup_elem(&kernel_flows, &key) != 0;
}

SEC("xdp")
int steer_to_socket(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* end = (void*)(long)ctx->data_end;
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
  struct iphdr* ip = (void*)(eth + 1);
  if ((void*)(ip + 1) > end || ip->version != 4) return XDP_PASS;
  if (ip->protocol == IPPROTO_ICMP) return XDP_PASS;  // echo and errors: the AF_PACKET path
  // Generic-mode XDP runs after GRO: a merged frame would not fit a chunk and be lost; the AF_PACKET
  // rings take it instead.
  __u32 zero = 0;
  __u32* limit = bpf_map_lookup_elem(&frame_limit, &zero);
  if (!limit || (__u64)(end - data) > *limit) return XDP_PASS;

  __u32 destination = ip->daddr;
  if (bpf_map_lookup_elem(&vips, &destination)) {
    if (inKernelFastPath(ip, (__u8*)ip + ip->ihl * 4, end)) return XDP_PASS;
    return steer(ctx);
  }
  if (bpf_map_lookup_elem(&local_addresses, &destination)) return XDP_PASS;

  if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP) return XDP_PASS;
  struct fragment_key fragment = {.source_ip = ip->saddr, .destination_ip = ip->daddr, .id = ip->id, .protocol = ip->protocol};
  if ((ip->frag_off & bpf_htons(0x1fff)) != 0) {
    return bpf_map_lookup_elem(&steered_fragments, &fragment) ? steer(ctx) : XDP_PASS;
  }
  __u32 headerLength = ip->ihl * 4;
  if (headerLength < sizeof(*ip)) return XDP_PASS;
  __u8* l4 = (__u8*)ip + headerLength;
  if ((void*)(l4 + 4) > end) return XDP_PASS;
  if (inKernelFastPath(ip, l4, end)) return XDP_PASS;
  struct kernel_flow_key reply = {
      .source_ip = ip->saddr,
      .destination_ip = ip->daddr,
      .source_port = *(__u16*)l4,
      .destination_port = *(__u16*)(l4 + 2),
      .protocol = ip->protocol,
  };
  if (!bpf_map_lookup_elem(&claimed_replies, &reply)) return XDP_PASS;
  if (ip->frag_off & bpf_htons(0x2000)) {  // more fragments follow
    const __u8 one = 1;
    bpf_map_update_elem(&steered_fragments, &fragment, &one, BPF_ANY);
  }
  return steer(ctx);
}

char LICENSE[] SEC("license") = "GPL";
