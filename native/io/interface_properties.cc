#include "interface_properties.h"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>

#include "unique_fd.h"

namespace natlb::io {

namespace {

ifreq requestFor(const std::string& interfaceName) {
  ifreq request{};
  std::strncpy(request.ifr_name, interfaceName.c_str(), IFNAMSIZ - 1);
  return request;
}

}  // namespace

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

}  // namespace natlb::io
