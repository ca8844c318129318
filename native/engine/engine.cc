#include "engine.h"

#include "kernel_scheduled_flows.h"

#include <algorithm>
#include <iterator>
#include <set>
#include <stdexcept>

#include <cstring>

#include "../flow/tcp_tracking.h"
#include "../io/interface_properties.h"
#include "../io/system_error.h"
#include "../packet/arp.h"

namespace natlb::engine {

namespace {

constexpr auto kHousekeepingPeriod = std::chrono::milliseconds(100);
constexpr size_t kSweepBudget = 1 << 17;           // entries looked at per period
constexpr uint64_t kNextHopRefreshMs = 30000;      // re-ARP known next hops this often
constexpr uint64_t kNextHopRetryMs = 500;          // unknown next hops: ask again this soon
constexpr uint64_t kMtuRefreshMs = 1000;

}  // namespace

Engine::Engine(flow::FlowTable& flows, EngineOptions options)
    : context_(flows), kernelFastPath_(options.kernelFastPath), workerThreads_(options.workerThreads) {
  context_.interfaces = std::move(options.interfaces);
  context_.mtus = std::vector<std::atomic<uint32_t>>(context_.interfaces.size());
  refreshMtus();
  context_.coalesceTcp = options.coalesceTcp;
  setTimeouts(TimeoutSeconds{});
}

Engine::~Engine() {
  stopSync();
  stop();
}

void Engine::startSync(sync::SyncOptions options) {
  std::lock_guard control(controlMutex_);
  sync_.reset();  // the old socket closes before the new one binds the same port
  sync_ = std::make_unique<sync::FlowSync>(context_, std::move(options));
}

void Engine::stopSync() {
  std::lock_guard control(controlMutex_);
  sync_.reset();
}

std::optional<std::array<uint64_t, size_t(sync::SyncCounter::Count)>> Engine::syncCounters() {
  std::lock_guard control(controlMutex_);
  if (!sync_) return std::nullopt;
  return sync_->counters();
}

size_t Engine::offloadEstablishedFlows() {
  std::lock_guard control(controlMutex_);
  if (!kernelOffload_) return 0;
  const auto routes = context_.routes.load();
  const auto services = context_.services.load();
  size_t handedOver = 0;
  const uint32_t used = context_.flows.usedEntries();
  for (uint32_t ref = 1; ref <= used; ++ref) {
    const flow::FlowEntry e = context_.flows.entryAt(ref);
    if (!e.live() || e.state() != flow::FlowState::Established || e.load<uint8_t>(flow::entry::kProtocol) != packet::kProtocolTcp ||
        (e.flags() & (flow::flags::kTemplate | flow::flags::kOffloaded | flow::flags::kUserSpaceOnly))) {
      continue;
    }
    const uint32_t realIp = e.load<uint32_t>(flow::entry::kRealIp);
    const auto towardsReal = routes->lookup(realIp);
    const auto towardsClient = routes->lookup(e.load<uint32_t>(flow::entry::kClientIp));
    const bool directRouting = (e.flags() & flow::flags::kDirectRouting) != 0;
    if (!towardsReal || !context_.interfaceByIndex(towardsReal->ifindex) ||
        (directRouting ? towardsReal->ip != realIp : !towardsClient || !context_.interfaceByIndex(towardsClient->ifindex))) {
      continue;
    }
    context_.flows.offload(ref, [&](const flow::FlowEntry& entry) {
      if (!services->find(entry.load<uint32_t>(flow::entry::kVip), entry.load<uint16_t>(flow::entry::kVport),
                          entry.load<uint8_t>(flow::entry::kProtocol))) {
        return false;
      }
      const bool ok = kernelOffload_->handOver(entry, *towardsReal, towardsClient);
      context_.counters.add(ok ? Counter::FlowsOffloaded : Counter::OffloadRefused);
      handedOver += ok ? 1 : 0;
      return ok;
    });
  }
  return handedOver;
}

// What a worker's rings accept is the kernel's verdict (flow/reply_claims.h), plus all ICMP on the
// backend side (errors about flows); the XDP program, which runs before that verdict, gets the VIPs.
io::FilterSpec Engine::selectionFor(const InterfaceConfig& interface, const ServiceTable& services) const {
  io::FilterSpec spec;
  spec.ownMac = interface.mac;
  spec.localIps = localAddresses_;
  for (const InterfaceConfig& managed : context_.interfaces) {
    for (const InterfaceAddress& address : managed.addresses) spec.localIps.push_back(address.ip);
  }
  if (interface.role == InterfaceRole::Client) {
    spec.destinationIps = services.vips();
  } else {
    spec.acceptIcmp = true;
  }
  return spec;
}

void Engine::start() {
  std::lock_guard control(controlMutex_);
  if (context_.running.load()) return;
  const auto services = context_.services.load();
  // The fast path first: the workers bind their rings after TC, and the XDP programs share its map.
  std::unique_ptr<KernelOffload> offload;
  kernelFastPathUnavailable_.clear();
  if (kernelFastPath_ != KernelFastPathMode::Off) {
    std::vector<io::KernelForwardingInterface> attachTo;
    for (const InterfaceConfig& interface : context_.interfaces) attachTo.push_back({interface.ifindex, interface.name});
    try {
      offload = std::make_unique<KernelOffload>(context_.flows.capacity(), attachTo, context_.realStats.kernel());
    } catch (const io::SystemError& error) {
      // Missing capabilities or an old kernel: user space forwards everything, as with Off. The
      // program's links are RAII members, so a partial attach is already undone here.
      if (kernelFastPath_ == KernelFastPathMode::Required) throw;
      kernelFastPathUnavailable_ = error.what();
    }
  }
  context_.kernelOffload = offload.get();
  WorkerThreads threads = workerThreads_;
  if (threads == WorkerThreads::Auto) threads = offload ? WorkerThreads::One : WorkerThreads::PerInterface;
  std::vector<std::unique_ptr<Worker>> workers;
  try {
    std::vector<std::unique_ptr<InterfaceReceiver>> receivers;
    for (const InterfaceConfig& interface : context_.interfaces) {
      receivers.push_back(std::make_unique<InterfaceReceiver>(interface, selectionFor(interface, *services),
                                                              offload ? offload->flowsMapFd() : -1,
                                                              context_.flows.capacity()));
      if (threads == WorkerThreads::PerInterface) {
        workers.push_back(std::make_unique<Worker>(context_, std::move(receivers)));
        receivers.clear();
      }
    }
    if (!receivers.empty()) workers.push_back(std::make_unique<Worker>(context_, std::move(receivers)));
  } catch (...) {
    context_.kernelOffload = nullptr;
    throw;
  }
  std::unique_ptr<ReplyClaimsSignaller> signaller;
  for (const InterfaceConfig& interface : context_.interfaces) {
    if (interface.role == InterfaceRole::Backend) {
      signaller = std::make_unique<ReplyClaimsSignaller>(interface);
      break;
    }
  }
  if (signaller) {
    for (auto& worker : workers) {
      for (const auto& receiver : worker->receivers()) {
        io::XdpReceiver* xdp = receiver->xdp();
        if (xdp != nullptr && receiver->interface().role == InterfaceRole::Backend) signaller->alsoReleaseFrom(xdp->steering());
      }
    }
  }
  kernelOffload_ = std::move(offload);
  context_.flows.setOffloadedFlows(kernelOffload_.get());
  if (kernelOffload_) {
    kernelOffload_->publishRoutes(*context_.routes.load(), context_);
    kernelOffload_->publishServices(*services);
    gateKernelScheduling();
  }
  replyClaims_ = std::move(signaller);
  context_.flows.setReplyClaims(replyClaims_.get());
  workers_ = std::move(workers);
  workerThreadsInUse_ = threads;
  context_.running.store(true, std::memory_order_release);
  for (auto& worker : workers_) worker->start();
  announcePending_.store(true);
  housekeeper_ = std::thread([this] { housekeep(); });
}

void Engine::stop() {
  std::lock_guard control(controlMutex_);
  if (!context_.running.exchange(false)) return;
  wake_.notify_all();
  if (housekeeper_.joinable()) housekeeper_.join();
  for (auto& worker : workers_) worker->join();
  // What the threads and the kernel counted stays in the totals (a restart must not set them back).
  for (const auto& worker : workers_) {
    for (size_t i = 0; i < size_t(Counter::Count); ++i) context_.counters.add(Counter(i), worker->counters().get(Counter(i)));
    context_.realStats.retire(worker->realStats());
  }
  workers_.clear();
  if (kernelOffload_) {
    // The flows the kernel scheduled since the workers last read its events join the map first.
    kernelOffload_->enableScheduling(false);
    const auto services = context_.services.load();
    kernelOffload_->readEvents([&](const kernel_flow_event& event) {
      const KernelEventResult result = applyKernelFlowEvent(event, *services, context_.flows, *kernelOffload_, monotonicMs());
      if (result.outcome == KernelEventOutcome::Adopted) {
        context_.counters.add(Counter::NewFlows);
        context_.counters.add(Counter::KernelScheduledFlows);
      } else if (result.outcome == KernelEventOutcome::Refused) {
        context_.counters.add(Counter::KernelScheduledRefused);
      }
    });
    // The flows go back to user space with what the kernel tracked since their hand-over (sequence
    // numbers, last activity): a later start() would otherwise judge their FIN out of window.
    context_.flows.withdrawOffloaded([](const flow::FlowEntry&) { return true; }, false);
    const kernel_forwarding_totals totals = kernelOffload_->totals();
    context_.counters.add(Counter::KernelForwardedPackets, totals.packets);
    context_.counters.add(Counter::KernelForwardedBytes, totals.bytes);
    context_.counters.add(Counter::KernelEventRingFull, totals.events_lost);
  }
  if (replyClaims_) {
    context_.counters.add(Counter::ReplyClaimSignals, replyClaims_->signalsSent());
    context_.counters.add(Counter::ReplyClaimSignalErrors, replyClaims_->signalErrors());
  }
  context_.flows.setReplyClaims(nullptr);
  replyClaims_.reset();
  context_.flows.setOffloadedFlows(nullptr);
  context_.kernelOffload = nullptr;
  kernelOffload_.reset();  // detaches the TC programs
}

// Round robin goes on where it was: a health flap or an API call must not restart every cursor.
SharedService Engine::carryCursor(Service service, const ServiceTable& previous) {
  if (const Service* old = previous.find(service.vip, service.port, service.protocol)) {
    service.carryRunningState(*old);  // the round-robin cursor and the reals' overload flags
  }
  return std::make_shared<const Service>(std::move(service));
}

void Engine::replaceInterfaces(std::vector<InterfaceConfig> interfaces) {
  std::lock_guard control(controlMutex_);
  if (context_.running.load()) throw std::logic_error("replaceInterfaces: stop the engine first");
  if (interfaces.size() != context_.interfaces.size()) throw std::invalid_argument("replaceInterfaces: the same interfaces, please");
  for (size_t i = 0; i < interfaces.size(); ++i) {
    if (interfaces[i].ifindex != context_.interfaces[i].ifindex) context_.neighbours.forgetInterface(context_.interfaces[i].ifindex);
  }
  context_.interfaces = std::move(interfaces);
  refreshMtus();
}

void Engine::setServices(std::vector<Service> services) {
  std::lock_guard control(controlMutex_);
  const auto previous = context_.services.load();
  timeoutProfiles_.assign(services, {});
  std::vector<SharedService> shared;
  shared.reserve(services.size());
  for (Service& service : services) shared.push_back(carryCursor(std::move(service), *previous));
  const auto current = std::make_shared<const ServiceTable>(std::move(shared), previous->generation() + 1);
  context_.services.store(current, std::memory_order_release);
  if (kernelOffload_) kernelOffload_->publishServices(*current);
  withdrawFlowsOfRemovedServices(*previous, *current);
  moveFlowsToTheirTimeoutProfiles(*previous, *current);
  timeoutProfiles_.release(*current);
  refreshSelections();
  announcePending_.store(true);
  wake_.notify_all();
}

// O(services) pointer copies and an index rebuild; the other services' tables are shared, not copied.
// VIPs stay, so nothing is announced; the receive filters change only if the reals' addresses did.
void Engine::replaceServices(std::vector<Service> changed) {
  std::lock_guard control(controlMutex_);
  const auto previous = context_.services.load();
  std::vector<SharedService> shared = previous->services();
  const auto isChanged = [&](const SharedService& s) {
    return std::any_of(changed.begin(), changed.end(), [&](const Service& c) {
      return s->vip == c.vip && s->port == c.port && s->protocol == c.protocol;
    });
  };
  std::vector<SharedService> kept;
  std::copy_if(shared.begin(), shared.end(), std::back_inserter(kept), [&](const SharedService& s) { return !isChanged(s); });
  for (const Service& service : changed) {
    if (previous->find(service.vip, service.port, service.protocol) == nullptr) {
      throw std::invalid_argument("replaceServices: a service that is not in the data plane (use setServices)");
    }
  }
  timeoutProfiles_.assign(changed, kept);
  bool realsMoved = false;
  for (Service& service : changed) {
    const auto found = std::find_if(shared.begin(), shared.end(), [&](const SharedService& s) {
      return s->vip == service.vip && s->port == service.port && s->protocol == service.protocol;
    });
    const auto sameEndpoint = [](const flow::RealEndpoint& a, const flow::RealEndpoint& b) { return a.ip == b.ip && a.port == b.port; };
    realsMoved = realsMoved || !std::equal((*found)->reals.begin(), (*found)->reals.end(), service.reals.begin(), service.reals.end(), sameEndpoint);
    *found = carryCursor(std::move(service), *previous);
  }
  const auto current = std::make_shared<const ServiceTable>(std::move(shared), previous->generation() + 1);
  context_.services.store(current, std::memory_order_release);
  if (kernelOffload_) kernelOffload_->publishServices(*current);
  moveFlowsToTheirTimeoutProfiles(*previous, *current);
  timeoutProfiles_.release(*current);
  if (realsMoved) refreshSelections();
}

uint64_t Engine::servicesGeneration() const { return context_.services.load()->generation(); }

std::vector<uint16_t> Engine::overloadedRealIds() const { return context_.services.load()->overloadedRealIds(context_.flows); }

// A removed service's flows are user space's again, which drops their client segments as it would
// without the fast path (their service is gone).
void Engine::withdrawFlowsOfRemovedServices(const ServiceTable& previous, const ServiceTable& current) {
  if (!kernelOffload_) return;
  const bool anyRemoved = std::any_of(previous.services().begin(), previous.services().end(), [&](const SharedService& s) {
    return current.find(s->vip, s->port, s->protocol) == nullptr;
  });
  if (!anyRemoved) return;
  context_.flows.withdrawOffloaded([&](const flow::FlowEntry& e) {
    return current.find(e.load<uint32_t>(flow::entry::kVip), e.load<uint16_t>(flow::entry::kVport),
                        e.load<uint8_t>(flow::entry::kProtocol)) == nullptr;
  });
}

// A flow follows its service's timeouts, also when they change (as every flow follows the global
// ones); a removed service's flows go back to the global timeouts. One scan of the map, only when a
// service's profile changed.
void Engine::moveFlowsToTheirTimeoutProfiles(const ServiceTable& previous, const ServiceTable& current) {
  const auto profileIn = [](const ServiceTable& table, uint32_t vip, uint16_t port, uint8_t protocol) {
    const Service* s = table.find(vip, port, protocol);
    return s != nullptr ? s->timeouts.profile : flow::kGlobalTimeoutProfile;
  };
  const auto movedFrom = [&](const ServiceTable& from, const ServiceTable& to) {
    return std::any_of(from.services().begin(), from.services().end(), [&](const SharedService& s) {
      return profileIn(to, s->vip, s->port, s->protocol) != s->timeouts.profile;
    });
  };
  if (!movedFrom(previous, current) && !movedFrom(current, previous)) return;
  context_.flows.reassignTimeoutProfiles([&](const flow::FlowEntry& e) {
    return profileIn(current, e.load<uint32_t>(flow::entry::kVip), e.load<uint16_t>(flow::entry::kVport), e.load<uint8_t>(flow::entry::kProtocol));
  });
}

void Engine::refreshSelections() {
  const auto services = context_.services.load();
  for (auto& worker : workers_) {
    for (const auto& receiver : worker->receivers()) receiver->replaceSelection(selectionFor(receiver->interface(), *services));
  }
}

void Engine::setRoutes(std::vector<Route> routes) {
  std::lock_guard control(controlMutex_);
  if (routes == routes_) return;  // the control plane re-sends the same routes every few seconds
  routes_ = routes;
  const auto table = std::make_shared<const RouteTable>(std::move(routes));
  context_.routes.store(table, std::memory_order_release);
  if (kernelOffload_) kernelOffload_->publishRoutes(*table, context_);
  withdrawFlowsWithOtherNextHops(*table);
}

// An offloaded flow's next hops were fixed at the hand-over: when a route change moves them, the flow
// goes back to user space, which follows the routes for every frame.
void Engine::withdrawFlowsWithOtherNextHops(const RouteTable& routes) {
  if (!kernelOffload_) return;
  context_.flows.withdrawOffloaded([&](const flow::FlowEntry& e) {
    const auto towardsReal = routes.lookup(e.load<uint32_t>(flow::entry::kRealIp));
    const auto towardsClient = routes.lookup(e.load<uint32_t>(flow::entry::kClientIp));
    return !towardsReal || !kernelOffload_->usesNextHops(e, *towardsReal, towardsClient);
  });
}

void Engine::setLocalAddresses(std::vector<uint32_t> addresses) {
  std::lock_guard control(controlMutex_);
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  if (addresses == localAddresses_) return;
  localAddresses_ = std::move(addresses);
  refreshSelections();
}

void Engine::learnNeighbours(const std::vector<NeighbourEntry>& neighbours) {
  const uint64_t nowMs = monotonicMs();
  for (const NeighbourEntry& n : neighbours) context_.neighbours.learn(n.ip, n.mac, n.ifindex, NeighbourSource::KernelTable, nowMs);
}

void Engine::setTimeouts(const TimeoutSeconds& t) { context_.timeouts.set(flow::kGlobalTimeoutProfile, flow::secondsByState(t)); }

std::array<uint64_t, size_t(Counter::Count)> Engine::counters() const {
  std::array<uint64_t, size_t(Counter::Count)> out{};
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = context_.counters.get(Counter(i));  // the housekeeper's
    for (const auto& worker : workers_) out[i] += worker->counters().get(Counter(i));
  }
  if (kernelOffload_) {
    const kernel_forwarding_totals totals = kernelOffload_->totals();
    out[size_t(Counter::KernelForwardedPackets)] += totals.packets;
    out[size_t(Counter::KernelForwardedBytes)] += totals.bytes;
    out[size_t(Counter::KernelEventRingFull)] += totals.events_lost;
  }
  if (replyClaims_) {
    out[size_t(Counter::ReplyClaimSignals)] += replyClaims_->signalsSent();
    out[size_t(Counter::ReplyClaimSignalErrors)] += replyClaims_->signalErrors();
  }
  return out;
}

std::vector<RealTraffic> Engine::realTraffic(const std::vector<uint16_t>& realIds) const {
  std::vector<const RealStatsBlock*> blocks;
  for (const auto& worker : workers_) blocks.push_back(&worker->realStats());
  std::vector<RealTraffic> out;
  out.reserve(realIds.size());
  for (const uint16_t id : realIds) out.push_back(context_.realStats.sum(id, blocks));
  return out;
}

uint64_t Engine::kernelFastPathFlows() {
  std::lock_guard control(controlMutex_);
  return kernelOffload_ ? kernelOffload_->liveFlows() : 0;
}

Engine::KernelFastPathState Engine::kernelFastPathState() {
  std::lock_guard control(controlMutex_);
  if (!kernelOffload_) return {false, kernelFastPathUnavailable_};
  return {true, kernelFastPathUnavailable_, kernelOffload_->publishedServices(), kernelOffload_->schedulingEnabled()};
}

void Engine::setKernelScheduling(bool allowed) {
  kernelSchedulingAllowed_.store(allowed);
  std::lock_guard control(controlMutex_);
  gateKernelScheduling();
}

WorkerThreads Engine::workerThreadsInUse() {
  std::lock_guard control(controlMutex_);
  return workerThreadsInUse_;
}

std::vector<Engine::XdpState> Engine::xdpStates() {
  std::lock_guard control(controlMutex_);
  std::vector<XdpState> states;
  for (const auto& worker : workers_) {
    for (const auto& receiver : worker->receivers()) {
      if (const io::XdpReceiver* xdp = receiver->xdp()) states.push_back({receiver->interface().name, xdp->mode(), xdp->queueCount()});
    }
  }
  return states;
}

void Engine::collectRingStatistics() {
  for (auto& worker : workers_) {
    for (const auto& receiver : worker->receivers()) {
      const io::RingStatistics stats = receiver->takeStatistics();
      if (stats.drops) context_.counters.add(Counter::RingDrops, stats.drops);
    }
  }
}

// The kernel schedules new connections only on the master, and not while half-open connections pile up
// (a SYN flood) or the flow map is nearly full: those SYNs go to user space, where the flow map's flood
// defences see each one as it comes (and a full map refuses it before it reaches a real). It opens
// again once both are down to half of that. The housekeeper and the control plane call it; the
// offload outlives both (stop() joins the housekeeper before it drops the offload).
void Engine::gateKernelScheduling() {
  if (!kernelOffload_) return;
  const uint32_t capacity = context_.flows.capacity();
  const uint32_t halfOpen = context_.flows.halfOpenFlows();
  const uint32_t closeAt = std::max<uint32_t>(kKernelSchedulingMinHalfOpen, capacity / 64);
  const uint32_t freeRoom = capacity - std::min(capacity, context_.flows.liveFlows());
  const uint32_t keepFree = capacity / 16;
  if (halfOpen >= closeAt || freeRoom <= keepFree) kernelSchedulingOpen_.store(false);
  else if (halfOpen < closeAt / 2 && freeRoom > 2 * keepFree) kernelSchedulingOpen_.store(true);
  kernelOffload_->enableScheduling(kernelSchedulingAllowed_.load() && kernelSchedulingOpen_.load() &&
                                   context_.gatewayRole.load() == GatewayRole::Master);
}

void Engine::setGatewayRole(GatewayRole role, TakeoverAnnouncement announcement) {
  const GatewayRole before = context_.gatewayRole.exchange(role);
  {
    std::lock_guard control(controlMutex_);
    gateKernelScheduling();
  }
  if (role == GatewayRole::Master && before != GatewayRole::Master) {
    takeoverIntervalMs_.store(announcement.intervalMs);
    takeoverRoundsLeft_.store(announcement.rounds);
  } else if (role != GatewayRole::Master) {
    takeoverRoundsLeft_.store(0);
  }
  wake_.notify_all();
}

// Only the master announces: a backup's announcement would take the VIPs from it.
void Engine::announceVips(SenderSet& senders) {
  if (context_.gatewayRole.load() != GatewayRole::Master) return;
  const auto services = context_.services.load();
  for (const InterfaceConfig& interface : context_.interfaces) {
    if (interface.role != InterfaceRole::Client) continue;
    io::FrameSender* sender = senders.find(interface.ifindex);
    for (uint32_t vip : services->vips()) {
      if (sender == nullptr || interface.addressFacing(vip) == 0) continue;
      uint8_t frame[packet::kArpFrameLength];
      packet::buildArp(frame, packet::kBroadcastMac, packet::gratuitousArp(vip, interface.mac));
      if (sender->sendNow(frame, sizeof frame)) context_.counters.add(Counter::GratuitousArpSent);
    }
  }
}

// Asks for the MAC of every real server's next hop before the first SYN needs it.
void Engine::resolveNextHops(SenderSet& senders, uint64_t nowMs) {
  const auto services = context_.services.load();
  const auto routes = context_.routes.load();
  std::set<uint32_t> asked;
  for (const SharedService& service : services->services()) {
    for (const flow::RealEndpoint& real : service->reals) {
      const auto hop = routes->lookup(real.ip);
      if (!hop || !asked.insert(hop->ip).second) continue;
      const InterfaceConfig* egress = context_.interfaceByIndex(hop->ifindex);
      io::FrameSender* sender = senders.find(hop->ifindex);
      if (egress == nullptr || sender == nullptr) continue;
      const bool known = context_.neighbours.find(hop->ip).has_value();
      if (!context_.neighbours.claimRequest(hop->ip, nowMs, known ? kNextHopRefreshMs : kNextHopRetryMs)) continue;
      uint8_t frame[packet::kArpFrameLength];
      packet::buildArp(frame, packet::kBroadcastMac,
                       packet::arpRequestFor(hop->ip, egress->addressFacing(hop->ip), egress->mac));
      if (sender->sendNow(frame, sizeof frame)) context_.counters.add(Counter::ArpRequestsSent);
    }
  }
}

void Engine::endFlowsOf(std::vector<DeadReal> reals) {
  {
    std::lock_guard lock(deadRealsMutex_);
    for (DeadReal& real : reals) deadReals_.push_back(real);
  }
  wake_.notify_all();
}

// Ends the flows of reals that went down or were removed (deadRealFlows "drop" or "reset"): a UDP
// client's next datagram then makes a new flow to a live real; a reset tells both ends of a TCP
// connection at once instead of letting them time out.
void Engine::endPendingDeadRealFlows(SenderSet& senders) {
  std::vector<DeadReal> reals;
  {
    std::lock_guard lock(deadRealsMutex_);
    reals.swap(deadReals_);
  }
  if (reals.empty()) return;
  using namespace flow::entry;
  std::vector<PendingReset> resets;
  size_t withoutSequence = 0;
  const auto deadRealOf = [&](const flow::FlowEntry& e) -> const DeadReal* {
    for (const DeadReal& real : reals) {
      if (e.load<uint32_t>(kRealIp) == real.realIp && e.load<uint16_t>(kRealPort) == real.realPort &&
          e.load<uint32_t>(kVip) == real.vip && e.load<uint16_t>(kVport) == real.port &&
          e.load<uint8_t>(kProtocol) == real.protocol) {
        return &real;
      }
    }
    return nullptr;
  };
  const size_t ended = context_.flows.removeWhere(
      // Templates are no flows: the next connection of their client finds the real gone and moves.
      [&](const flow::FlowEntry& e) { return !(e.flags() & flow::flags::kTemplate) && deadRealOf(e) != nullptr; },
      [&](const flow::FlowEntry& e) {
        if (!deadRealOf(e)->reset || e.load<uint8_t>(kProtocol) != packet::kProtocolTcp) return;
        // Each reset carries what its receiver expects next from the other side. A direct-routing flow
        // keeps, as the real's side, what the client acknowledged (flow_layout.h): the client's rcv_nxt.
        const flow::TcpSide client = flow::readSide(e, flow::Direction::FromClient);
        const flow::TcpSide real = flow::readSide(e, flow::Direction::FromReal);
        const uint32_t clientIp = e.load<uint32_t>(kClientIp);
        const uint32_t realIp = e.load<uint32_t>(kRealIp);
        if (real.seen) {
          resets.push_back({{e.load<uint32_t>(kVip), e.load<uint16_t>(kVport), clientIp, e.load<uint16_t>(kClientPort), real.sequenceEnd},
                            clientIp});
        } else {
          ++withoutSequence;
        }
        if (!client.seen) {
          ++withoutSequence;
        } else if (e.flags() & flow::flags::kDirectRouting) {
          // The real holds the VIP: the reset comes as the client's frames do, client -> VIP:port,
          // delivered to the real's MAC.
          resets.push_back({{clientIp, e.load<uint16_t>(kClientPort), e.load<uint32_t>(kVip), e.load<uint16_t>(kVport), client.sequenceEnd},
                            realIp});
        } else {
          // From whom the real knows its peer: the client, or natlb's local address and port (full NAT).
          const flow::ReplyDestination peer = flow::replyDestinationOf(e);
          resets.push_back({{peer.ip, peer.port, realIp, e.load<uint16_t>(kRealPort), client.sequenceEnd}, realIp});
        }
      });
  context_.counters.add(Counter::DeadRealFlowsEnded, ended);
  context_.counters.add(Counter::TcpResetsWithoutSequence, withoutSequence);
  for (const PendingReset& reset : resets) sendReset(senders, reset);
}

void Engine::sendReset(SenderSet& senders, const PendingReset& reset) {
  const auto routes = context_.routes.load();
  const auto hop = routes->lookup(reset.towards);
  const InterfaceConfig* egress = hop ? context_.interfaceByIndex(hop->ifindex) : nullptr;
  io::FrameSender* sender = egress ? senders.find(egress->ifindex) : nullptr;
  const auto mac = hop ? context_.neighbours.find(hop->ip) : std::nullopt;
  if (sender == nullptr || !mac) {
    context_.counters.add(Counter::DropNoNeighbour);
    return;
  }
  uint8_t frame[packet::kTcpResetFrameLength];
  const size_t length = packet::buildTcpReset(frame, reset.frame);
  std::memcpy(frame, mac->data(), 6);
  std::memcpy(frame + 6, egress->mac.data(), 6);
  context_.counters.add(sender->sendNow(frame, length) ? Counter::TcpResetsSent : Counter::DropTxError);
}

void Engine::refreshMtus() {
  for (size_t i = 0; i < context_.interfaces.size(); ++i) {
    context_.mtus[i].store(io::interfaceMtu(context_.interfaces[i].name), std::memory_order_relaxed);
  }
}

void Engine::housekeep() {
  SenderSet senders(context_.interfaces, false, SenderSet::Claims::Nothing);
  uint64_t mtusReadMs = 0;
  while (context_.running.load(std::memory_order_acquire)) {
    const uint64_t nowMs = monotonicMs();
    if (nowMs >= mtusReadMs + kMtuRefreshMs) {
      refreshMtus();
      mtusReadMs = nowMs;
    }
    if (announcePending_.exchange(false)) announceVips(senders);
    if (takeoverRoundsLeft_.load() > 0 && nowMs >= nextTakeoverRoundMs_) {
      takeoverRoundsLeft_.fetch_sub(1);
      nextTakeoverRoundMs_ = nowMs + takeoverIntervalMs_.load();
      announceVips(senders);
    }
    resolveNextHops(senders, nowMs);
    endPendingDeadRealFlows(senders);
    context_.flows.sweep(nowMs, context_.timeouts, kSweepBudget);
    gateKernelScheduling();  // kernelOffload_ outlives this thread (stop() joins it first)
    context_.flows.publishClock(nowMs);
    collectRingStatistics();
    std::unique_lock lock(wakeMutex_);
    const auto period = takeoverRoundsLeft_.load() > 0
                            ? std::min<std::chrono::milliseconds>(kHousekeepingPeriod, std::chrono::milliseconds(std::max<int64_t>(1, int64_t(nextTakeoverRoundMs_) - int64_t(monotonicMs()))))
                            : kHousekeepingPeriod;
    wake_.wait_for(lock, period, [this] {
      if (!context_.running.load() || announcePending_.load()) return true;
      if (takeoverRoundsLeft_.load() > 0 && monotonicMs() >= nextTakeoverRoundMs_) return true;
      std::lock_guard pending(deadRealsMutex_);
      return !deadReals_.empty();
    });
  }
}

}  // namespace natlb::engine
