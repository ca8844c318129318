#include "control_frame_socket.h"

#include <linux/if_packet.h>
#include <sys/socket.h>

#include <cerrno>

#include "system_error.h"

namespace natlb::io {

ControlFrameSocket::ControlFrameSocket(int ifindex, uint32_t mark) {
  socket_ = UniqueFd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));  // protocol 0: never receives
  if (!socket_.valid()) throwSystemError("socket(AF_PACKET) for control frames (needs CAP_NET_RAW)");
  if (setsockopt(socket_.get(), SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
    throwSystemError("SO_MARK on a control frame socket (needs CAP_NET_RAW and Linux 5.17 or later)");
  }
  sockaddr_ll where{};
  where.sll_family = AF_PACKET;
  where.sll_ifindex = ifindex;
  if (::bind(socket_.get(), reinterpret_cast<sockaddr*>(&where), sizeof where) != 0) {
    throwSystemError("bind(AF_PACKET) for control frames");
  }
}

int ControlFrameSocket::send(const uint8_t* frame, size_t length) {
  for (;;) {
    if (::send(socket_.get(), frame, length, 0) >= 0) return 0;
    if (errno == EINTR) continue;
    return errno == ENOBUFS ? 0 : errno;
  }
}

}  // namespace natlb::io
