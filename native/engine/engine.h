// The data plane: workers (WorkerThreads says how many) plus a housekeeper (flow expiry, ARP for next hops,
// gratuitous ARP for VIPs, ring statistics). Configuration arrives as whole snapshots from the control
// plane; the engine never calls back into JavaScript.
#pragma once
#include <array>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../io/rx_ring.h"
#include "../packet/tcp_reset.h"
#include "../sync/flow_sync.h"
#include "engine_context.h"
#include "reply_claims_signaller.h"
#include "timeout_profile_assignment.h"
#include "worker.h"

namespace natlb::engine {

// Whether established TCP flows are forwarded by a TC program (io/kernel_forwarding.h), which needs
// CAP_BPF, CAP_NET_ADMIN and Linux 6.6 at start. IfAvailable (the default) forwards in user space
// when the program cannot be loaded or attached, and says why (Engine::kernelFastPathUnavailable).
enum class KernelFastPathMode { Off, IfAvailable, Required };

// How many threads move frames. One serves every interface: a frame natlb sends is often answered
// while the send is still in the kernel (the peer's stack runs in the sender's softirq), so the answer
// is already in this thread's rings, hot in its cache, with no other thread to wake; connection set-up
// and tear-down go faster. PerInterface gives each interface a thread, so the two directions of a
// user-space bulk transfer run in parallel. Auto (the default): One while the kernel fast path carries
// established flows, PerInterface when user space carries every byte.
enum class WorkerThreads { Auto, One, PerInterface };

struct EngineOptions {
  std::vector<InterfaceConfig> interfaces;
  bool coalesceTcp = true;
  KernelFastPathMode kernelFastPath = KernelFastPathMode::IfAvailable;
  WorkerThreads workerThreads = WorkerThreads::Auto;
};

// A real server whose flows end now (config deadRealFlows: it went down or was removed), with resets
// to both ends of its TCP connections when `reset`.
struct DeadReal {
  uint32_t vip;
  uint16_t port;
  uint8_t protocol;
  uint32_t realIp;
  uint16_t realPort;
  bool reset;
  bool operator==(const DeadReal&) const = default;
};

// A reset natlb sends to one end of a connection it ends, and the address whose route and neighbour
// take it there: its destination, or a direct-routing real (the reset is addressed to the VIP it holds).
struct PendingReset {
  packet::TcpResetSpec frame;
  uint32_t towards;
};

using flow::TimeoutSeconds;

class Engine {
 public:
  Engine(flow::FlowTable& flows, EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Opens every ring and socket (throws on the first failure, leaving nothing open), then runs.
  void start();
  // Stops every thread; offloaded flows go back to user space first (with the kernel's last tracking),
  // and the threads' counters stay in the totals, so a later start() goes on where this one ended.
  void stop();
  bool running() const { return context_.running.load(); }
  // While stopped: the interfaces to run on next (same names and roles; an interface that was deleted and
  // created again has a new ifindex and MAC). The flow map and counters stay.
  void replaceInterfaces(std::vector<InterfaceConfig> interfaces);

  void setServices(std::vector<Service> services);
  // Replaces these services (each must be in the data plane already, same VIP, port and protocol) and
  // shares the rest with the new snapshot: what a health change or a drained real needs.
  void replaceServices(std::vector<Service> changed);
  // The snapshot the workers use now: 1 + the number of setServices/replaceServices calls.
  uint64_t servicesGeneration() const;
  // The reals over their connection limit now (ServiceTable::overloadedRealIds), by real id.
  std::vector<uint16_t> overloadedRealIds() const;
  void setRoutes(std::vector<Route> routes);
  void learnNeighbours(const std::vector<NeighbourEntry>& neighbours);
  // The gateway's own addresses (all of them, not only the managed interfaces'); steering updates
  // only when the set changes.
  void setLocalAddresses(std::vector<uint32_t> addresses);
  // The global timeouts: every flow's, except where its service has its own (Service::timeouts).
  void setTimeouts(const TimeoutSeconds& timeouts);
  // The kernel lost its list of claimed replies (its table was flushed and installed again): every live
  // flow claims its replies anew, over the next sweeps.
  void renewReplyClaims() { context_.flows.renewAllClaims(monotonicMs()); }
  // Ends the flows of these reals soon, on the housekeeper's thread (a scan of the flow map).
  void endFlowsOf(std::vector<DeadReal> reals);

  // The pair's role (gateway_role.h): takes effect at the workers' next batch. Becoming master
  // announces every VIP `announcement.rounds` times; leaving it stops the announcements.
  void setGatewayRole(GatewayRole role, TakeoverAnnouncement announcement);
  GatewayRole gatewayRole() const { return context_.gatewayRole.load(); }
  // The flow sync (native/sync/flow_sync.h): started with its options (replacing a running one; throws
  // io::SystemError when its socket cannot be opened), stopped, and its counters (nullopt: none runs).
  void startSync(sync::SyncOptions options);
  void stopSync();
  std::optional<std::array<uint64_t, size_t(sync::SyncCounter::Count)>> syncCounters();
  // Hands every established TCP flow that user space forwards (synced ones included) to the kernel fast
  // path in one pass, as the workers would after their next packets: for an instance that takes over.
  // Returns how many went; 0 without the kernel fast path.
  size_t offloadEstablishedFlows();

  std::array<uint64_t, size_t(Counter::Count)> counters() const;
  // Each real's traffic (real_stats.h) by real id, summed over the workers, the kernel fast path and
  // the workers of earlier runs. Called from the control plane's thread, as start() and stop() are.
  std::vector<RealTraffic> realTraffic(const std::vector<uint16_t>& realIds) const;
  // How each running AF_XDP interface receives: XDP mode and AF_XDP sockets (one per receive queue).
  struct XdpState {
    std::string interface;
    std::string mode;  // "native" or "generic"
    size_t receiveQueues;
  };
  std::vector<XdpState> xdpStates();
  // Flows the kernel fast path forwards now (0 without it).
  uint64_t kernelFastPathFlows();
  // Whether the kernel fast path runs, and when it was wanted (IfAvailable) but could not start, why.
  // With it: the services whose new connections the kernel may schedule itself, and whether it does now
  // (allowed by setKernelScheduling, this gateway the master, and no pile of half-open flows).
  struct KernelFastPathState {
    bool active;
    std::string unavailable;
    size_t schedulingServices = 0;
    bool scheduling = false;
  };
  KernelFastPathState kernelFastPathState();
  // Config kernelScheduling: whether the kernel fast path may schedule new connections itself.
  void setKernelScheduling(bool allowed);
  // One or PerInterface: the layout the running workers have (Auto resolved at start).
  WorkerThreads workerThreadsInUse();
  std::vector<NeighbourEntry> neighbours() const { return context_.neighbours.snapshot(); }
  const std::vector<InterfaceConfig>& interfaces() const { return context_.interfaces; }

 private:
  void housekeep();
  void refreshMtus();
  void endPendingDeadRealFlows(SenderSet& senders);
  void sendReset(SenderSet& senders, const PendingReset& reset);
  void resolveNextHops(SenderSet& senders, uint64_t nowMs);
  void announceVips(SenderSet& senders);
  void collectRingStatistics();
  static SharedService carryCursor(Service service, const ServiceTable& previous);
  io::FilterSpec selectionFor(const InterfaceConfig& interface, const ServiceTable& services) const;
  void refreshSelections();

  void withdrawFlowsOfRemovedServices(const ServiceTable& previous, const ServiceTable& current);
  void moveFlowsToTheirTimeoutProfiles(const ServiceTable& previous, const ServiceTable& current);
  void withdrawFlowsWithOtherNextHops(const RouteTable& routes);
  void gateKernelScheduling();

  EngineContext context_;
  const KernelFastPathMode kernelFastPath_;
  const WorkerThreads workerThreads_;
  WorkerThreads workerThreadsInUse_ = WorkerThreads::One;  // Auto resolved at start
  std::string kernelFastPathUnavailable_;  // guarded by controlMutex_
  std::unique_ptr<KernelOffload> kernelOffload_;  // while running with the kernel fast path
  std::unique_ptr<ReplyClaimsSignaller> replyClaims_;  // while running, with a backend interface
  std::unique_ptr<sync::FlowSync> sync_;  // while a sync is configured; guarded by controlMutex_
  std::vector<uint32_t> localAddresses_;  // sorted; guarded by controlMutex_
  std::vector<Route> routes_;              // as last given; guarded by controlMutex_
  TimeoutProfileAssignment timeoutProfiles_{context_.timeouts};  // guarded by controlMutex_
  std::vector<std::unique_ptr<Worker>> workers_;
  std::thread housekeeper_;
  std::mutex wakeMutex_;
  std::condition_variable wake_;
  std::atomic<bool> announcePending_{false};
  // Takeover announcements still to send, and how far apart (setGatewayRole); the housekeeper's.
  std::atomic<uint32_t> takeoverRoundsLeft_{0};
  std::atomic<uint32_t> takeoverIntervalMs_{0};
  uint64_t nextTakeoverRoundMs_ = 0;  // housekeeper's thread only
  std::mutex controlMutex_;
  // Whether the half-open flows leave room for the kernel to schedule new connections (gateKernelScheduling).
  std::atomic<bool> kernelSchedulingOpen_{true};
  std::atomic<bool> kernelSchedulingAllowed_{true};
  static constexpr uint32_t kKernelSchedulingMinHalfOpen = 1024;  // serializes start/stop/setServices from the control plane
  std::mutex deadRealsMutex_;
  std::vector<DeadReal> deadReals_;  // waiting for the housekeeper
};

}  // namespace natlb::engine
