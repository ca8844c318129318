// Who is at the other end of a connected unix socket, as the kernel recorded it when the peer called
// connect(): SO_PEERCRED (pid, uid, gid) and SO_PEERGROUPS (its supplementary groups). Both are
// snapshots taken by the kernel at connect time, so neither a peer that exits nor a recycled pid can
// change them (reading /proc/<pid>/status instead could read another process).
#pragma once
#include <sys/types.h>

#include <vector>

namespace natlb::io {

struct PeerCredentials {
  pid_t pid;  // 0 when the peer's pid is not visible in this pid namespace
  uid_t uid;
  gid_t gid;
  std::vector<gid_t> groups;  // supplementary groups
};

// Throws SystemError when `fd` is not a connected unix socket.
PeerCredentials peerCredentials(int fd);

}  // namespace natlb::io
