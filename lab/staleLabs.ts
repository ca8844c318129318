// Finding and removing lab namespaces, for manual cleanup after a process was SIGKILLed (the only
// case the exit handlers cannot cover). Each lab namespace carries its owner's pid in the alias of
// its `lo`, so labs of processes that are still running are left alone by default.
import { IP_BIN, runIn } from './netns';
import { sleep } from './wait';

/**
 * Lab namespace names: <prefix><4 hex id>-<role>, role c | gw | sw | r1..r8 | f (flood host) | x (backend
 * rogue) | rt | lr (routers); the HA pair (haPairTopology.ts): g1 | g2 (gateways) | cs | bs (switches);
 * the ECMP lab (ecmpTopology.ts): g1..g3 (its instances).
 */
export function labNamespacePattern(prefix: string): RegExp {
  return new RegExp(`^${escapeRegExp(prefix)}[0-9a-f]{4}-(c|gw|sw|f|x|rt|lr|g[1-3]|cs|bs|r[1-8])$`);
}

export const OWNER_ALIAS_PREFIX = 'natlb-lab pid=';

/** Every network namespace on the host. */
export async function listNamespaces(): Promise<string[]> {
  const r = await runIn(null, IP_BIN, ['netns', 'list']);
  if (r.code !== 0) return [];
  // Lines look like "name" or "name (id: 3)".
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.length > 0);
}

/** Names of namespaces that look like labs made with `prefix` (any owner). */
export async function listLabNamespaces(prefix: string): Promise<string[]> {
  const re = labNamespacePattern(prefix);
  return (await listNamespaces()).filter((n) => re.test(n));
}

/** Pid of the process that created the namespace, from the alias of its `lo`; null if unknown. */
export async function namespaceOwnerPid(ns: string): Promise<number | null> {
  const r = await runIn(null, IP_BIN, ['-n', ns, '-j', 'link', 'show', 'dev', 'lo'], { timeoutMs: 5000 });
  if (r.code !== 0) return null;
  try {
    const links = JSON.parse(r.stdout) as Array<{ ifalias?: string }>;
    const alias = links[0]?.ifalias ?? '';
    if (!alias.startsWith(OWNER_ALIAS_PREFIX)) return null;
    const pid = Number(alias.slice(OWNER_ALIAS_PREFIX.length));
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kills every process inside `ns` (SIGKILL), then deletes it. Missing namespaces are fine. */
export async function removeNamespace(ns: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const pids = await runIn(null, IP_BIN, ['netns', 'pids', ns], { timeoutMs: 5000 });
    for (const pid of pids.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const del = await runIn(null, IP_BIN, ['netns', 'del', ns], { timeoutMs: 10_000 });
    if (del.code === 0) return;
    if (/No such file|not found|does not exist/i.test(del.stderr)) return;
    if (!(await listNamespaces()).includes(ns)) return;
    if (attempt === 2) throw new Error(`could not delete network namespace ${ns}: ${del.stderr.trim()}; try 'ip netns del ${ns}'`);
    await sleep(200);
  }
}

export interface RemoveStaleOptions {
  /** Also remove labs whose creating process is still alive (it may be a running test!). Default false. */
  includeLive?: boolean;
}

/**
 * Removes lab namespaces made with `prefix` whose creating process is gone (or unknown).
 * Returns the names removed.
 */
export async function removeStaleLabs(prefix: string, opts: RemoveStaleOptions = {}): Promise<string[]> {
  const removed: string[] = [];
  for (const ns of await listLabNamespaces(prefix)) {
    if (!opts.includeLive) {
      const owner = await namespaceOwnerPid(ns);
      if (owner !== null && processAlive(owner)) continue;
    }
    await removeNamespace(ns);
    removed.push(ns);
  }
  return removed;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
