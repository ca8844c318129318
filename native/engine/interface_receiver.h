// What one interface hands to the balancer: its receive rings (small frames, GSO super-frames, ARP)
// and, on the AF_XDP path, its XDP sockets. A worker serves one or more of these (engine.h).
#pragma once
#include <poll.h>

#include <memory>
#include <vector>

#include "../io/rx_ring.h"
#include "../io/xdp_receiver.h"
#include "interface_config.h"

namespace natlb::engine {

class InterfaceReceiver {
 public:
  // `selection` names the frames this interface hands to the balancer (socket filter, XDP maps);
  // `kernelFlowsMapFd` is the kernel fast path's map (-1 without it), which the XDP program shares.
  InterfaceReceiver(const InterfaceConfig& interface, const io::FilterSpec& selection, int kernelFlowsMapFd,
                    uint32_t flowCapacity);
  InterfaceReceiver(const InterfaceReceiver&) = delete;
  InterfaceReceiver& operator=(const InterfaceReceiver&) = delete;

  const InterfaceConfig& interface() const { return interface_; }
  io::XdpReceiver* xdp() { return xdp_.get(); }
  const io::XdpReceiver* xdp() const { return xdp_.get(); }

  // The next frame: from the AF_XDP sockets and the rings in turn; across the two IPv4 rings in
  // arrival order, so a flow's frames keep their order (the XDP program steers whole flows to one side).
  bool next(io::ReceivedFrame& frame);
  void addPollDescriptors(std::vector<pollfd>& out) const;
  // Hands the taken frames back to the kernel. Send anything pointing into them first.
  void releaseTaken();
  // The rings get the same socket filter; the XDP program the same selection.
  void replaceSelection(const io::FilterSpec& selection);
  io::RingStatistics takeStatistics();

 private:
  bool nextRingFrame(io::ReceivedFrame& frame);

  const InterfaceConfig& interface_;
  io::RxRing smallFrames_;
  io::RxRing largeFrames_;
  io::RxRing arpFrames_;
  std::unique_ptr<io::XdpReceiver> xdp_;  // the AF_XDP path, when the interface uses it
  bool ringsFirst_ = false;                // alternates, so neither path starves the other
};

}  // namespace natlb::engine
