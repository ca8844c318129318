#include "peer_credentials.h"

#include <sys/socket.h>

#include <cerrno>

#include "system_error.h"

namespace natlb::io {

PeerCredentials peerCredentials(int fd) {
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) throwSystemError("getsockopt(SO_PEERCRED)");
  PeerCredentials out{credentials.pid, credentials.uid, credentials.gid, {}};
  // SO_PEERGROUPS (Linux 4.13+) says how much room it needs with ERANGE; the list cannot grow after
  // connect(), so the second call fits (NGROUPS_MAX bounds it).
  out.groups.resize(16);
  for (int attempt = 0; attempt < 2; ++attempt) {
    socklen_t bytes = socklen_t(out.groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, out.groups.data(), &bytes) == 0) {
      out.groups.resize(bytes / sizeof(gid_t));
      return out;
    }
    if (errno != ERANGE) throwSystemError("getsockopt(SO_PEERGROUPS)");
    out.groups.resize(bytes / sizeof(gid_t));
  }
  throw SystemError("getsockopt(SO_PEERGROUPS)", ERANGE);
}

}  // namespace natlb::io
