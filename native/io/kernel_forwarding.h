// The kernel fast path (native/bpf/forward_established.bpf.c): its TC program attached at the ingress
// of every managed interface (tcx links: they go away with natlb, even when it is killed) and its flow
// map. The engine puts an established TCP flow's directions here (a direct-routing flow has one); from
// then on the kernel rewrites and forwards their segments without a copy to user space, and natlb's
// receive rings (bound after TC) see only the segments that change the flow's state.
// Needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN (kernelFastPath "auto" runs without it otherwise).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "../bpf/kernel_flow.h"
#include "bpf_object.h"
#include "unique_fd.h"

struct ring_buffer;

namespace natlb::io {

struct KernelForwardingInterface {
  int ifindex;
  std::string name;
};

class KernelForwarding {
 public:
  // Room for `maxFlows` flows (two entries each); attaches to every interface or throws, attaching none.
  KernelForwarding(uint32_t maxFlows, const std::vector<KernelForwardingInterface>& interfaces);
  KernelForwarding(const KernelForwarding&) = delete;
  KernelForwarding& operator=(const KernelForwarding&) = delete;

  // The flow map, for the XDP steering program (it passes these segments to the kernel).
  int flowsMapFd() const { return flows_; }
  // Adds or replaces one direction; false (errno set) when the map is full or refuses it.
  bool put(const kernel_flow_key& key, const kernel_flow_action& action);
  // True if it was there.
  bool remove(const kernel_flow_key& key);
  // Both directions of a flow at once (one system call); putPair puts neither when it fails.
  bool putPair(const std::array<kernel_flow_key, 2>& keys, const std::array<kernel_flow_action, 2>& actions);
  // How many of the two were there.
  size_t removePair(const std::array<kernel_flow_key, 2>& keys);
  std::optional<kernel_flow_action> find(const kernel_flow_key& key) const;
  // Over all flows, since start.
  kernel_forwarding_totals totals() const;

  // New connections scheduled by the program (kernel_flow.h): the services it may schedule for (the
  // map becomes exactly these; false, errno set, when the kernel refuses one), natlb's routes, and
  // whether it may schedule at all.
  bool replaceServices(const std::vector<std::pair<kernel_service_key, kernel_service>>& services);
  bool replaceRoutes(const std::vector<std::pair<kernel_route_key, kernel_route>>& routes);
  void enableScheduling(bool enabled);
  // Hands every event waiting in the ring to `handle`, in order; returns how many. One reader at a
  // time: a caller that finds another reading returns 0 at once.
  size_t readEvents(const std::function<void(const kernel_flow_event&)>& handle);

 private:
  template <typename Key, typename Value>
  bool replaceMap(int map, const std::vector<std::pair<Key, Value>>& entries);
  struct RingBufferCloser {
    void operator()(ring_buffer* ring) const;
  };
  BpfObject object_;
  int flows_ = -1;   // owned by object_
  int totals_ = -1;  // owned by object_
  int services_ = -1;    // owned by object_
  int routes_ = -1;      // owned by object_
  int scheduling_ = -1;  // owned by object_
  std::unique_ptr<ring_buffer, RingBufferCloser> events_;
  std::mutex eventsReader_;
  const std::function<void(const kernel_flow_event&)>* eventHandler_ = nullptr;  // while readEvents runs
  std::vector<UniqueFd> links_;
};

// The ids of the BPF programs attached at the tcx ingress of an interface of this network namespace
// (natlb's own and anyone else's), for checks that nothing is left behind.
std::vector<uint32_t> tcxIngressPrograms(int ifindex);

}  // namespace natlb::io
