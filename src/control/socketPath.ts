// Where the control socket lives. /run is shared by every network namespace of a host, and one
// natlb runs per namespace (the lab runs several), so the default name carries the namespace's
// inode: `natlb status` inside `ip netns exec X` finds the daemon of namespace X.

import { readlinkSync, statSync } from "node:fs";

export const SOCKET_DIR = "/run/natlb";

/** Inode number of this process's network namespace, or undefined when /proc cannot tell. */
export function netnsInode(): number | undefined {
  try {
    return statSync("/proc/self/ns/net").ino;
  } catch {
    try {
      // "net:[4026531840]"
      const match = /\[(\d+)\]/.exec(readlinkSync("/proc/self/ns/net"));
      return match ? Number(match[1]) : undefined;
    } catch {
      return undefined;
    }
  }
}

/** `/run/natlb/natlb-<netns inode>.sock` (or `/run/natlb/natlb.sock` without /proc). */
export function defaultSocketPath(): string {
  const ino = netnsInode();
  return ino === undefined ? `${SOCKET_DIR}/natlb.sock` : `${SOCKET_DIR}/natlb-${ino}.sock`;
}

/** sun_path holds 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;
