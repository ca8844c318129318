// The kernel fast path's flow map (entries: kernel_flow.h), as a BPF program declares it. Both programs
// declare it; user space hands the XDP steering program the fast path's own map before loading.
#pragma once
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "kernel_flow.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);  // elements follow the live flows (the buckets do not)
  __uint(max_entries, 65536);            // set from the flow map's capacity before loading
  __type(key, struct kernel_flow_key);
  __type(value, struct kernel_flow_action);
} kernel_flows SEC(".maps");
