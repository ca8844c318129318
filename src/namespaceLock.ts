// One natlb per network namespace: two would fight over the same frames, and the second one's kernel
// set-up would remove the first one's. The lock is an abstract unix socket: abstract names are per
// network namespace, and the kernel releases the name when the process dies, so a crash never leaves
// a stale lock behind.
import { createServer, type Server } from "node:net";
import { NatlbError } from "./errors";

const LOCK_NAME = "\0natlb-namespace-lock";

export interface NamespaceLock {
  release(): Promise<void>;
}

export function acquireNamespaceLock(): Promise<NamespaceLock> {
  return new Promise((resolve, reject) => {
    const server: Server = createServer((socket) => socket.end(`${process.pid}\n`));
    server.once("error", (error: NodeJS.ErrnoException) => {
      reject(
        error.code === "EADDRINUSE"
          ? new NatlbError(
              "E_ALREADY_RUNNING",
              "another natlb already runs in this network namespace: stop it first (`natlb status` shows it), or run this one in another namespace",
            )
          : error,
      );
    });
    server.listen(LOCK_NAME, () => {
      server.unref();
      resolve({ release: () => new Promise<void>((done) => server.close(() => done())) });
    });
  });
}

/** Whether a natlb holds the lock in this network namespace (a daemon runs here). */
export async function namespaceLockHeld(): Promise<boolean> {
  try {
    const lock = await acquireNamespaceLock();
    await lock.release();
    return false;
  } catch (error) {
    if ((error as { code?: string }).code === "E_ALREADY_RUNNING") return true;
    throw error;
  }
}
