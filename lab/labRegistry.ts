// Last-resort cleanup: labs still alive when the process exits (normal exit, uncaught exception,
// Ctrl-C, SIGTERM) have their processes killed and their namespaces deleted synchronously, so a
// crashed test or demo leaves nothing behind. Labs register here while they exist.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { IP_BIN } from './netns';

export interface LiveLab {
  readonly id: string;
  /** Namespaces created so far (grows during creation). */
  readonly namespaces: string[];
  /** Processes started through the lab that may still run. */
  readonly children: Set<ChildProcess>;
}

const live = new Map<string, LiveLab>();
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let installed = false;

export function registerLab(lab: LiveLab): void {
  live.set(lab.id, lab);
  installHandlers();
}

export function unregisterLab(id: string): void {
  live.delete(id);
  if (live.size === 0) removeHandlers();
}

/** Synchronously kills every process of a namespace (SIGKILL) and deletes it. Never throws. */
export function removeNamespaceSync(ns: string): void {
  for (const pid of namespacePidsSync(ns)) {
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  try {
    execFileSync(IP_BIN, ['netns', 'del', ns], { stdio: 'ignore', timeout: 5000 });
  } catch {
    // already deleted, or nothing more we can do while exiting
  }
}

function namespacePidsSync(ns: string): number[] {
  try {
    const out = execFileSync(IP_BIN, ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
    return out.split(/\s+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}

function cleanupAllSync(): void {
  for (const lab of live.values()) {
    for (const child of lab.children) {
      try {
        child.kill('SIGKILL');
      } catch {
        // ignore
      }
    }
    for (const ns of lab.namespaces) removeNamespaceSync(ns);
  }
  live.clear();
}

function onExit(): void {
  cleanupAllSync();
}

function onSignal(signal: NodeJS.Signals): void {
  cleanupAllSync();
  removeHandlers();
  // Our listener suppressed the default action; restore it unless someone else handles the signal.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function installHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('exit', onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function removeHandlers(): void {
  if (!installed) return;
  installed = false;
  process.off('exit', onExit);
  for (const s of SIGNALS) process.off(s, onSignal);
}
