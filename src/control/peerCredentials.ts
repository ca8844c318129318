// Who is on the other end of a control connection: the kernel's record of the peer at connect()
// (SO_PEERCRED and SO_PEERGROUPS, read by the native addon). Read once per connection, at accept.
import type { Socket } from "node:net";
import { loadNative, type PeerCredentials } from "../native";

export type { PeerCredentials };

/** What node's unix socket handle (libuv's Pipe) carries on Linux: its file descriptor. */
interface PipeHandle {
  readonly fd: number;
}

function hasFd(handle: unknown): handle is PipeHandle {
  return typeof handle === "object" && handle !== null && typeof (handle as { fd?: unknown }).fd === "number";
}

/**
 * The credentials of an accepted unix socket's peer. Throws when the socket has no descriptor (it
 * is already closed) or the kernel cannot say (not a unix socket).
 */
export function peerCredentialsOf(socket: Socket): PeerCredentials {
  // `_handle` is node's internal handle; on Linux a unix socket's is a Pipe with its fd.
  const handle: unknown = (socket as unknown as { _handle?: unknown })._handle;
  if (!hasFd(handle) || handle.fd < 0) throw new Error("the connection has no file descriptor (closed before it was accepted)");
  return loadNative().peerCredentials(handle.fd);
}

/** `uid 1000 (gid 1000, groups 27,1001), pid 4242` for logs and refusals. */
export function describePeer(peer: PeerCredentials): string {
  const groups = peer.groups.length > 0 ? `, groups ${peer.groups.join(",")}` : "";
  return `uid ${peer.uid} (gid ${peer.gid}${groups}), pid ${peer.pid}`;
}
