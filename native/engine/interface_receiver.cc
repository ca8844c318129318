#include "interface_receiver.h"

namespace natlb::engine {

namespace {

bool usesXdp(const InterfaceConfig& interface) { return interface.receivePath == ReceivePath::AfXdp; }

}  // namespace

InterfaceReceiver::InterfaceReceiver(const InterfaceConfig& interface, const io::FilterSpec& selection,
                                     int kernelFlowsMapFd, uint32_t flowCapacity)
    : interface_(interface),
      smallFrames_(interface.ifindex, usesXdp(interface) ? io::kSmallFrameRingBesideXdp : io::kSmallFrameRing,
                   io::buildSocketFilter(selection), io::RingBinding::Ipv4),
      largeFrames_(interface.ifindex, usesXdp(interface) ? io::kLargeFrameRingBesideXdp : io::kLargeFrameRing,
                   io::buildSocketFilter(selection), io::RingBinding::Ipv4),
      arpFrames_(interface.ifindex, io::kArpFrameRing, io::buildSocketFilter(selection), io::RingBinding::Arp) {
  io::RxRing::splitBySize(smallFrames_, largeFrames_);
  if (usesXdp(interface)) {
    xdp_ = std::make_unique<io::XdpReceiver>(interface.ifindex, interface.name, selection, kernelFlowsMapFd, flowCapacity);
  }
}

void InterfaceReceiver::replaceSelection(const io::FilterSpec& selection) {
  const std::vector<sock_filter> filter = io::buildSocketFilter(selection);
  smallFrames_.replaceFilter(filter);
  largeFrames_.replaceFilter(filter);
  arpFrames_.replaceFilter(filter);
  if (xdp_) xdp_->update(selection);
}

io::RingStatistics InterfaceReceiver::takeStatistics() {
  const io::RingStatistics small = smallFrames_.takeStatistics();
  const io::RingStatistics large = largeFrames_.takeStatistics();
  const io::RingStatistics steered = xdp_ ? xdp_->takeStatistics() : io::RingStatistics{0, 0};
  const io::RingStatistics arp = arpFrames_.takeStatistics();
  return {small.packets + large.packets + steered.packets + arp.packets,
          small.drops + large.drops + steered.drops + arp.drops};
}

bool InterfaceReceiver::next(io::ReceivedFrame& frame) {
  ringsFirst_ = !ringsFirst_;
  if (xdp_ && !ringsFirst_ && xdp_->next(frame)) return true;
  if (nextRingFrame(frame)) return true;
  return xdp_ && ringsFirst_ && xdp_->next(frame);
}

bool InterfaceReceiver::nextRingFrame(io::ReceivedFrame& frame) {
  if (arpFrames_.next(frame)) return true;  // no order to keep with the IP frames
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

void InterfaceReceiver::addPollDescriptors(std::vector<pollfd>& out) const {
  out.push_back({smallFrames_.fd(), POLLIN | POLLERR, 0});
  out.push_back({largeFrames_.fd(), POLLIN | POLLERR, 0});
  out.push_back({arpFrames_.fd(), POLLIN | POLLERR, 0});
  if (xdp_) xdp_->addPollDescriptors(out);
}

void InterfaceReceiver::releaseTaken() {
  smallFrames_.releaseTaken();
  largeFrames_.releaseTaken();
  arpFrames_.releaseTaken();
  if (xdp_) xdp_->releaseTaken();
}

}  // namespace natlb::engine
