// The AF_XDP receive path of one interface: its XDP program and one AF_XDP socket per receive queue.
// Frames the program steers never reach the kernel's stack (or natlb's AF_PACKET rings); everything
// else still does.
#pragma once
#include <poll.h>

#include <memory>
#include <string>
#include <vector>

#include "received_frame.h"
#include "socket_filter.h"
#include "xdp_steering.h"
#include "xsk_socket.h"

namespace natlb::io {

class XdpReceiver {
 public:
  // `kernelFlowsFd`: the kernel fast path's flow map (those segments pass to the kernel), or -1.
  // `maxFlows`: the flow map's capacity (how many replies may be claimed).
  XdpReceiver(int ifindex, const std::string& interfaceName, const FilterSpec& spec, int kernelFlowsFd, uint32_t maxFlows);
  XdpReceiver(const XdpReceiver&) = delete;
  XdpReceiver& operator=(const XdpReceiver&) = delete;

  // The next frame from any queue's socket (taken: release it with releaseTaken after sending).
  bool next(ReceivedFrame& out);
  void releaseTaken();
  void addPollDescriptors(std::vector<pollfd>& descriptors) const;
  void update(const FilterSpec& spec) { steering_.update(spec); }
  XdpSteering& steering() { return steering_; }
  RingStatistics takeStatistics();
  size_t queueCount() const { return sockets_.size(); }
  const char* mode() const { return steering_.mode(); }

 private:
  XskGeometry geometry_;  // first: it refuses an MTU too large before anything is attached
  XdpSteering steering_;
  std::vector<std::unique_ptr<XskSocket>> sockets_;
  size_t nextSocket_ = 0;
};

// The AF_XDP memory layout for the interface's MTU; throws when the MTU is too large for AF_XDP.
XskGeometry geometryFor(const std::string& interfaceName);

}  // namespace natlb::io
