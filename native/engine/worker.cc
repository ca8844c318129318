#include "worker.h"

#include <algorithm>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <ctime>

#include "../flow/tcp_state.h"
#include "../flow/kernel_keys.h"
#include "../flow/tcp_tracking.h"
#include "../packet/arp.h"
#include "../packet/checksum_state.h"
#include "../packet/ethernet_addresses.h"
#include "../packet/icmp.h"
#include "../packet/nat_rewrite.h"
#include "../packet/tcp_header.h"
#include "kernel_scheduled_flows.h"
#include "persistent_scheduling.h"
#include "../sync/flow_records.h"

namespace natlb::engine {

using packet::ChecksumMode;
using packet::Ipv4FrameView;

uint64_t monotonicMs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return uint64_t(now.tv_sec) * 1000 + uint64_t(now.tv_nsec) / 1000000;
}

namespace {

constexpr size_t kBatch = 64;
constexpr int kIdleWaitMs = 100;  // bounds how long stop() waits for an idle worker
constexpr int kHeldFramesWaitMs = 2;
// With the kernel fast path the worker also reads the events of the flows the kernel schedules, which
// wake nobody: at every batch, and at least this often when no frame comes.
constexpr int kKernelEventsWaitMs = 10;
constexpr uint64_t kArpRequestIntervalMs = 1000;

ChecksumMode checksumModeOf(const io::ReceivedFrame& frame) {
  return (frame.vnet->flags & io::kVnetNeedsChecksum) ? ChecksumMode::Partial : ChecksumMode::Complete;
}

bool isConnectionOpening(uint8_t tcpFlags) {
  return (tcpFlags & packet::kTcpSyn) && !(tcpFlags & (packet::kTcpAck | packet::kTcpRst));
}

}  // namespace

Worker::Worker(EngineContext& context, std::vector<std::unique_ptr<InterfaceReceiver>> receivers)
    : context_(context),
      receivers_(std::move(receivers)),
      senders_(context.interfaces, context.coalesceTcp, SenderSet::Claims::Replies),
      directSenders_(context.interfaces, context.coalesceTcp, SenderSet::Claims::Nothing),
      neighbours_(context.neighbours),
      flowReader_(context.flows.registerReader()),
      syncEvents_(context.syncEvents.acquire()),
      random_(0x9e3779b97f4a7c15ULL ^ (uint64_t(receivers_.front()->interface().ifindex) << 32) ^ monotonicMs()) {}

// The next frame, from the receivers in turn; `current_` becomes the one it came from.
bool Worker::nextFrame(io::ReceivedFrame& frame) {
  for (size_t tried = 0; tried < receivers_.size(); ++tried) {
    nextReceiver_ = (nextReceiver_ + 1) % receivers_.size();
    InterfaceReceiver& receiver = *receivers_[nextReceiver_];
    if (receiver.next(frame)) {
      current_ = &receiver;
      return true;
    }
  }
  return false;
}

void Worker::waitForFrames(int timeoutMs) {
  pollDescriptors_.clear();
  for (const auto& receiver : receivers_) receiver->addPollDescriptors(pollDescriptors_);
  if (::poll(pollDescriptors_.data(), nfds_t(pollDescriptors_.size()), timeoutMs) <= 0) return;
  // A ring whose interface went down or away reports ENETDOWN once; poll() would report it again at
  // once, forever, until it is read. (Its frames come again when the interface is up.)
  for (const pollfd& descriptor : pollDescriptors_) {
    if ((descriptor.revents & POLLERR) == 0) continue;
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(descriptor.fd, SOL_SOCKET, SO_ERROR, &error, &length);
    counters_.add(Counter::RingErrors);
  }
}

Worker::~Worker() {
  join();
  context_.flows.unregisterReader(flowReader_);
  if (syncEvents_ != nullptr) context_.syncEvents.release(syncEvents_);
}

void Worker::start() { thread_ = std::thread([this] { run(); }); }

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

uint64_t Worker::nextRandom() {  // xorshift64*
  random_ ^= random_ >> 12;
  random_ ^= random_ << 25;
  random_ ^= random_ >> 27;
  return random_ * 0x2545f4914f6cdd1dULL;
}

void Worker::run() {
  while (context_.running.load(std::memory_order_acquire)) {
    // Flow refs taken in this batch stay valid until it ends: the flow map reuses no entry freed meanwhile.
    context_.flows.enterBatch(flowReader_);
    services_ = context_.services.load(std::memory_order_acquire);
    routes_ = context_.routes.load(std::memory_order_acquire);
    nowMs_ = monotonicMs();
    gatewayRole_ = context_.gatewayRole.load(std::memory_order_relaxed);
    // Before the frames: a RST of a flow the kernel scheduled finds it in the map.
    if (context_.kernelOffload != nullptr) readKernelEvents();
    io::ReceivedFrame frame{};
    size_t handled = 0;
    while (handled < kBatch * receivers_.size() && nextFrame(frame)) {
      handle(frame);
      ++handled;
    }
    if (!awaitingNeighbour_.empty()) resolveHeldFrames();
    flushSenders();  // the queued frames point into ring slots: send before releasing them
    awaitingNeighbour_.finishSent();
    originatedUsed_ = 0;
    if (handled == 0) {
      context_.flows.leaveBatch(flowReader_);
      // Held frames wait for an ARP reply that another worker may receive: look again soon.
      waitForFrames(!awaitingNeighbour_.empty() ? kHeldFramesWaitMs : context_.kernelOffload != nullptr ? kKernelEventsWaitMs : kIdleWaitMs);
      continue;
    }
    for (auto& receiver : receivers_) receiver->releaseTaken();
  }
  context_.flows.leaveBatch(flowReader_);
}

void Worker::flushSenders() {
  const auto flush = [this](io::FrameSender& sender) {
    const io::FrameSender::FlushResult result = sender.flush();
    if (result.sent) {
      counters_.add(Counter::TxFrames, result.sent);
      counters_.add(Counter::TxBytes, result.bytes);
    }
    if (result.failed) counters_.add(Counter::DropTxError, result.failed);
    if (result.coalesced) counters_.add(Counter::TxCoalescedSegments, result.coalesced);
  };
  senders_.forEach(flush);
  directSenders_.forEach(flush);
}

void Worker::handle(const io::ReceivedFrame& frame) {
  counters_.add(Counter::RxFrames);
  counters_.add(Counter::RxBytes, frame.length);
  if (frame.steeredByXdp) counters_.add(Counter::RxSteeredFrames);
  if (frame.truncated || frame.length < packet::kEthernetHeaderLength) {
    counters_.add(Counter::DropTruncated);
    return;
  }
  if (frame.markedForOtherHost && std::memcmp(frame.frame, arrivedOn().mac.data(), 6) != 0) {
    counters_.add(Counter::Ignored);  // seen only because the interface is promiscuous
    return;
  }
  if (frame.vlanTagged) {
    counters_.add(Counter::DropVlan);
    return;
  }
  switch (packet::etherType(frame.frame)) {
    case packet::kEtherTypeArp:
      handleArp(frame);
      return;
    case packet::kEtherTypeIPv4:
      handleIpv4(frame);
      return;
    default:
      counters_.add(Counter::Ignored);
  }
}

// Neighbours are learned only from replies to natlb's own requests (and from the kernel's table, which
// the control plane passes on): an unsolicited reply, a gratuitous announcement or a frame with a forged
// source cannot redirect traffic meant for another host.
void Worker::handleArp(const io::ReceivedFrame& frame) {
  const auto message = packet::parseArp(frame.frame, frame.length);
  if (!message) {
    counters_.add(Counter::Ignored);
    return;
  }
  if (message->operation == packet::ArpOperation::Reply) {
    const uint32_t ourIp = arrivedOn().addressFacing(message->senderIp);
    const bool answersUs = ourIp != 0 && message->targetIp == ourIp && message->targetMac == arrivedOn().mac &&
                           context_.neighbours.awaitsReply(message->senderIp, nowMs_);
    if (answersUs) {
      context_.neighbours.learn(message->senderIp, message->senderMac, arrivedOn().ifindex, NeighbourSource::OwnArpReply, nowMs_);
      counters_.add(Counter::ArpRepliesLearned);
    } else {
      counters_.add(Counter::ArpIgnored);
    }
    return;
  }
  const bool askingForVip = message->operation == packet::ArpOperation::Request &&
                            message->senderIp != message->targetIp &&
                            arrivedOn().role == InterfaceRole::Client &&
                            arrivedOn().addressFacing(message->targetIp) != 0 &&
                            isVip(message->targetIp);
  if (!askingForVip) {
    counters_.add(Counter::ArpIgnored);
    return;
  }
  // Only the master claims the VIPs: a backup answering too would split the clients between the two.
  if (gatewayRole_ != GatewayRole::Master) {
    counters_.add(Counter::ArpSilentNotMaster);
    return;
  }
  uint8_t reply[packet::kArpFrameLength];
  packet::buildArp(reply, message->senderMac, packet::arpReplyTo(*message, arrivedOn().mac));
  io::FrameSender* sender = senders_.find(arrivedOn().ifindex);
  if (sender != nullptr && sender->sendNow(reply, sizeof reply)) {
    counters_.add(Counter::ArpRepliesSent);
  } else {
    counters_.add(Counter::DropTxError);
  }
  // Its connection's replies will need its MAC: ask for it now, rather than trusting the request.
  if (sender != nullptr && arrivedOn().addressFacing(message->senderIp) != 0 && !neighbours_.find(message->senderIp)) {
    askForNeighbour(message->senderIp, arrivedOn(), *sender);
  }
}

bool Worker::isVip(uint32_t ip) const {
  return std::binary_search(services_->vips().begin(), services_->vips().end(), ip);
}

void Worker::handleIcmp(const io::ReceivedFrame& frame) {
  const auto icmp = packet::parseIcmp(frame.frame, frame.length);
  const uint32_t destination = packet::load32(frame.frame + packet::kEthernetHeaderLength + 16);
  const bool toVip = isVip(destination);
  if (!icmp) {
    counters_.add(toVip ? Counter::DropMalformed : Counter::Ignored);
    return;
  }
  if (toVip && icmp->type == packet::kIcmpEchoRequest && arrivedOn().role == InterfaceRole::Client) {
    packet::turnIntoEchoReply(*icmp);
    frame.vnet->flags = 0;
    frame.vnet->gsoType = 0;
    counters_.add(Counter::IcmpEchoReplies);
    transmit(frame, packet::load32(icmp->frame + icmp->l3Offset + 16));
    return;
  }
  const auto quoted = packet::isIcmpError(icmp->type) ? packet::quotedPacket(*icmp) : std::nullopt;
  if (!quoted) {
    counters_.add(toVip ? Counter::DropNoService : Counter::Ignored);
    return;
  }
  uint32_t nextHopFor = 0;
  if (toVip) {
    // It quotes VIP:vport -> client:cport: the flow names the real server.
    const flow::ForwardKey key{quoted->protocol, quoted->destination, quoted->destinationPort, quoted->source,
                               quoted->sourcePort};
    const uint32_t ref = context_.flows.findForward(key);
    if (ref == 0) {
      counters_.add(Counter::DropNoFlow);
      return;
    }
    const flow::FlowEntry entry = context_.flows.entryAt(ref);
    const flow::RealEndpoint real = entry.real();
    if (entry.flags() & flow::flags::kDirectRouting) {
      // The real holds the VIP too: it gets the error as it came, like the flow's own frames.
      counters_.add(Counter::IcmpErrorsToReal);
      transmitDirect(frame, real.ip);
      return;
    }
    packet::IcmpTranslation translation{0, real.ip, packet::QuotedSide::Source, real.ip, real.port};
    if (entry.flags() & flow::flags::kFullNat) {
      // The real sent RIP:rport -> local:lport: the error reaches it from natlb's local address (DPVS).
      const flow::ReplyDestination local = flow::replyDestinationOf(entry);
      translation.outerSource = local.ip;
      translation.otherIp = local.ip;
      translation.otherPort = local.port;
    }
    if (!packet::translateIcmpError(*icmp, *quoted, translation)) {
      counters_.add(Counter::DropTtlExpired);
      return;
    }
    counters_.add(Counter::IcmpErrorsToReal);
    nextHopFor = real.ip;
  } else {
    // From the backend side, quoting client:cport -> RIP:rport: the client must see VIP:vport.
    const flow::ReverseKey key{quoted->protocol, quoted->destination, quoted->destinationPort, quoted->source,
                               quoted->sourcePort};
    const uint32_t ref = arrivedOn().role == InterfaceRole::Backend ? context_.flows.findReverse(key) : 0;
    if (ref == 0) {
      counters_.add(Counter::Ignored);  // not about a NAT flow: the kernel forwards it
      return;
    }
    const flow::FlowEntry entry = context_.flows.entryAt(ref);
    const uint32_t vip = entry.load<uint32_t>(flow::entry::kVip);
    // The client only knows the VIP: the error comes from it, whoever on the backend side sent it (IPVS).
    packet::IcmpTranslation translation{vip, 0, packet::QuotedSide::Destination, vip, entry.load<uint16_t>(flow::entry::kVport)};
    nextHopFor = destination;
    if (entry.flags() & flow::flags::kFullNat) {
      // It quotes local:lport -> RIP:rport and came to natlb's local address: the client's own packet,
      // client:cport -> VIP:vport, is what it must quote, and the client its destination.
      const uint32_t clientIp = entry.load<uint32_t>(flow::entry::kClientIp);
      translation.outerDestination = clientIp;
      translation.otherIp = clientIp;
      translation.otherPort = entry.load<uint16_t>(flow::entry::kClientPort);
      nextHopFor = clientIp;
    }
    if (!packet::translateIcmpError(*icmp, *quoted, translation)) {
      counters_.add(Counter::DropTtlExpired);
      return;
    }
    counters_.add(Counter::IcmpErrorsToClient);
  }
  frame.vnet->flags = 0;
  frame.vnet->gsoType = 0;
  transmit(frame, nextHopFor);
}

void Worker::handleIpv4(const io::ReceivedFrame& frame) {
  if (frame.length >= packet::kEthernetHeaderLength + packet::kIPv4MinHeaderLength &&
      frame.frame[packet::kEthernetHeaderLength + 9] == packet::kProtocolIcmp) {
    handleIcmp(frame);
    return;
  }
  // Only what the kernel handed over (or XDP steered) is natlb's; anything else the rings let through
  // is the kernel's to forward.
  if (!frame.markedForOtherHost) {
    counters_.add(Counter::Ignored);
    return;
  }
  const packet::ParsedFrame parsed = packet::parseIpv4Frame(frame.frame, frame.length);
  if (parsed.error != packet::ParseError::None) {
    const bool toVip = frame.length >= packet::kEthernetHeaderLength + packet::kIPv4MinHeaderLength &&
                       isVip(packet::load32(frame.frame + packet::kEthernetHeaderLength + 16));
    if (parsed.error == packet::ParseError::Fragment) {
      forwardLaterFragment(frame, toVip);
    } else if (parsed.error == packet::ParseError::UnsupportedProtocol && toVip) {
      counters_.add(Counter::DropNoService);
    } else {
      counters_.add(Counter::DropMalformed);
    }
    return;
  }
  const Ipv4FrameView& view = parsed.view;
  if (frame.steeredByXdp) settleChecksumState(frame, view);
  if (const Service* service = services_->find(view.destinationIp(), view.destinationPort(), view.protocol)) {
    // A backup forwards what still reaches it (a stale ARP entry): its flow map has the synced flows.
    if (gatewayRole_ != GatewayRole::Master) counters_.add(Counter::VipFramesNotMaster);
    forwardToReal(frame, view, *service);
    return;
  }
  const flow::ReverseKey reverse{view.protocol, view.sourceIp(), view.sourcePort(), view.destinationIp(),
                                 view.destinationPort()};
  if (const uint32_t ref = context_.flows.findReverse(reverse)) {
    replyToClient(frame, view, ref);
    return;
  }
  // To a VIP on a port no service has; or a reply whose flow has just gone (the kernel's claim on it
  // goes with the flow).
  counters_.add(isVip(view.destinationIp()) ? Counter::DropNoService : Counter::DropNoFlow);
}

// AF_XDP frames come without a virtio-net header: tell a partial checksum from a complete one, so the
// rewrite adjusts the right thing and the sender lets the kernel finish a partial one.
void Worker::settleChecksumState(const io::ReceivedFrame& frame, const Ipv4FrameView& view) {
  if (const auto partial = packet::partialChecksumOf(view)) {
    frame.vnet->flags = io::kVnetNeedsChecksum;
    frame.vnet->checksumStart = partial->start;
    frame.vnet->checksumOffset = partial->offset;
  }
}

void Worker::rememberIfFirstFragment(const Ipv4FrameView& view, FragmentTarget target) {
  const uint8_t* ip = view.ip();
  if ((ip[6] & 0x20) == 0) return;  // more-fragments clear: a whole datagram
  fragments_.remember({view.sourceIp(), view.destinationIp(), packet::load16(ip + 4), view.protocol}, target, nowMs_);
}

void Worker::forwardLaterFragment(const io::ReceivedFrame& frame, bool toVip) {
  const uint8_t* ip = frame.frame + packet::kEthernetHeaderLength;
  const FragmentKey key{packet::load32(ip + 12), packet::load32(ip + 16), packet::load16(ip + 4), ip[9]};
  const FragmentTarget target = fragments_.find(key, nowMs_);
  const uint32_t rewritten = target.ip;
  if (rewritten == 0) {
    // Before its first fragment (or its entry was overwritten): without the first fragment the
    // datagram cannot be matched.
    counters_.add(Counter::DropFragment);
    return;
  }
  if (target.addressKept) {
    counters_.add(Counter::FragmentsForwarded);
    transmitDirect(frame, rewritten);
    return;
  }
  if (target.fullNatSource != 0) {
    if (packet::rewriteFragmentAddresses(frame.frame, target.fullNatSource, rewritten) != packet::RewriteError::None) {
      counters_.add(Counter::DropTtlExpired);
      return;
    }
    counters_.add(Counter::FragmentsForwarded);
    transmit(frame, rewritten);
    return;
  }
  const auto field = toVip ? packet::AddressField::Destination : packet::AddressField::Source;
  if (packet::rewriteFragmentAddress(frame.frame, field, rewritten) != packet::RewriteError::None) {
    counters_.add(Counter::DropTtlExpired);
    return;
  }
  counters_.add(Counter::FragmentsForwarded);
  transmit(frame, toVip ? rewritten : key.destination);
}

// What the flow's TCP tracking makes of a segment (flow/tcp_window.h); nullopt: a malformed TCP header.
// A RST or FIN of an offloaded flow is judged against what the kernel forwarded since the hand-over.
std::optional<flow::SegmentVerdict> Worker::trackTcp(const flow::FlowEntry& entry, const Ipv4FrameView& view,
                                                     flow::Direction direction) {
  const auto segment = packet::readTcpHeader(view);
  if (!segment) return std::nullopt;
  if (segment->flags & (packet::kTcpRst | packet::kTcpFin)) context_.flows.refreshFromKernel(entry);
  const flow::Direction other = direction == flow::Direction::FromClient ? flow::Direction::FromReal : flow::Direction::FromClient;
  const flow::TcpSide sender = flow::readSide(entry, direction);
  const flow::TcpSide receiver = flow::readSide(entry, other);
  const flow::SegmentVerdict verdict =
      flow::judgeSegment(sender, receiver, *segment, (entry.flags() & flow::flags::kMidStreamStart) != 0);
  if (verdict == flow::SegmentVerdict::Track) flow::writeSide(entry, direction, flow::afterSegment(sender, receiver, *segment));
  else flow::writeUntrackedSide(entry, direction, flow::afterUntrackedSegment(sender, *segment));
  return verdict;
}

// Judges a frame of a flow before it is forwarded: false when it must be dropped (counted).
bool Worker::admit(const flow::FlowEntry& entry, const Ipv4FrameView& view, flow::Direction direction,
                   flow::SegmentVerdict& verdict) {
  verdict = flow::SegmentVerdict::Track;
  if (view.protocol != packet::kProtocolTcp) return true;
  if (entry.flags() & flow::flags::kDirectRouting) {
    // No window tracking: it needs both sides, and a direct-routing flow shows natlb the client's only.
    // What a reset would need is kept (flow/tcp_tracking.h: trackClientOnly).
    const auto segment = packet::readTcpHeader(view);
    if (segment) {
      flow::trackClientOnly(entry, *segment);
      return true;
    }
    counters_.add(Counter::DropMalformed);
    return false;
  }
  const auto judged = trackTcp(entry, view, direction);
  if (!judged) {
    counters_.add(Counter::DropMalformed);
    return false;
  }
  verdict = *judged;
  if (verdict == flow::SegmentVerdict::OutOfWindow) {
    counters_.add(Counter::DropOutOfWindow);
    return false;
  }
  if (verdict == flow::SegmentVerdict::PassOnly) counters_.add(Counter::TcpUntracked);
  return true;
}

// Advances the TCP state (tracked segments only), the per-direction counters and the flow's standing
// (assured or not) for one frame.
void Worker::recordPacket(const flow::FlowEntry& entry, const Ipv4FrameView& view, flow::Direction direction,
                          flow::SegmentVerdict verdict) {
  const bool fromClient = direction == flow::Direction::FromClient;
  uint16_t flowFlags = entry.flags();
  if (!fromClient && !(flowFlags & flow::flags::kSeenReply)) flowFlags = entry.setFlags(flow::flags::kSeenReply);
  if (view.protocol == packet::kProtocolTcp && verdict == flow::SegmentVerdict::Track) {
    const uint8_t tcpFlags = view.tcpFlags();
    if (tcpFlags & packet::kTcpFin) flowFlags = entry.setFlags(fromClient ? flow::flags::kClientFin : flow::flags::kRealFin);
    const flow::FlowState state = entry.state();
    const flow::FlowState next = (flowFlags & flow::flags::kDirectRouting)
                                     ? flow::advanceInputOnlyTcpState(state, tcpFlags)
                                     : flow::advanceTcpState(state, flowFlags, direction, tcpFlags).state;
    if (next > state) {
      context_.flows.raiseState(entry, next);
      syncFlow(entry);
    }
  }
  if (entry.load<uint64_t>(flow::entry::kLastSeenMs) != nowMs_) entry.store<uint64_t>(flow::entry::kLastSeenMs, nowMs_);
  const uint64_t ipBytes = view.l4Offset - view.l3Offset + view.l4Length;
  entry.add(fromClient ? flow::entry::kPacketsIn : flow::entry::kPacketsOut, 1);
  entry.add(fromClient ? flow::entry::kBytesIn : flow::entry::kBytesOut, ipBytes);
  const uint16_t realId = entry.load<uint16_t>(flow::entry::kRealId);
  realStats_.add(realId, fromClient ? RealStat::PacketsIn : RealStat::PacketsOut, 1);
  realStats_.add(realId, fromClient ? RealStat::BytesIn : RealStat::BytesOut, ipBytes);
  if ((flowFlags & flow::flags::kUnassured) &&
      flow::hasProvenItself(view.protocol, entry.state(), flowFlags, nowMs_ - entry.load<uint64_t>(flow::entry::kCreatedMs))) {
    context_.flows.assure(entry);
    if (flowFlags & flow::flags::kPickedUp) syncFlow(entry);  // held back until now (sync::goesToPeers)
  }
}

// The flows the kernel fast path scheduled since the last batch join the map (kernel_scheduled_flows.h),
// counted as the flows this worker schedules are.
void Worker::readKernelEvents() {
  context_.kernelOffload->readEvents([&](const kernel_flow_event& event) {
    const KernelEventResult result = applyKernelFlowEvent(event, *services_, context_.flows, *context_.kernelOffload, nowMs_);
    switch (result.outcome) {
      case KernelEventOutcome::Adopted: {
        const flow::FlowEntry entry = context_.flows.entryAt(result.ref);
        counters_.add(Counter::NewFlows);
        counters_.add(Counter::KernelScheduledFlows);
        realStats_.add(entry.load<uint16_t>(flow::entry::kRealId), RealStat::Connections, 1);
        syncFlow(entry);
        break;
      }
      case KernelEventOutcome::Advanced: syncFlow(context_.flows.entryAt(result.ref)); break;
      case KernelEventOutcome::Refused: counters_.add(Counter::KernelScheduledRefused); break;
      case KernelEventOutcome::Ignored: break;
    }
  });
}

// Tells the flow sync (when one runs) about a new flow or a state change: a relaxed load when none does,
// a copy into this worker's bounded queue when one does (a full queue drops, counted).
void Worker::syncFlow(const flow::FlowEntry& entry) {
  if (!context_.syncEvents.enabled.load(std::memory_order_relaxed) || !sync::goesToPeers(entry)) return;
  if (syncEvents_ == nullptr) {
    context_.syncEvents.unqueued.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  syncEvents_->push(sync::recordOf(entry));
}

// An established TCP flow whose next hops are on managed interfaces (both; a direct-routing flow's one,
// the real on its link) goes to the kernel fast path, once, after kHandOverAfterPackets (a direct-routing
// flow counts the client's alone): a short exchange ends before the hand-over would pay off. The
// frame in hand is still sent from here; segments already in the rings follow it, so the hand-over
// reorders at most those few.
void Worker::offloadIfEstablished(uint32_t ref, const flow::FlowEntry& entry) {
  constexpr uint64_t kHandOverAfterPackets = 16;
  if (context_.kernelOffload == nullptr || entry.state() != flow::FlowState::Established ||
      entry.load<uint64_t>(flow::entry::kPacketsIn) + entry.load<uint64_t>(flow::entry::kPacketsOut) < kHandOverAfterPackets ||
      entry.load<uint8_t>(flow::entry::kProtocol) != packet::kProtocolTcp ||
      // An unassured flow (picked up mid-stream, not proven yet) stays where the flood defences reach it.
      (entry.load<uint16_t>(flow::entry::kFlags) & (flow::flags::kOffloaded | flow::flags::kUserSpaceOnly | flow::flags::kUnassured))) {
    return;
  }
  const uint32_t realIp = entry.load<uint32_t>(flow::entry::kRealIp);
  const auto towardsReal = routes_->lookup(realIp);
  const auto towardsClient = routes_->lookup(entry.load<uint32_t>(flow::entry::kClientIp));
  const bool directRouting = (entry.flags() & flow::flags::kDirectRouting) != 0;
  if (!towardsReal || !context_.interfaceByIndex(towardsReal->ifindex) ||
      (directRouting ? towardsReal->ip != realIp : !towardsClient || !context_.interfaceByIndex(towardsClient->ifindex))) {
    return;  // user space forwards it (or counts why it cannot)
  }
  context_.flows.offload(ref, [&](const flow::FlowEntry& e) {
    // Under the flow map's lock, against the current services: a service removed since this batch
    // began has had its flows withdrawn (Engine::setServices), and this one must not slip in after.
    const auto services = context_.services.load(std::memory_order_acquire);
    if (!services->find(e.load<uint32_t>(flow::entry::kVip), e.load<uint16_t>(flow::entry::kVport),
                        e.load<uint8_t>(flow::entry::kProtocol))) {
      return false;
    }
    const bool handedOver = context_.kernelOffload->handOver(e, *towardsReal, towardsClient);
    counters_.add(handedOver ? Counter::FlowsOffloaded : Counter::OffloadRefused);
    return handedOver;
  });
}

void Worker::forwardToReal(const io::ReceivedFrame& frame, const Ipv4FrameView& view, const Service& service) {
  // A direct-routing frame is not routed here (its IP header is left as it came): no hop to count. In a
  // service with direct-routing reals the flow's mode says, below.
  if (!service.anyDirectRouting && !hasHopsLeft(frame, view)) return;
  const flow::ForwardKey key{view.protocol, view.sourceIp(), view.sourcePort(), view.destinationIp(),
                             view.destinationPort()};
  const uint8_t tcpFlags = view.tcpFlags();
  const bool isTcp = view.protocol == packet::kProtocolTcp;
  uint32_t ref = context_.flows.findForward(key);
  if (ref != 0 && isTcp && isConnectionOpening(tcpFlags) && flow::allowsReuse(context_.flows.entryAt(ref).state())) {
    context_.flows.remove(ref, nowMs_);
    ref = 0;
  }
  if (ref == 0) {
    // Behind ECMP a connection moves here mid-stream when another instance goes or comes back: the
    // consistent hash finds the real every instance picks. A lone RST creates nothing.
    const bool pickUp = isTcp && !isConnectionOpening(tcpFlags);
    if (pickUp && (!service.midStreamPickUp || (tcpFlags & packet::kTcpRst))) {
      counters_.add(Counter::DropNoFlow);
      return;
    }
    const ScheduledReal scheduled = scheduleReal(service, context_.flows, key, nowMs_, [&] {
      return pickReal(service, {view.sourceIp(), view.sourcePort()}, nextRandom(), context_.flows);
    });
    if (!scheduled.real) {
      counters_.add(scheduled.kind == PickOutcome::Kind::RealsFull ? Counter::DropRealsFull : Counter::DropNoReal);
      return;
    }
    const uint16_t mode = service.modeOf(*scheduled.real);
    const flow::LocalSourcePool pool = service.localSourcePool();
    flow::InsertRefusal refusal = flow::InsertRefusal::None;
    const flow::FlowState initial = !isTcp ? flow::FlowState::Udp : pickUp ? flow::FlowState::Established : flow::FlowState::SynRecv;
    ref = context_.flows.insert(key, *scheduled.real, initial, nowMs_,
                                service.timeouts.profile, scheduled.templateRef, mode, &pool, nextRandom(), &refusal);
    if (ref == 0) {
      // A full pool refuses like a full map: the client's SYN or datagram is dropped, nothing answered.
      counters_.add(refusal == flow::InsertRefusal::LocalPortsExhausted ? Counter::DropFullnatPortsExhausted
                                                                        : Counter::DropFlowTableFull);
      return;
    }
    if (pickUp) {
      context_.flows.entryAt(ref).setFlags(flow::flags::kMidStreamStart | flow::flags::kPickedUp);
      counters_.add(Counter::MidStreamPickUps);
    }
    counters_.add(Counter::NewFlows);
    realStats_.add(scheduled.real->id, RealStat::Connections, 1);
    syncFlow(context_.flows.entryAt(ref));
    // A DR flow's replies bypass natlb, but a reset to its client (deadRealFlows "reset") takes this way.
    primeNeighbour(view.sourceIp());
  }
  const flow::FlowEntry entry = context_.flows.entryAt(ref);
  if (entry.flags() & flow::flags::kDirectRouting) {
    forwardDirect(frame, view, ref, entry);
    return;
  }
  // A NAT flow to a real beside direct-routing ones, or from before its real became "dr": routed, so a hop.
  if (service.anyDirectRouting && !hasHopsLeft(frame, view)) return;
  const flow::RealEndpoint real = entry.real();
  if (!fitsEgress(frame, view, real.ip)) return;
  flow::SegmentVerdict verdict;
  if (!admit(entry, view, flow::Direction::FromClient, verdict)) return;
  recordPacket(entry, view, flow::Direction::FromClient, verdict);
  offloadIfEstablished(ref, entry);
  if (entry.flags() & flow::flags::kFullNat) {
    // The real sees natlb's local address and port as the client: it answers natlb by plain routing.
    const flow::ReplyDestination local = flow::replyDestinationOf(entry);
    rememberIfFirstFragment(view, {real.ip, false, local.ip});
    packet::rewriteBoth(view, local.ip, local.port, real.ip, real.port, checksumModeOf(frame));  // hasHopsLeft checked the TTL
  } else {
    rememberIfFirstFragment(view, {real.ip, false});
    packet::rewriteDestination(view, real.ip, real.port, checksumModeOf(frame));  // hasHopsLeft checked the TTL
  }
  counters_.add(Counter::ToReal);
  transmit(frame, real.ip);
}

// LVS-DR: the frame goes to its real as it came, but for the MACs (transmitDirect): the real holds the
// VIP and answers the client itself. Like IPVS's DR transmitter, natlb leaves the TTL alone: the frame
// is delivered on a link natlb is attached to, not routed (IPVS's director, for which the VIP is local,
// does not decrement it either), so the IP and L4 headers and their checksums stay exactly as sent.
void Worker::forwardDirect(const io::ReceivedFrame& frame, const Ipv4FrameView& view, uint32_t ref,
                           const flow::FlowEntry& entry) {
  const flow::RealEndpoint real = entry.real();
  if (!fitsEgress(frame, view, real.ip)) return;
  flow::SegmentVerdict verdict;
  if (!admit(entry, view, flow::Direction::FromClient, verdict)) return;
  recordPacket(entry, view, flow::Direction::FromClient, verdict);
  offloadIfEstablished(ref, entry);
  rememberIfFirstFragment(view, {real.ip, true});
  counters_.add(Counter::ToRealDirect);
  transmitDirect(frame, real.ip);
}

// Sends a direct-routing frame to the real itself, which must be a neighbour: a route with a gateway
// would hand a frame addressed to the VIP to a router, which sends it back towards natlb. Its sender
// claims no reply (the real answers the client directly).
void Worker::transmitDirect(const io::ReceivedFrame& frame, uint32_t realIp) { sendTowards(frame, realIp, directSenders_, true); }

void Worker::replyToClient(const io::ReceivedFrame& frame, const Ipv4FrameView& view, uint32_t flowRef) {
  const flow::FlowEntry entry = context_.flows.entryAt(flowRef);
  if (entry.flags() & flow::flags::kFullNat) {
    replyToClientFullNat(frame, view, flowRef);
    return;
  }
  if (!hasHopsLeft(frame, view) || !fitsEgress(frame, view, view.destinationIp())) return;
  flow::SegmentVerdict verdict;
  if (!admit(entry, view, flow::Direction::FromReal, verdict)) return;
  recordPacket(entry, view, flow::Direction::FromReal, verdict);
  offloadIfEstablished(flowRef, entry);
  if (current_->xdp() != nullptr && !frame.steeredByXdp) claimRepliesForXdp(entry);
  const uint32_t vip = entry.load<uint32_t>(flow::entry::kVip);
  const uint16_t vport = entry.load<uint16_t>(flow::entry::kVport);
  rememberIfFirstFragment(view, {vip, false});
  packet::rewriteSource(view, vip, vport, checksumModeOf(frame));  // hasHopsLeft checked the TTL
  counters_.add(Counter::ToClient);
  transmit(frame, view.destinationIp());
}

// A full-NAT reply, RIP:rport -> local:lport, becomes VIP:vport -> client:cport.
void Worker::replyToClientFullNat(const io::ReceivedFrame& frame, const Ipv4FrameView& view, uint32_t flowRef) {
  const flow::FlowEntry entry = context_.flows.entryAt(flowRef);
  const uint32_t clientIp = entry.load<uint32_t>(flow::entry::kClientIp);
  if (!hasHopsLeft(frame, view) || !fitsEgress(frame, view, clientIp)) return;
  flow::SegmentVerdict verdict;
  if (!admit(entry, view, flow::Direction::FromReal, verdict)) return;
  recordPacket(entry, view, flow::Direction::FromReal, verdict);
  offloadIfEstablished(flowRef, entry);
  if (current_->xdp() != nullptr && !frame.steeredByXdp) claimRepliesForXdp(entry);
  const uint32_t vip = entry.load<uint32_t>(flow::entry::kVip);
  rememberIfFirstFragment(view, {clientIp, false, vip});
  packet::rewriteBoth(view, vip, entry.load<uint16_t>(flow::entry::kVport), clientIp,
                      entry.load<uint16_t>(flow::entry::kClientPort), checksumModeOf(frame));  // hasHopsLeft checked the TTL
  counters_.add(Counter::ToClient);
  transmit(frame, clientIp);
}

// Router duty: a packet whose TTL would reach 0 here is answered with "time exceeded", as a router
// answers it (and as traceroute expects of the hop the balancer is).
bool Worker::hasHopsLeft(const io::ReceivedFrame& frame, const Ipv4FrameView& view) {
  if (view.ttl() > 1) return true;
  counters_.add(Counter::DropTtlExpired);
  sendIcmpError(frame, {packet::kIcmpTimeExceeded, packet::kIcmpCodeTtlExceeded, 0, 0}, Counter::IcmpTimeExceededSent);
  return false;
}

// Router duty: a packet too long for the egress link towards `destinationIp` (a GSO super-frame: one
// of its segments) is answered with "fragmentation needed" and the link's MTU when it has DF set, so
// path-MTU discovery works through natlb; without DF it is dropped (natlb does not fragment).
bool Worker::fitsEgress(const io::ReceivedFrame& frame, const Ipv4FrameView& view, uint32_t destinationIp) {
  const auto hop = routes_->lookup(destinationIp);
  const InterfaceConfig* egress = hop ? context_.interfaceByIndex(hop->ifindex) : nullptr;
  if (egress == nullptr) return true;  // transmit() counts the missing route
  const uint32_t mtu = context_.mtuOf(*egress);
  const size_t headers = view.l4Offset - view.l3Offset;
  size_t packetLength = headers + view.l4Length;
  if (frame.vnet != nullptr && frame.vnet->gsoType != 0 && frame.vnet->gsoSize != 0) {
    const auto tcp = view.protocol == packet::kProtocolTcp ? packet::readTcpHeader(view) : std::nullopt;
    const size_t l4Header = tcp ? view.l4Length - tcp->payloadLength : packet::kUdpHeaderLength;
    packetLength = std::min(packetLength, headers + l4Header + frame.vnet->gsoSize);
  }
  if (packetLength <= mtu) return true;
  counters_.add(Counter::DropTooBig);
  if (packet::dontFragment(view.ip())) {
    sendIcmpError(frame, {packet::kIcmpDestinationUnreachable, packet::kIcmpCodeFragmentationNeeded, uint16_t(std::min<uint32_t>(mtu, 0xffff)), 0},
                  Counter::IcmpFragmentationNeededSent);
  }
  return false;
}

// An ICMP error about the received frame, back to its source, from this interface's address facing it.
void Worker::sendIcmpError(const io::ReceivedFrame& frame, packet::IcmpErrorSpec spec, Counter sent) {
  const uint8_t* ip = frame.frame + packet::kEthernetHeaderLength;
  const size_t available = frame.length - packet::kEthernetHeaderLength;
  const uint32_t destination = packet::load32(ip + 12);
  spec.source = arrivedOn().addressFacing(destination);
  if (spec.source == 0 && !arrivedOn().addresses.empty()) spec.source = arrivedOn().addresses.front().ip;
  if (spec.source == 0 || originatedUsed_ == originated_.size() || !icmpErrors_.take(nowMs_)) {
    counters_.add(Counter::IcmpErrorsNotSent);
    return;
  }
  uint8_t* buffer = originated_[originatedUsed_].data();
  std::memset(buffer, 0, sizeof(io::VirtioNetHeader));
  const size_t length = packet::buildIcmpError(buffer + sizeof(io::VirtioNetHeader), ip, available, spec);
  if (length == 0) {
    counters_.add(Counter::IcmpErrorsNotSent);  // about an ICMP error, or no header to quote
    return;
  }
  ++originatedUsed_;
  io::ReceivedFrame error{};
  error.vnet = reinterpret_cast<io::VirtioNetHeader*>(buffer);
  error.frame = buffer + sizeof(io::VirtioNetHeader);
  error.length = uint32_t(length);
  counters_.add(sent);
  transmit(error, destination);
}

// Sends a frame towards `destinationIp`: next hop by route, MAC from the neighbour table. When the MAC
// is not known yet, natlb asks for it and holds the frame meanwhile.
void Worker::transmit(const io::ReceivedFrame& frame, uint32_t destinationIp) { sendTowards(frame, destinationIp, senders_, false); }

// `transmit` through `senders`; `onLinkOnly`: the destination must be the next hop itself (a frame of
// `directSenders_`, which also claims no reply while held).
void Worker::sendTowards(const io::ReceivedFrame& frame, uint32_t destinationIp, SenderSet& senders, bool onLinkOnly) {
  const auto hop = routes_->lookup(destinationIp);
  const InterfaceConfig* egress = hop ? context_.interfaceByIndex(hop->ifindex) : nullptr;
  io::FrameSender* sender = egress ? senders.find(egress->ifindex) : nullptr;
  if (sender == nullptr) {
    counters_.add(Counter::DropNoRoute);
    return;
  }
  if (onLinkOnly && hop->ip != destinationIp) {
    counters_.add(Counter::DropNotOnLink);
    return;
  }
  if (sendToNeighbour(frame, hop->ip, *egress, *sender)) return;
  askForNeighbour(hop->ip, *egress, *sender);
  if (awaitingNeighbour_.hold(frame, hop->ip, egress->ifindex, nowMs_, !onLinkOnly)) {
    counters_.add(Counter::HeldForNeighbour);
  } else {
    counters_.add(Counter::DropNoNeighbour);
  }
}

bool Worker::sendToNeighbour(const io::ReceivedFrame& frame, uint32_t nextHop, const InterfaceConfig& egress,
                             io::FrameSender& sender) {
  const auto mac = neighbours_.find(nextHop);
  if (!mac) return false;
  packet::readdressFrame(frame.frame, *mac, egress.mac);
  sender.queue(frame.vnet, frame.frame, frame.length);
  return true;
}

// At most one ARP request per neighbour a second; the reply is learned only because it was asked for.
void Worker::askForNeighbour(uint32_t nextHop, const InterfaceConfig& egress, io::FrameSender& sender) {
  if (!context_.neighbours.claimRequest(nextHop, nowMs_, kArpRequestIntervalMs)) return;
  uint8_t request[packet::kArpFrameLength];
  packet::buildArp(request, packet::kBroadcastMac, packet::arpRequestFor(nextHop, egress.addressFacing(nextHop), egress.mac));
  if (sender.sendNow(request, sizeof request)) counters_.add(Counter::ArpRequestsSent);
}

// The AF_XDP path: this flow's next replies go straight to the sockets (the kernel handed this one
// over through the rings). The flow map releases the claim with the flow.
void Worker::claimRepliesForXdp(const flow::FlowEntry& entry) {
  if (entry.flags() & flow::flags::kXdpClaimed) return;
  const kernel_flow_key reply = flow::replyKeyOf(entry);
  if (!current_->xdp()->steering().claimReply(reply)) return;
  entry.setFlags(flow::flags::kXdpClaimed);
  if (!entry.live()) current_->xdp()->steering().releaseReply(reply);  // removed meanwhile: no stale claim
}

// A new flow's replies go to its client: when the client's next hop is not known yet, ask now, so the
// ARP reply is in before the first reply is.
void Worker::primeNeighbour(uint32_t clientIp) {
  const auto hop = routes_->lookup(clientIp);
  const InterfaceConfig* egress = hop ? context_.interfaceByIndex(hop->ifindex) : nullptr;
  io::FrameSender* sender = egress ? senders_.find(egress->ifindex) : nullptr;
  if (sender != nullptr && !neighbours_.find(hop->ip)) askForNeighbour(hop->ip, *egress, *sender);
}

// Sends the held frames whose neighbour is now known; drops those held too long.
void Worker::resolveHeldFrames() {
  awaitingNeighbour_.resolve(
      nowMs_,
      [&](const io::ReceivedFrame& frame, uint32_t nextHop, int ifindex, bool claimsReply) {
        const InterfaceConfig* egress = context_.interfaceByIndex(ifindex);
        io::FrameSender* sender = egress ? (claimsReply ? senders_ : directSenders_).find(ifindex) : nullptr;
        return sender != nullptr && sendToNeighbour(frame, nextHop, *egress, *sender);
      },
      [&](const io::ReceivedFrame&) { counters_.add(Counter::DropNoNeighbour); });
}

}  // namespace natlb::engine
