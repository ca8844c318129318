#include "xdp_receiver.h"

#include "interface_properties.h"
#include "system_error.h"

namespace natlb::io {


// One frame per page-sized chunk (no multi-buffer AF_XDP): a larger MTU would lose its full-size frames.
XskGeometry geometryFor(const std::string& interfaceName) {
  const uint32_t mtu = interfaceMtu(interfaceName);
  if (mtu > kMaxXskMtu) {
    throw SystemError("interface " + interfaceName + " has MTU " + std::to_string(mtu) +
                          ": the af_xdp receive path takes an MTU up to " + std::to_string(kMaxXskMtu) +
                          "; lower the MTU or use receivePath \"af_packet\" for " + interfaceName,
                      EMSGSIZE);
  }
  return xskGeometryForMtu(mtu);
}

XdpReceiver::XdpReceiver(int ifindex, const std::string& interfaceName, const FilterSpec& spec, int kernelFlowsFd,
                         uint32_t maxFlows)
    : geometry_(geometryFor(interfaceName)),
      steering_(ifindex, interfaceName, geometry_.frameBytes - kXskKernelHeadroom, kernelFlowsFd, maxFlows) {
  const uint32_t queues = receiveQueueCount(interfaceName);
  for (uint32_t queue = 0; queue < queues; ++queue) {
    sockets_.push_back(std::make_unique<XskSocket>(ifindex, queue, geometry_));
    steering_.bindSocket(queue, sockets_.back()->fd());
  }
  steering_.update(spec);  // only now: until a socket is bound, steered frames would pass to the kernel
}

bool XdpReceiver::next(ReceivedFrame& out) {
  // Round robin over the queues, so a busy queue cannot starve the others.
  for (size_t tried = 0; tried < sockets_.size(); ++tried) {
    XskSocket& socket = *sockets_[nextSocket_];
    nextSocket_ = (nextSocket_ + 1) % sockets_.size();
    if (socket.peek(out)) {
      socket.take();
      return true;
    }
  }
  return false;
}

void XdpReceiver::releaseTaken() {
  for (auto& socket : sockets_) socket->releaseTaken();
}

void XdpReceiver::addPollDescriptors(std::vector<pollfd>& descriptors) const {
  for (const auto& socket : sockets_) descriptors.push_back({socket->fd(), POLLIN | POLLERR, 0});
}

RingStatistics XdpReceiver::takeStatistics() {
  RingStatistics total{0, 0};
  for (auto& socket : sockets_) {
    const RingStatistics stats = socket->takeStatistics();
    total.packets += stats.packets;
    total.drops += stats.drops;
  }
  return total;
}

}  // namespace natlb::io
