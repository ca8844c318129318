#include "worker.h"

#include <algorithm>
#include <poll.h>

#include <cstring>
#include <ctime>

#include "../flow/tcp_state.h"
#include "../packet/arp.h"
#include "../packet/checksum_state.h"
#include "../packet/icmp.h"
#include "../packet/nat_rewrite.h"

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
constexpr uint64_t kArpRequestIntervalMs = 1000;

ChecksumMode checksumModeOf(const io::ReceivedFrame& frame) {
  return (frame.vnet->flags & io::kVnetNeedsChecksum) ? ChecksumMode::Partial : ChecksumMode::Complete;
}

packet::MacAddress sourceMacOf(const uint8_t* frame) {
  packet::MacAddress mac;
  std::memcpy(mac.data(), frame + 6, 6);
  return mac;
}

bool usesXdp(const InterfaceConfig& interface) { return interface.receivePath == ReceivePath::AfXdp; }

// With the kernel fast path the IP rings sit after TC ingress (they never see what it forwards) and ARP
// needs a ring of its own.
io::RingBinding ipRingBinding(const EngineContext& context) {
  return context.kernelOffload ? io::RingBinding::Ipv4AfterTc : io::RingBinding::EveryFrameBeforeTc;
}

bool isConnectionOpening(uint8_t tcpFlags) {
  return (tcpFlags & packet::kTcpSyn) && !(tcpFlags & (packet::kTcpAck | packet::kTcpRst));
}

}  // namespace

Worker::Worker(EngineContext& context, const InterfaceConfig& interface, const io::FilterSpec& selection)
    : context_(context),
      interface_(interface),
      smallFrames_(interface.ifindex, usesXdp(interface) ? io::kSmallFrameRingBesideXdp : io::kSmallFrameRing,
                   io::buildSocketFilter(selection), ipRingBinding(context)),
      largeFrames_(interface.ifindex, usesXdp(interface) ? io::kLargeFrameRingBesideXdp : io::kLargeFrameRing,
                   io::buildSocketFilter(selection), ipRingBinding(context)),
      senders_(context.interfaces, context.coalesceTcp),
      neighbours_(context.neighbours),
      random_(0x9e3779b97f4a7c15ULL ^ (uint64_t(interface.ifindex) << 32) ^ monotonicMs()) {
  io::RxRing::splitBySize(smallFrames_, largeFrames_);
  if (context.kernelOffload) {
    arpFrames_ = std::make_unique<io::RxRing>(interface.ifindex, io::kArpFrameRing, io::buildSocketFilter(selection),
                                              io::RingBinding::ArpAfterTc);
  }
  if (usesXdp(interface)) {
    xdp_ = std::make_unique<io::XdpReceiver>(interface.ifindex, interface.name, interface.mac.data(), selection,
                                             context.kernelOffload ? context.kernelOffload->flowsMapFd() : -1);
  }
}

void Worker::replaceSelection(const io::FilterSpec& selection) {
  const std::vector<sock_filter> filter = io::buildSocketFilter(selection);
  smallFrames_.replaceFilter(filter);
  largeFrames_.replaceFilter(filter);
  if (arpFrames_) arpFrames_->replaceFilter(filter);
  if (xdp_) xdp_->update(selection);
}

io::RingStatistics Worker::takeStatistics() {
  const io::RingStatistics small = smallFrames_.takeStatistics();
  const io::RingStatistics large = largeFrames_.takeStatistics();
  const io::RingStatistics steered = xdp_ ? xdp_->takeStatistics() : io::RingStatistics{0, 0};
  const io::RingStatistics arp = arpFrames_ ? arpFrames_->takeStatistics() : io::RingStatistics{0, 0};
  return {small.packets + large.packets + steered.packets + arp.packets,
          small.drops + large.drops + steered.drops + arp.drops};
}

// The next frame: from the AF_XDP sockets and the rings in turn; across the two rings in arrival
// order, so a flow's frames keep their order (the XDP program steers whole flows to one side).
bool Worker::nextFrame(io::ReceivedFrame& frame) {
  ringsFirst_ = !ringsFirst_;
  if (xdp_ && !ringsFirst_ && xdp_->next(frame)) return true;
  if (nextRingFrame(frame)) return true;
  return xdp_ && ringsFirst_ && xdp_->next(frame);
}

bool Worker::nextRingFrame(io::ReceivedFrame& frame) {
  if (arpFrames_ && arpFrames_->next(frame)) return true;  // no order to keep with the IP frames
  io::ReceivedFrame small{}, large{};
  const bool haveSmall = smallFrames_.peek(small);
  const bool haveLarge = largeFrames_.peek(large);
  if (!haveSmall && !haveLarge) return false;
  if (haveSmall && (!haveLarge || small.timestampNs <= large.timestampNs)) {
    smallFrames_.take();
    frame = small;
  } else {
    largeFrames_.take();
    frame = large;
  }
  return true;
}

void Worker::waitForFrames(int timeoutMs) {
  pollDescriptors_.clear();
  pollDescriptors_.push_back({smallFrames_.fd(), POLLIN | POLLERR, 0});
  pollDescriptors_.push_back({largeFrames_.fd(), POLLIN | POLLERR, 0});
  if (arpFrames_) pollDescriptors_.push_back({arpFrames_->fd(), POLLIN | POLLERR, 0});
  if (xdp_) xdp_->addPollDescriptors(pollDescriptors_);
  ::poll(pollDescriptors_.data(), nfds_t(pollDescriptors_.size()), timeoutMs);
}

Worker::~Worker() { join(); }

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
    services_ = context_.services.load(std::memory_order_acquire);
    routes_ = context_.routes.load(std::memory_order_acquire);
    nowMs_ = monotonicMs();
    io::ReceivedFrame frame{};
    size_t handled = 0;
    while (handled < kBatch && nextFrame(frame)) {
      handle(frame);
      ++handled;
    }
    if (handled == 0) {
      waitForFrames(kIdleWaitMs);
      continue;
    }
    flushSenders();  // the queued frames point into ring slots: send before releasing them
    smallFrames_.releaseTaken();
    largeFrames_.releaseTaken();
    if (arpFrames_) arpFrames_->releaseTaken();
    if (xdp_) xdp_->releaseTaken();
  }
}

void Worker::flushSenders() {
  senders_.forEach([this](io::FrameSender& sender) {
    const io::FrameSender::FlushResult result = sender.flush();
    if (result.sent) {
      counters_.add(Counter::TxFrames, result.sent);
      counters_.add(Counter::TxBytes, result.bytes);
    }
    if (result.failed) counters_.add(Counter::DropTxError, result.failed);
    if (result.coalesced) counters_.add(Counter::TxCoalescedSegments, result.coalesced);
  });
}

void Worker::handle(const io::ReceivedFrame& frame) {
  counters_.add(Counter::RxFrames);
  counters_.add(Counter::RxBytes, frame.length);
  if (frame.steeredByXdp) counters_.add(Counter::RxSteeredFrames);
  if (frame.truncated || frame.length < packet::kEthernetHeaderLength) {
    counters_.add(Counter::DropTruncated);
    return;
  }
  if (frame.forOtherHost) {
    counters_.add(Counter::Ignored);
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

void Worker::handleArp(const io::ReceivedFrame& frame) {
  const auto message = packet::parseArp(frame.frame, frame.length);
  if (!message) {
    counters_.add(Counter::Ignored);
    return;
  }
  if (interface_.addressFacing(message->senderIp) != 0 && !neighbours_.knows(message->senderIp, message->senderMac)) {
    context_.neighbours.learn(message->senderIp, message->senderMac, interface_.ifindex);
  }
  const bool askingForVip = message->operation == packet::ArpOperation::Request &&
                            message->senderIp != message->targetIp &&
                            interface_.role == InterfaceRole::Client &&
                            interface_.addressFacing(message->targetIp) != 0 &&
                            isVip(message->targetIp);
  if (!askingForVip) {
    counters_.add(Counter::Ignored);
    return;
  }
  uint8_t reply[packet::kArpFrameLength];
  packet::buildArp(reply, message->senderMac, packet::arpReplyTo(*message, interface_.mac));
  io::FrameSender* sender = senders_.find(interface_.ifindex);
  if (sender != nullptr && sender->sendNow(reply, sizeof reply)) {
    counters_.add(Counter::ArpRepliesSent);
  } else {
    counters_.add(Counter::DropTxError);
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
  if (toVip && icmp->type == packet::kIcmpEchoRequest && interface_.role == InterfaceRole::Client) {
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
    const flow::RealEndpoint real = context_.flows.entryAt(ref).real();
    if (!packet::translateIcmpError(*icmp, *quoted, {0, real.ip, packet::QuotedSide::Source, real.ip, real.port})) {
      counters_.add(Counter::DropTtlExpired);
      return;
    }
    counters_.add(Counter::IcmpErrorsToReal);
    nextHopFor = real.ip;
  } else {
    // From the backend side, quoting client:cport -> RIP:rport: the client must see VIP:vport.
    const flow::ReverseKey key{quoted->protocol, quoted->destination, quoted->destinationPort, quoted->source,
                               quoted->sourcePort};
    const uint32_t ref = interface_.role == InterfaceRole::Backend ? context_.flows.findReverse(key) : 0;
    if (ref == 0) {
      counters_.add(Counter::Ignored);  // not about a NAT flow: the kernel forwards it
      return;
    }
    const flow::FlowEntry entry = context_.flows.entryAt(ref);
    const uint32_t vip = entry.load<uint32_t>(flow::entry::kVip);
    // The client only knows the VIP: the error comes from it, whoever on the backend side sent it (IPVS).
    if (!packet::translateIcmpError(
            *icmp, *quoted, {vip, 0, packet::QuotedSide::Destination, vip, entry.load<uint16_t>(flow::entry::kVport)})) {
      counters_.add(Counter::DropTtlExpired);
      return;
    }
    counters_.add(Counter::IcmpErrorsToClient);
    nextHopFor = destination;
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
  const packet::ParsedFrame parsed = packet::parseIpv4Frame(frame.frame, frame.length);
  if (parsed.error != packet::ParseError::None) {
    // Only frames addressed to a VIP are ours to count as dropped; others belong to the kernel.
    const bool toVip = frame.length >= packet::kEthernetHeaderLength + packet::kIPv4MinHeaderLength &&
                       isVip(packet::load32(frame.frame + packet::kEthernetHeaderLength + 16));
    if (parsed.error == packet::ParseError::Fragment && (toVip || (interface_.role == InterfaceRole::Backend && frame.toThisHost))) {
      forwardLaterFragment(frame, toVip);
    } else if (!toVip) {
      counters_.add(Counter::Ignored);
    } else if (parsed.error == packet::ParseError::UnsupportedProtocol) {
      counters_.add(Counter::DropNoService);
    } else {
      counters_.add(Counter::DropMalformed);
    }
    return;
  }
  const Ipv4FrameView& view = parsed.view;
  if (frame.steeredByXdp) settleChecksumState(frame, view);
  if (const Service* service = services_->find(view.destinationIp(), view.destinationPort(), view.protocol)) {
    forwardToReal(frame, view, *service);
    return;
  }
  const flow::ReverseKey reverse{view.protocol, view.sourceIp(), view.sourcePort(), view.destinationIp(),
                                 view.destinationPort()};
  if (const uint32_t ref = context_.flows.findReverse(reverse)) {
    replyToClient(frame, view, ref);
    return;
  }
  if (isVip(view.destinationIp())) {
    counters_.add(Counter::DropNoService);
    return;
  }
  // A real server's reply that is not NAT traffic (a direct connection to RIP:rport): the kernel's
  // copy is dropped by the reply-path rule, so the balancer forwards it unchanged. Replies to the
  // gateway itself are delivered locally by the kernel (an exception rule), not here.
  if (interface_.role == InterfaceRole::Backend && frame.toThisHost && !context_.isLocalAddress(view.destinationIp())) {
    passThrough(frame, view);
    return;
  }
  counters_.add(Counter::Ignored);
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

void Worker::rememberIfFirstFragment(const Ipv4FrameView& view, uint32_t rewrittenIp) {
  const uint8_t* ip = view.ip();
  if ((ip[6] & 0x20) == 0) return;  // more-fragments clear: a whole datagram
  fragments_.remember({view.sourceIp(), view.destinationIp(), packet::load16(ip + 4), view.protocol}, rewrittenIp, nowMs_);
}

void Worker::forwardLaterFragment(const io::ReceivedFrame& frame, bool toVip) {
  const uint8_t* ip = frame.frame + packet::kEthernetHeaderLength;
  const FragmentKey key{packet::load32(ip + 12), packet::load32(ip + 16), packet::load16(ip + 4), ip[9]};
  const uint32_t rewritten = fragments_.find(key, nowMs_);
  if (rewritten == 0) {
    // Before its first fragment (or its entry was overwritten): without the first fragment the
    // datagram cannot be matched, and the kernel's copy of a real's UDP is dropped by the reply rule.
    counters_.add(toVip || key.protocol == packet::kProtocolUdp ? Counter::DropFragment : Counter::Ignored);
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

void Worker::learnIfOnLink(const io::ReceivedFrame& frame, uint32_t sourceIp) {
  if (interface_.addressFacing(sourceIp) == 0) return;
  const packet::MacAddress mac = sourceMacOf(frame.frame);
  if (!neighbours_.knows(sourceIp, mac)) context_.neighbours.learn(sourceIp, mac, interface_.ifindex);
}

// Advances the TCP state and the per-direction counters of a flow for one frame.
void Worker::recordPacket(const flow::FlowEntry& entry, const Ipv4FrameView& view, flow::Direction direction) {
  const bool fromClient = direction == flow::Direction::FromClient;
  if (view.protocol == packet::kProtocolTcp) {
    const uint8_t tcpFlags = view.tcpFlags();
    uint16_t flowFlags = entry.load<uint16_t>(flow::entry::kFlags);
    if (tcpFlags & packet::kTcpFin) flowFlags = entry.setFlags(fromClient ? flow::flags::kClientFin : flow::flags::kRealFin);
    const flow::FlowState state = entry.state();
    const flow::TcpTransition next = flow::advanceTcpState(state, flowFlags, direction, tcpFlags);
    if (next.state > state) entry.raiseState(next.state);
  }
  if (entry.load<uint64_t>(flow::entry::kLastSeenMs) != nowMs_) entry.store<uint64_t>(flow::entry::kLastSeenMs, nowMs_);
  entry.add(fromClient ? flow::entry::kPacketsIn : flow::entry::kPacketsOut, 1);
  entry.add(fromClient ? flow::entry::kBytesIn : flow::entry::kBytesOut, view.l4Offset - view.l3Offset + view.l4Length);
}

// An established TCP flow whose both next hops are on managed interfaces goes to the kernel fast path,
// once, after kHandOverAfterPackets: a short exchange ends before the hand-over would pay off. The
// frame in hand is still sent from here; segments already in the rings follow it, so the hand-over
// reorders at most those few.
void Worker::offloadIfEstablished(uint32_t ref, const flow::FlowEntry& entry) {
  constexpr uint64_t kHandOverAfterPackets = 16;
  if (context_.kernelOffload == nullptr || entry.state() != flow::FlowState::Established ||
      entry.load<uint64_t>(flow::entry::kPacketsIn) + entry.load<uint64_t>(flow::entry::kPacketsOut) < kHandOverAfterPackets ||
      entry.load<uint8_t>(flow::entry::kProtocol) != packet::kProtocolTcp ||
      (entry.load<uint16_t>(flow::entry::kFlags) & (flow::flags::kOffloaded | flow::flags::kUserSpaceOnly))) {
    return;
  }
  const auto towardsReal = routes_->lookup(entry.load<uint32_t>(flow::entry::kRealIp));
  const auto towardsClient = routes_->lookup(entry.load<uint32_t>(flow::entry::kClientIp));
  if (!towardsReal || !towardsClient || !context_.interfaceByIndex(towardsReal->ifindex) ||
      !context_.interfaceByIndex(towardsClient->ifindex)) {
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
    const bool handedOver = context_.kernelOffload->handOver(e, *towardsReal, *towardsClient);
    counters_.add(handedOver ? Counter::FlowsOffloaded : Counter::OffloadRefused);
    return handedOver;
  });
}

void Worker::forwardToReal(const io::ReceivedFrame& frame, const Ipv4FrameView& view, const Service& service) {
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
    if (isTcp && !isConnectionOpening(tcpFlags)) {
      counters_.add(Counter::DropNoFlow);
      return;
    }
    const flow::RealEndpoint* real = pickReal(service, view.sourceIp(), nextRandom());
    if (real == nullptr) {
      counters_.add(Counter::DropNoReal);
      return;
    }
    ref = context_.flows.insert(key, *real, isTcp ? flow::FlowState::SynRecv : flow::FlowState::Udp, nowMs_);
    if (ref == 0) {
      counters_.add(Counter::DropFlowTableFull);
      return;
    }
    counters_.add(Counter::NewFlows);
  }
  const flow::FlowEntry entry = context_.flows.entryAt(ref);
  recordPacket(entry, view, flow::Direction::FromClient);
  offloadIfEstablished(ref, entry);
  learnIfOnLink(frame, view.sourceIp());
  const flow::RealEndpoint real = entry.real();
  rememberIfFirstFragment(view, real.ip);
  if (packet::rewriteDestination(view, real.ip, real.port, checksumModeOf(frame)) != packet::RewriteError::None) {
    counters_.add(Counter::DropTtlExpired);
    return;
  }
  counters_.add(Counter::ToReal);
  transmit(frame, real.ip);
}

void Worker::replyToClient(const io::ReceivedFrame& frame, const Ipv4FrameView& view, uint32_t flowRef) {
  const flow::FlowEntry entry = context_.flows.entryAt(flowRef);
  recordPacket(entry, view, flow::Direction::FromReal);
  offloadIfEstablished(flowRef, entry);
  learnIfOnLink(frame, view.sourceIp());
  const uint32_t vip = entry.load<uint32_t>(flow::entry::kVip);
  const uint16_t vport = entry.load<uint16_t>(flow::entry::kVport);
  rememberIfFirstFragment(view, vip);
  if (packet::rewriteSource(view, vip, vport, checksumModeOf(frame)) != packet::RewriteError::None) {
    counters_.add(Counter::DropTtlExpired);
    return;
  }
  counters_.add(Counter::ToClient);
  transmit(frame, view.destinationIp());
}

void Worker::passThrough(const io::ReceivedFrame& frame, const Ipv4FrameView& view) {
  rememberIfFirstFragment(view, view.sourceIp());  // its later fragments pass unchanged too
  if (packet::decrementTtl(view) != packet::RewriteError::None) {
    counters_.add(Counter::DropTtlExpired);
    return;
  }
  counters_.add(Counter::PassedThrough);
  transmit(frame, view.destinationIp());
}

void Worker::transmit(const io::ReceivedFrame& frame, uint32_t destinationIp) {
  const auto hop = routes_->lookup(destinationIp);
  const InterfaceConfig* egress = hop ? context_.interfaceByIndex(hop->ifindex) : nullptr;
  io::FrameSender* sender = egress ? senders_.find(egress->ifindex) : nullptr;
  if (sender == nullptr) {
    counters_.add(Counter::DropNoRoute);
    return;
  }
  const auto mac = neighbours_.find(hop->ip);
  if (!mac) {
    counters_.add(Counter::DropNoNeighbour);
    if (context_.neighbours.claimRequest(hop->ip, nowMs_, kArpRequestIntervalMs)) {
      uint8_t request[packet::kArpFrameLength];
      packet::buildArp(request, packet::kBroadcastMac,
                       packet::arpRequestFor(hop->ip, egress->addressFacing(hop->ip), egress->mac));
      if (sender->sendNow(request, sizeof request)) counters_.add(Counter::ArpRequestsSent);
    }
    return;
  }
  std::memcpy(frame.frame, mac->data(), 6);
  std::memcpy(frame.frame + 6, egress->mac.data(), 6);
  sender->queue(frame.vnet, frame.frame, frame.length);
}

}  // namespace natlb::engine
