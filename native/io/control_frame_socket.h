// An AF_PACKET socket that sends small frames one at a time on one interface, every one carrying the
// socket's mark (SO_MARK, which CAP_NET_RAW allows): for frames the kernel's egress rules act on.
#pragma once
#include <cstddef>
#include <cstdint>

#include "unique_fd.h"

namespace natlb::io {

class ControlFrameSocket {
 public:
  ControlFrameSocket(int ifindex, uint32_t mark);
  // 0 when sent (or taken by an egress rule that dropped it on purpose: ENOBUFS), else errno.
  int send(const uint8_t* frame, size_t length);

 private:
  UniqueFd socket_;
};

}  // namespace natlb::io
