// Shared set-up and checks of the flood tests (test/e2e-floods.test.ts): a lab with the flood host,
// natlb as the real daemon, blob servers and quiet UDP echo servers on every real, downloads held to a
// steady pace, the daemon's status sampled while a flood runs, and the content check of downloads.
import type { ExecutionContext } from "ava";
import type { BalancerStatus } from "../../src/balancer";
import type { BalancerProcess } from "../../lab/balancerProcess";
import type { BlobServerHandle } from "../../lab/blobServer";
import type { DownloadSummary } from "../../lab/download";
import { sbin } from "../../lab/netns";
import { readSnmpCounters } from "../../lab/netCounters";
import type { ProbeCounts } from "../../lab/pacedProbes";
import type { Lab } from "../../lab/topology";
import { UDP_REAL_PORT, withNatLab } from "./lab";

/** Every lab of the flood tests has this name prefix. */
export const FLOOD_LAB_PREFIX = "ff";

export interface FloodLab {
  lab: Lab;
  servers: BlobServerHandle[];
  natlb: BalancerProcess;
}

/**
 * Like withNatLab (test/support/lab.ts), with the flood host: a lab of 3 reals (offloads on), a blob
 * server on every real and, with `udpEchoes`, a UDP echo server on every real that logs nothing (a
 * flood would make it log a line per datagram). natlb runs the configuration `config` builds. Always
 * stops natlb and destroys the lab.
 */
export async function withFloodLab(
  t: ExecutionContext,
  options: { config: (lab: Lab) => unknown; udpEchoes?: boolean },
  body: (env: FloodLab) => Promise<void>,
): Promise<void> {
  await withNatLab(
    t,
    {
      offloads: true, prefix: FLOOD_LAB_PREFIX, floodHost: true, config: options.config,
      blobServer: { cacheMb: 64, maxSeconds: 600 }, udpEchoes: options.udpEchoes === true,
    },
    ({ lab, servers, natlb }) => body({ lab, servers, natlb: natlb! }),
  );
}

/**
 * Holds each of the download connections from client ports firstPort..firstPort+count-1 to `mbit`
 * Mbit/s at every real (an HTB class per port on the real's eth0, chosen by the destination port of
 * the segment; everything else leaves unshaped). On this 2-core machine an unpaced download through
 * user space takes every CPU cycle the flood leaves, and then the probes measure the machine, not
 * natlb; paced, the download stays on the wire for the length of the flood at a small cost.
 */
export async function paceDownloadPorts(lab: Lab, firstPort: number, count: number, mbit: number): Promise<void> {
  const tc = sbin("tc");
  for (const real of lab.reals) {
    const run = (args: string[]) => lab.exec(real.ns, tc, args);
    // default 0: unclassified traffic goes out directly, unshaped.
    await run(["qdisc", "replace", "dev", real.ifname, "root", "handle", "1:", "htb", "default", "0"]);
    for (let i = 0; i < count; i++) {
      const classid = `1:${(0x10 + i).toString(16)}`;
      await run(["class", "add", "dev", real.ifname, "parent", "1:", "classid", classid, "htb", "rate", `${mbit}mbit`, "ceil", `${mbit}mbit`]);
      await run([
        "filter", "add", "dev", real.ifname, "parent", "1:", "protocol", "ip", "prio", "1",
        "u32", "match", "ip", "protocol", "6", "0xff", "match", "ip", "dport", String(firstPort + i), "0xffff", "flowid", classid,
      ]);
    }
  }
}

/**
 * Makes every real answer UDP from only part of the spoof range: datagrams to the echo port from the
 * rest of 198.19.0.0/16 are dropped by the real's kernel (nftables, in the real's namespace) before
 * its echo server sees them. Each echo server is one Node process with a ~200 KB socket buffer (the
 * size cannot be raised from inside a namespace): on this 2-core machine it falls behind past a few
 * thousand datagrams a second, and then drops real clients' requests with the flood's. This way the
 * whole flood still goes through natlb's flow map, part of it is answered back through natlb, and
 * the echo servers stay within what they can do.
 */
export async function answerOnlyPartOfSpoofRange(lab: Lab, answered: string, udpPort: number = UDP_REAL_PORT): Promise<void> {
  const floodRange = lab.floodHost?.spoofRange;
  if (floodRange === undefined) throw new Error("the lab has no flood host");
  const rules = [
    "table ip fflab {",
    "  chain input {",
    "    type filter hook input priority 0; policy accept;",
    `    ip saddr ${floodRange} ip saddr != ${answered} udp dport ${udpPort} counter drop`,
    "  }",
    "}",
  ].join("\n");
  for (const real of lab.reals) await lab.exec(real.ns, sbin("nft"), ["-f", "-"], { input: `${rules}\n` });
}

/** One look at the daemon: the flow map, the counters, connections per service, and when. */
export interface StatusSample {
  /** ms since the sampler's time zero. */
  atMs: number;
  flows: BalancerStatus["flows"];
  counters: BalancerStatus["counters"];
  /** Per service ("vip:port/protocol"): ESTABLISHED flows and the others. */
  conns: Record<string, { active: number; inactive: number }>;
}

export function toSample(status: BalancerStatus, t0: number): StatusSample {
  const conns: StatusSample["conns"] = {};
  for (const s of status.services) {
    conns[`${s.vip}:${s.port}/${s.protocol}`] = {
      active: s.reals.reduce((sum, r) => sum + r.activeConns, 0),
      inactive: s.reals.reduce((sum, r) => sum + r.inactiveConns, 0),
    };
  }
  return { atMs: Math.round(performance.now() - t0), flows: status.flows, counters: status.counters, conns };
}

/**
 * Samples the daemon's status every `intervalMs` (after each answer) until stopped, and whenever
 * sampleNow() is called; with `intervalMs` null only then. A status call walks the whole flow map in
 * the daemon and starts a CLI process: on a full map, look rarely.
 */
export function startSampler(natlb: BalancerProcess, intervalMs: number | null, t0: number = performance.now()) {
  const samples: StatusSample[] = [];
  const errors: string[] = [];
  let stopped = false;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    while (!stopped && intervalMs !== null) {
      try {
        samples.push(toSample(await natlb.status(), t0));
      } catch (e) {
        errors.push((e as Error).message);
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, intervalMs);
      });
    }
  })();
  return {
    samples,
    errors,
    /** A sample taken now (also kept in `samples`). */
    sampleNow: async (): Promise<StatusSample> => {
      const sample = toSample(await natlb.status(), t0);
      samples.push(sample);
      return sample;
    },
    stop: async (): Promise<StatusSample[]> => {
      stopped = true;
      wake?.();
      await loop;
      return samples.sort((a, b) => a.atMs - b.atMs);
    },
  };
}

/** Checks every request of a download: complete, and the client's sha256 is the one its server logged. */
export function assertIntactDownload(
  t: ExecutionContext, lab: Lab, servers: BlobServerHandle[], summary: DownloadSummary, bytesEach: number, requests: number,
): void {
  t.is(summary.failed, 0, `failed requests: ${JSON.stringify(summary.results.filter((r) => r.error !== undefined))}`);
  t.is(summary.results.length, requests);
  const served = servers.flatMap((s) => s.served());
  for (const result of summary.results) {
    t.is(result.bytes, bytesEach, `request ${result.index} from port ${result.localPort}`);
    const server = served.find((e) => e.path === "/blob" && e.peer === lab.client.ip && e.peerPort === result.localPort);
    t.truthy(server, `no server logged the connection from port ${result.localPort}`);
    t.is(server?.bytes, bytesEach);
    t.is(result.sha256, server?.sha256 ?? null, `port ${result.localPort}: sha256 at the client differs from the server's`);
  }
  const aborted = servers.flatMap((s) => s.aborted()).filter((e) => e.path === "/blob");
  t.deepEqual(aborted, [], "a server saw a download connection end before its body was sent");
}

/** "succeeded/attempted (xx.x %)" with the failure reasons. */
export function describeProbes(c: ProbeCounts | null): string {
  if (c === null) return "n/a";
  const share = c.attempted === 0 ? "n/a" : `${((100 * c.succeeded) / c.attempted).toFixed(1)} %`;
  const errors = Object.keys(c.errors).length === 0 ? "" : ` errors ${JSON.stringify(c.errors)}`;
  const latency = c.latencyMs === null ? "" : `, median ${c.latencyMs.median} ms, max ${c.latencyMs.max} ms`;
  return `${c.succeeded}/${c.attempted} (${share}${latency})${errors}`;
}

/** At least `share` (0..1) of the attempts succeeded, and something was attempted. */
export function probesAtLeast(c: ProbeCounts | null, share: number): boolean {
  return c !== null && c.attempted > 0 && c.succeeded >= share * c.attempted;
}

/** UDP datagrams the reals' kernels dropped for a full socket buffer (their echo servers fell behind). */
export async function realsUdpReceiveErrors(lab: Lab): Promise<number> {
  let total = 0;
  for (const real of lab.reals) total += (await readSnmpCounters(lab, real.ns)).get("Udp.RcvbufErrors") ?? 0;
  return total;
}

/**
 * Reply claims the gateway's kernel holds now (natlb's nftables set `replies`, README "kernel set-up"):
 * each live flow should have one, or the kernel forwards that flow's replies itself, un-NATed. A
 * diagnostic for small maps (the listing holds every element).
 */
export async function countReplyClaims(lab: Lab): Promise<{ tcp: number; udp: number }> {
  const listed = await lab.exec(lab.gateway.ns, sbin("nft"), ["list", "set", "netdev", "natlb", "replies"], { maxBuffer: 64 * 1024 * 1024 });
  return { tcp: (listed.stdout.match(/ \. tcp \. /g) ?? []).length, udp: (listed.stdout.match(/ \. udp \. /g) ?? []).length };
}

/** The flow-map numbers worth a log line. */
export function describeFlows(f: BalancerStatus["flows"]): string {
  return (
    `live ${f.live}/${f.capacity}, inserted ${f.inserted}, unassured tcp ${f.unassured.halfOpenTcp} udp ${f.unassured.udp}, ` +
    `evicted share tcp ${f.evicted.halfOpenTcpShare} udp ${f.evicted.udpShare}, room tcp ${f.evicted.halfOpenTcpRoom} udp ${f.evicted.udpRoom}, ` +
    `expired ${f.expired} (under pressure ${f.expiredUnderPressure}), full drops ${f.fullDrops}`
  );
}
