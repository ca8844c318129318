#include "sync_socket.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>

#include "../io/system_error.h"

namespace natlb::sync {

namespace {

sockaddr_in socketAddress(const Endpoint& e) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(e.ip);
  address.sin_port = htons(e.port);
  return address;
}

std::string describe(const Endpoint& e) {
  in_addr a{htonl(e.ip)};
  char text[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &a, text, sizeof text);
  return std::string(text) + ":" + std::to_string(e.port);
}

}  // namespace

SyncSocket::SyncSocket(Endpoint listen, const std::optional<MulticastGroup>& multicast) {
  socket_ = io::UniqueFd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket_.valid()) io::throwSystemError("flow sync: socket(AF_INET, SOCK_DGRAM)");
  const int one = 1;
  setsockopt(socket_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // A snapshot comes in bursts: room for a few hundred datagrams.
  const int buffer = 1 << 20;
  setsockopt(socket_.get(), SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  setsockopt(socket_.get(), SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
  Endpoint bindTo = listen;
  if (multicast) bindTo.ip = 0;  // group datagrams are addressed to the group, not the listen address
  const sockaddr_in address = socketAddress(bindTo);
  if (::bind(socket_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    io::throwSystemError("flow sync: bind " + describe(bindTo) + " (sync.listen: a local address and a free port)");
  }
  if (!multicast) return;
  const unsigned int ifindex = if_nametoindex(multicast->interface.c_str());
  if (ifindex == 0) io::throwSystemError("flow sync: multicast interface " + multicast->interface);
  ip_mreqn membership{};
  membership.imr_multiaddr.s_addr = htonl(multicast->group);
  membership.imr_address.s_addr = htonl(listen.ip);
  membership.imr_ifindex = int(ifindex);
  if (setsockopt(socket_.get(), IPPROTO_IP, IP_ADD_MEMBERSHIP, &membership, sizeof membership) != 0) {
    io::throwSystemError("flow sync: joining multicast group " + describe({multicast->group, 0}) + " on " + multicast->interface);
  }
  if (setsockopt(socket_.get(), IPPROTO_IP, IP_MULTICAST_IF, &membership, sizeof membership) != 0) {
    io::throwSystemError("flow sync: IP_MULTICAST_IF " + multicast->interface);
  }
  const unsigned char loop = 0, ttl = 1;  // the group is the LAN of the peers; own datagrams not looped back
  setsockopt(socket_.get(), IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop);
  setsockopt(socket_.get(), IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
}

int SyncSocket::sendTo(const Endpoint& to, const uint8_t* data, size_t length) {
  const sockaddr_in address = socketAddress(to);
  for (;;) {
    if (::sendto(socket_.get(), data, length, 0, reinterpret_cast<const sockaddr*>(&address), sizeof address) >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

size_t SyncSocket::receive(std::array<ReceivedDatagram, kBatch>& into) {
  std::array<mmsghdr, kBatch> messages{};
  std::array<iovec, kBatch> vectors{};
  std::array<sockaddr_in, kBatch> sources{};
  for (size_t i = 0; i < kBatch; ++i) {
    vectors[i] = {into[i].bytes.data(), into[i].bytes.size()};
    messages[i].msg_hdr.msg_iov = &vectors[i];
    messages[i].msg_hdr.msg_iovlen = 1;
    messages[i].msg_hdr.msg_name = &sources[i];
    messages[i].msg_hdr.msg_namelen = sizeof sources[i];
  }
  const int received = ::recvmmsg(socket_.get(), messages.data(), kBatch, MSG_DONTWAIT, nullptr);
  if (received <= 0) return 0;
  for (int i = 0; i < received; ++i) {
    const bool truncated = (messages[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    into[i].length = truncated ? kMaxDatagramBytes + 1 : messages[i].msg_len;
    into[i].from = {ntohl(sources[i].sin_addr.s_addr), ntohs(sources[i].sin_port)};
  }
  return size_t(received);
}

}  // namespace natlb::sync
