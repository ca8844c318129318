// The flow sync's UDP socket: bound to the listen address, optionally in a multicast group on one
// interface; non-blocking, read in batches (recvmmsg). Plain UDP, so no capability beyond binding a
// port (>= 1024 by default).
#pragma once
#include <netinet/in.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "../io/unique_fd.h"
#include "sync_message.h"

namespace natlb::sync {

struct Endpoint {
  uint32_t ip = 0;  // host order; 0 in a listen address: every local address
  uint16_t port = 0;
  bool operator==(const Endpoint&) const = default;
};

struct MulticastGroup {
  uint32_t group = 0;
  std::string interface;
};

struct ReceivedDatagram {
  std::array<uint8_t, kMaxDatagramBytes> bytes;
  size_t length;  // more than kMaxDatagramBytes: it was longer (truncated)
  Endpoint from;
};

class SyncSocket {
 public:
  static constexpr size_t kBatch = 32;
  // Throws io::SystemError saying what failed (the address in use, an unknown interface).
  SyncSocket(Endpoint listen, const std::optional<MulticastGroup>& multicast);
  int fd() const { return socket_.get(); }
  // 0 or errno (EAGAIN: the socket buffer is full).
  int sendTo(const Endpoint& to, const uint8_t* data, size_t length);
  // Reads what is waiting, up to kBatch datagrams, without blocking; returns how many.
  size_t receive(std::array<ReceivedDatagram, kBatch>& into);

 private:
  io::UniqueFd socket_;
};

}  // namespace natlb::sync
