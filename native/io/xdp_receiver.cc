#include "xdp_receiver.h"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>

#include "system_error.h"
#include "unique_fd.h"

namespace natlb::io {

namespace {

ifreq requestFor(const std::string& interfaceName) {
  ifreq request{};
  std::strncpy(request.ifr_name, interfaceName.c_str(), IFNAMSIZ - 1);
  return request;
}

}  // namespace

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

uint32_t interfaceMtu(const std::string& interfaceName) {
  UniqueFd probe(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq request = requestFor(interfaceName);
  if (!probe.valid() || ::ioctl(probe.get(), SIOCGIFMTU, &request) != 0) return 1500;
  return uint32_t(request.ifr_mtu);
}

uint32_t receiveQueueCount(const std::string& interfaceName) {
  UniqueFd probe(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return 1;
  ethtool_channels channels{};
  channels.cmd = ETHTOOL_GCHANNELS;
  ifreq request = requestFor(interfaceName);
  request.ifr_data = reinterpret_cast<char*>(&channels);
  if (::ioctl(probe.get(), SIOCETHTOOL, &request) != 0) return 1;
  const uint32_t queues = channels.rx_count + channels.combined_count;
  return queues == 0 ? 1 : queues;
}

XdpReceiver::XdpReceiver(int ifindex, const std::string& interfaceName, const uint8_t* interfaceMac,
                         const FilterSpec& spec, int kernelFlowsFd)
    : geometry_(geometryFor(interfaceName)),
      steering_(ifindex, interfaceName, geometry_.frameBytes - kXskKernelHeadroom, kernelFlowsFd) {
  const uint32_t queues = receiveQueueCount(interfaceName);
  for (uint32_t queue = 0; queue < queues; ++queue) {
    sockets_.push_back(std::make_unique<XskSocket>(ifindex, queue, interfaceMac, geometry_));
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
