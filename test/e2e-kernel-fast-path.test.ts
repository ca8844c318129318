// End to end, real packets, kernelFastPath: true. natlb attaches a TC program (tcx ingress) to the
// gateway's interfaces and hands an established TCP flow over to it after 16 packets; the kernel then
// rewrites and forwards the flow's segments, except SYN/FIN/RST, which still reach natlb's rings.
// Checked here: downloads arrive intact (sha256 at the client equals the server's) while most of their
// bytes go through the kernel (counters), packets on the wire are rewritten with valid checksums and one
// TTL less, the TCP state machine still advances and offloaded flows leave the kernel when they expire,
// an active offloaded flow outlives a short idle timeout, port reuse, service removal, UDP/ICMP/direct
// connections/health checks beside it, receivePath "af_xdp" with it, and no TC program left after
// SIGTERM, SIGKILL or a refused start. Every lab here uses the namespace prefix "kf".
// Every natlb here runs with kernelScheduling false: these tests are about the hand-over of flows user
// space scheduled; e2e-kernel-scheduling.test.ts covers the connections the kernel schedules itself.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import type { BalancerStatus } from "../src/balancer";
import type { Connection } from "../src/flows/flowMap";
import { NATLB_CLI, startBalancer, type BalancerProcess } from "../lab/balancerProcess";
import type { BlobServerHandle } from "../lab/blobServer";
import { blobUrl, runDownload, type DownloadSummary } from "../lab/download";
import { pingFrom } from "../lab/icmpProbe";
import { namespaceOwnerPid } from "../lab/staleLabs";
import { listLabNamespaces, type Lab } from "../lab/topology";
import { runUdpClient } from "../lab/udpEcho";
import { sleep, waitUntil } from "../lab/wait";
import {
  REAL_PORT,
  SERVICE_PORT,
  UDP_SERVICE_PORT,
  gatewaySnapshot,
  startUdpEchoes,
  tcpService,
  udpService,
  withNatLab,
  type NatLab,
} from "./support/lab";
import { startPacedClient, startPacedServer } from "./support/pacedStream";
import { assertDirectDownloads, assertRewrittenCapture, captureDownloadThroughVip } from "./support/trafficChecks";

const MiB = 1024 * 1024;
const PREFIX = "kf";
/** Short timeouts so that closed flows expire within the test (seconds). */
const SHORT_CLOSING_TIMEOUTS = { tcpTimeWait: 2, tcpFinWait: 2, tcpClose: 2 };
/** Closing timeouts long enough for a CLI call under the full suite's load to still list closed flows. */
const LISTABLE_CLOSING_TIMEOUTS = { tcpTimeWait: 5, tcpFinWait: 5, tcpClose: 5 };
/** The paced streams' services: VIP:PACED_SERVICE_PORT (and the next ports) -> real:PACED_REAL_PORT. */
const PACED_SERVICE_PORT = 81;
const PACED_REAL_PORT = 9000;

type KfLabOptions = Omit<Parameters<typeof withNatLab>[1], "prefix">;

/** withNatLab with the "kf" namespace prefix, and natlb with the kernel fast path unless `config` says otherwise. */
function withKfLab(t: ExecutionContext, options: KfLabOptions, body: (env: NatLab) => Promise<void>): Promise<void> {
  const config = options.config ?? ((lab: Lab) => fastPathConfig(lab));
  return withNatLab(t, { ...options, config: (lab) => handOverOnly(config(lab)), prefix: PREFIX }, body);
}

/** A configuration with the kernel's own scheduling off, unless it says otherwise. */
function handOverOnly(config: unknown): Record<string, unknown> {
  return { kernelScheduling: false, ...(config as Record<string, unknown>) };
}

function fastPathConfig(lab: Lab, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { services: [tcpService(lab, lab.reals.map(() => 1))], kernelFastPath: true, kernelScheduling: false, ...extra };
}

function pacedService(vip: string, reals: string[], port = PACED_SERVICE_PORT) {
  return { vip, port, protocol: "tcp", scheduler: "rr", reals: reals.map((ip) => ({ ip, port: PACED_REAL_PORT })) };
}

// ---------------------------------------------------------------------------------------------------
// What is attached at tcx ingress, asked in the gateway's namespace through the addon (src/native.ts
// loadNative finds the addon relative to the repository root, as natlb itself does).

const NATIVE_MODULE = join(__dirname, "..", "src", "native.js");

interface TcxPrograms {
  eth0: number[];
  eth1: number[];
}

async function tcxPrograms(lab: Lab): Promise<TcxPrograms> {
  const script =
    `const n = require(${JSON.stringify(NATIVE_MODULE)}).loadNative();` +
    `console.log(JSON.stringify({ eth0: n.tcxIngressPrograms("eth0"), eth1: n.tcxIngressPrograms("eth1") }));`;
  const result = await lab.exec(lab.gateway.ns, process.execPath, ["-e", script]);
  return JSON.parse(result.stdout) as TcxPrograms;
}

/** Waits (up to 5 s: the kernel may release a link a little later) until nothing is at tcx ingress. */
async function tcxGone(lab: Lab): Promise<boolean> {
  try {
    await waitUntil("tcx ingress empty", async () => {
      const programs = await tcxPrograms(lab);
      return programs.eth0.length === 0 && programs.eth1.length === 0;
    }, 5000, 100);
    return true;
  } catch {
    return false;
  }
}

/** One program at tcx ingress of eth0 and of eth1 (natlb's), and the same one on both. */
function assertOneProgramOnEach(t: ExecutionContext, programs: TcxPrograms): void {
  t.is(programs.eth0.length, 1, `tcx ingress of eth0: ${JSON.stringify(programs)}`);
  t.is(programs.eth1.length, 1, `tcx ingress of eth1: ${JSON.stringify(programs)}`);
  t.deepEqual(programs.eth0, programs.eth1, "the same program on both interfaces");
}

// ---------------------------------------------------------------------------------------------------

/** Lets the gateway's kernel learn its neighbours, as any traffic would (see e2e-lifecycle). */
async function warmNeighbours(lab: Lab, portBase: number): Promise<void> {
  for (const [i, real] of lab.reals.entries()) {
    await runDownload(lab, { url: blobUrl(real.ip, REAL_PORT, 1024, "warm"), localPortBase: portBase + i });
  }
}

/**
 * Every download of `summary` completed with the body the server sent: the server the X-Real header
 * names logged the connection from the same client port with the same sha256 (its latest one, when a
 * port was used before).
 */
async function assertIntact(t: ExecutionContext, summary: DownloadSummary, servers: BlobServerHandle[], lab: Lab, bytes: number): Promise<void> {
  t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
  t.true(summary.results.length > 0);
  // The servers' log lines come through pipes of their own: give them a moment to arrive.
  const logged = (result: DownloadSummary["results"][number]) =>
    servers.find((s) => s.real.ip === result.real)?.served().filter((e) => e.peerPort === result.localPort && e.peer === lab.client.ip).length ?? 0;
  const perPort = new Map<string, number>();
  for (const r of summary.results) perPort.set(`${r.real}:${r.localPort}`, (perPort.get(`${r.real}:${r.localPort}`) ?? 0) + 1);
  await waitUntil("the servers' log lines", () => summary.results.every((r) => logged(r) >= perPort.get(`${r.real}:${r.localPort}`)!), 3000, 20).catch(() => undefined);
  for (const result of summary.results) {
    t.is(result.bytes, bytes);
    const server = servers.find((s) => s.real.ip === result.real);
    const served = server?.served().filter((e) => e.peerPort === result.localPort && e.peer === lab.client.ip).pop();
    t.truthy(served, `no server logged the connection from port ${result.localPort} (X-Real ${result.real})`);
    t.is(result.sha256, served?.sha256 ?? null, "sha256 at the client differs from the server's");
  }
}

function assertNoDataPlaneErrors(t: ExecutionContext, c: BalancerStatus["counters"]): void {
  t.is(c.dropTxError, 0, "dropTxError");
  t.is(c.dropTruncated, 0, "dropTruncated");
  t.is(c.dropNoNeighbour + c.dropNoRoute + c.dropMalformed + c.dropNoFlow, 0, JSON.stringify(c));
}

/**
 * The counters of a run of `connections` downloads of `totalBytes` in all, with the fast path on:
 * every connection handed over once, most bytes forwarded by the kernel, and few frames in user space.
 */
function assertMostlyKernelForwarded(t: ExecutionContext, c: BalancerStatus["counters"], connections: number, totalBytes: number): void {
  t.log(JSON.stringify({
    rxFrames: c.rxFrames, rxSteeredFrames: c.rxSteeredFrames, toReal: c.toReal, toClient: c.toClient,
    kernelForwardedPackets: c.kernelForwardedPackets, kernelForwardedBytes: c.kernelForwardedBytes,
    flowsOffloaded: c.flowsOffloaded, offloadRefused: c.offloadRefused,
  }));
  t.is(c.flowsOffloaded, connections, "every connection was handed over to the kernel, once");
  t.is(c.offloadRefused, 0, "offloadRefused");
  // IP bytes: headers and the client's ACKs come on top of the bodies; nothing is counted twice.
  t.true(c.kernelForwardedBytes >= 0.9 * totalBytes, `kernelForwardedBytes ${c.kernelForwardedBytes} < 90% of ${totalBytes}`);
  t.true(c.kernelForwardedBytes <= 1.2 * totalBytes, `kernelForwardedBytes ${c.kernelForwardedBytes} > 120% of ${totalBytes}`);
  t.true(c.rxFrames * 10 < c.kernelForwardedPackets, `rxFrames ${c.rxFrames} is not much smaller than kernelForwardedPackets ${c.kernelForwardedPackets}`);
  t.true((c.toReal + c.toClient) * 10 < c.kernelForwardedPackets, `user space forwarded ${c.toReal + c.toClient} frames`);
}

/** The flow of the client's `port` in a connections listing. */
/** Every 300 ms until `running` settles (at most 60 times): what `sample` makes of the flow from `localPort`. */
async function sampleFlowWhile<T>(
  running: Promise<unknown>, natlb: BalancerProcess, lab: Lab, localPort: number,
  sample: (flow: Connection | undefined, kernelFlows: number) => T,
): Promise<T[]> {
  const samples: T[] = [];
  let finished = false;
  void running.then(() => (finished = true), () => (finished = true));
  for (let i = 0; i < 60 && !finished; i++) {
    const flow = flowOf(await natlb.connections(), lab, localPort);
    const kernelFlows = (await natlb.status()).kernelFastPath.flows;
    if (!finished) samples.push(sample(flow, kernelFlows));
    await sleep(300);
  }
  return samples;
}

function flowOf(connections: Connection[], lab: Lab, port: number): Connection | undefined {
  return connections.find((c) => c.client.ip === lab.client.ip && c.client.port === port);
}

// ---------------------------------------------------------------------------------------------------

for (const offloads of [false, true]) {
  const mode = offloads ? "offloads on" : "offloads off";

  test.serial(
    `${mode}: 4 x 64 MiB downloads arrive intact, forwarded by the kernel after the hand-over; the flows close, expire and leave the kernel; nothing at tcx ingress after SIGTERM`,
    async (t) => {
      await withKfLab(t, { offloads, startNatlb: false }, async (env) => {
        const { lab, servers } = env;
        await warmNeighbours(lab, 30100);
        t.deepEqual(await tcxPrograms(lab), { eth0: [], eth1: [] }, "nothing at tcx ingress before natlb");
        const before = await gatewaySnapshot(lab);

        env.natlb = await startBalancer(lab, fastPathConfig(lab, { timeouts: LISTABLE_CLOSING_TIMEOUTS }));
        const natlb = env.natlb;
        assertOneProgramOnEach(t, await tcxPrograms(lab));
        t.deepEqual((await natlb.status()).kernelFastPath, { setting: true, enabled: true, flows: 0, scheduling: { setting: false, active: false, services: 1 } });

        const bytes = 64 * MiB;
        const summary = await runDownload(lab, {
          url: blobUrl(lab.vip, SERVICE_PORT, bytes, `kf-${mode}`), conns: 4, count: 4, localPortBase: 30000, timeoutMs: 120_000,
        });
        // Right away: the flows are still listed (closing timeouts are 5 s), none is ESTABLISHED any more:
        // the FINs went through user space.
        const connections = await natlb.connections();
        await assertIntact(t, summary, servers, lab, bytes);
        t.is(new Set(summary.results.map((r) => r.real)).size, 3, "round robin over 3 equal reals uses all 3");
        const ours = summary.results.map((r) => flowOf(connections, lab, r.localPort!));
        t.true(ours.some((c) => c !== undefined), `no flow of the downloads listed right after them: ${JSON.stringify(connections)}`);
        for (const c of ours) if (c) t.not(c.state, "ESTABLISHED", `flow from port ${c.client.port} is still ESTABLISHED after its download`);

        const status = await natlb.status();
        t.true(status.kernelFastPath.enabled);
        assertMostlyKernelForwarded(t, status.counters, 4, 4 * bytes);
        assertNoDataPlaneErrors(t, status.counters);
        const line = /kernel fast path: (\d+) flow\(s\), (\d+) segment\(s\) forwarded/.exec((await natlb.cli(["status"])).stdout);
        t.truthy(line, "natlb status prints the kernel fast path line");
        t.true(Number(line?.[2]) >= status.counters.kernelForwardedPackets, `CLI segments ${line?.[2]}`);

        // The closed flows expire (5 s) and take their kernel entries with them.
        const idle = await waitUntil("the flows to expire", async () => {
          const s = await natlb.status();
          return s.flows.live === 0 && s.kernelFastPath.flows === 0 ? s : undefined;
        }, 15_000, 200).catch(() => undefined);
        t.truthy(idle, `flows still there 15 s after the downloads: ${JSON.stringify((await natlb.status()).kernelFastPath)}`);

        t.deepEqual(await natlb.stop("SIGTERM"), { code: 0, signal: null });
        t.true(await tcxGone(lab), `programs still at tcx ingress after SIGTERM: ${JSON.stringify(await tcxPrograms(lab))}`);
        const after = await gatewaySnapshot(lab);
        for (const key of Object.keys(before)) t.is(after[key], before[key], `${key} differs after stop`);
      });
    },
  );

  test.serial(`${mode}: while the kernel forwards, packets on the wire carry VIP:vport at the client, RIP:rport at the reals, valid checksums, one TTL less`, async (t) => {
    await withKfLab(t, { offloads }, async ({ lab, natlb }) => {
      const { summary, client, reals } = await captureDownloadThroughVip(lab, "kf-capture");
      t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
      assertRewrittenCapture(t, lab, client, reals);

      const c = (await natlb!.status()).counters;
      t.is(c.flowsOffloaded, 3, "the 3 connections were handed over");
      // More packets arrived than user space forwarded: the capture holds the kernel's.
      const fromVip = client.filter((p) => p.src === lab.vip);
      const toReals = reals.flat().filter((p) => p.src === lab.client.ip);
      t.true(fromVip.length > c.toClient, `${fromVip.length} packets from the VIP captured, user space sent ${c.toClient}`);
      t.true(toReals.length > c.toReal, `${toReals.length} packets to the reals captured, user space sent ${c.toReal}`);
      t.true(c.kernelForwardedPackets > 0);

      // TTL: one less than the sender's (as captured where it left), whichever path forwarded the packet.
      const sentByClient = new Set(client.filter((p) => p.src === lab.client.ip).map((p) => p.ttl));
      t.is(sentByClient.size, 1, `client TTLs ${[...sentByClient].join(",")}`);
      const clientTtl = [...sentByClient][0]!;
      t.deepEqual([...new Set(toReals.map((p) => p.ttl))], [clientTtl - 1], "TTL of the client's packets at the reals");
      const sentByReals = new Set(reals.flat().filter((p) => p.dst === lab.client.ip).map((p) => p.ttl));
      t.is(sentByReals.size, 1, `real TTLs ${[...sentByReals].join(",")}`);
      t.deepEqual([...new Set(fromVip.map((p) => p.ttl))], [[...sentByReals][0]! - 1], "TTL of the reals' packets at the client");

      const states: Record<string, number> = {};
      for (const p of [...client, ...reals.flat()]) states[p.l4Checksum] = (states[p.l4Checksum] ?? 0) + 1;
      t.log(`L4 checksums seen: ${JSON.stringify(states)}; captured ${client.length} at the client; user space: ${c.toReal} to reals, ${c.toClient} to the client; kernel: ${c.kernelForwardedPackets}`);
    });
  });
}

test.serial("receivePath af_xdp with the kernel fast path: 3 x 64 MiB intact, most bytes forwarded by the kernel, not steered to AF_XDP", async (t) => {
  await withKfLab(t, { offloads: false, config: (lab) => fastPathConfig(lab, { receivePath: "af_xdp" }) }, async ({ lab, servers, natlb }) => {
    assertOneProgramOnEach(t, await tcxPrograms(lab));
    const status = await natlb!.status();
    t.deepEqual(status.interfaces.map((i) => i.receivePath), ["af_xdp", "af_xdp"]);
    t.true(status.kernelFastPath.enabled);

    const bytes = 64 * MiB;
    const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "kf-xdp"), conns: 3, count: 3, localPortBase: 30500, timeoutMs: 120_000 });
    await assertIntact(t, summary, servers, lab, bytes);
    const c = (await natlb!.status()).counters;
    assertMostlyKernelForwarded(t, c, 3, 3 * bytes);
    t.true(c.rxSteeredFrames > 0, "the frames user space handled came by AF_XDP");
    t.true(c.rxSteeredFrames * 10 < c.kernelForwardedPackets, `rxSteeredFrames ${c.rxSteeredFrames} vs kernelForwardedPackets ${c.kernelForwardedPackets}`);
    // All but each flow's first replies, which reach natlb through the rings before it claims them for XDP.
    t.true(c.rxSteeredFrames + 2 * 3 >= c.toReal + c.toClient, JSON.stringify({ steered: c.rxSteeredFrames, toReal: c.toReal, toClient: c.toClient }));
    assertNoDataPlaneErrors(t, c);

    t.deepEqual(await natlb!.stop(), { code: 0, signal: null });
    t.true(await tcxGone(lab), JSON.stringify(await tcxPrograms(lab)));
  });
});

test.serial("the default (kernelFastPath \"auto\") as root: the TC program runs, status says so, downloads go through the kernel; a reload to false is refused", async (t) => {
  await withKfLab(t, { offloads: true, config: (lab) => ({ services: [tcpService(lab, [1, 1, 1])] }) }, async ({ lab, servers, natlb }) => {
    assertOneProgramOnEach(t, await tcxPrograms(lab));
    t.deepEqual((await natlb!.status()).kernelFastPath, { setting: "auto", enabled: true, flows: 0, scheduling: { setting: false, active: false, services: 1 } });
    t.false(natlb!.output().includes("kernel fast path off"), "no warning when the fast path runs");
    const bytes = 32 * MiB;
    const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "kf-auto"), conns: 3, count: 3, localPortBase: 30600 });
    await assertIntact(t, summary, servers, lab, bytes);
    assertMostlyKernelForwarded(t, (await natlb!.status()).counters, 3, 3 * bytes);
    t.regex((await natlb!.cli(["status"])).stdout, /forwarding: kernel fast path for established TCP \(kernelFastPath "auto"\)/);
    t.deepEqual((await natlb!.status()).workerThreads, { setting: "auto", running: "one" }, "with the fast path, one thread serves both interfaces");
    t.regex((await natlb!.cli(["status"])).stdout, /user space: one worker thread \(workerThreads "auto"\)/);

    writeFileSync(natlb!.configPath, JSON.stringify(handOverOnly({ services: [tcpService(lab, [1, 1, 1])], kernelFastPath: false })));
    const reload = await natlb!.cli(["reload"]);
    t.not(reload.code, 0, reload.stdout);
    t.regex(reload.stderr, /kernelFastPath cannot change while running: restart natlb/);
    assertOneProgramOnEach(t, await tcxPrograms(lab));
  });
});

test.serial("kernelFastPath false: nothing at tcx ingress, no hand-over, user space forwards everything; a reload turning it on is refused", async (t) => {
  await withKfLab(t, { offloads: true, config: (lab) => ({ services: [tcpService(lab, [1, 1, 1])], kernelFastPath: false }) }, async ({ lab, servers, natlb }) => {
    t.deepEqual(await tcxPrograms(lab), { eth0: [], eth1: [] });
    t.deepEqual((await natlb!.status()).kernelFastPath, { setting: false, enabled: false, flows: 0, scheduling: { setting: false, active: false, services: 0 } });
    const bytes = 16 * MiB;
    const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "kf-off"), conns: 3, count: 3, localPortBase: 30700 });
    await assertIntact(t, summary, servers, lab, bytes);
    const c = (await natlb!.status()).counters;
    t.is(c.flowsOffloaded, 0);
    t.is(c.kernelForwardedPackets, 0);
    t.is(c.kernelForwardedBytes, 0);
    t.true(c.txBytes >= 3 * bytes, `user space sent ${c.txBytes} bytes for ${3 * bytes} downloaded`);
    t.regex((await natlb!.cli(["status"])).stdout, /forwarding: user space only \(kernelFastPath false\)/);
    t.deepEqual((await natlb!.status()).workerThreads, { setting: "auto", running: "perInterface" }, "user space carries the bytes: a thread per interface");

    writeFileSync(natlb!.configPath, JSON.stringify(fastPathConfig(lab)));
    const reload = await natlb!.cli(["reload"]);
    t.not(reload.code, 0, reload.stdout);
    t.regex(reload.stderr, /kernelFastPath cannot change while running: restart natlb/);
    t.deepEqual(await tcxPrograms(lab), { eth0: [], eth1: [] }, "the refused reload attached nothing");
    t.false((await natlb!.status()).kernelFastPath.enabled);
  });
});

test.serial("workerThreads \"one\" without the fast path, and \"perInterface\" with it: every byte intact either way", async (t) => {
  await withKfLab(t, { offloads: true, config: (lab) => ({ services: [tcpService(lab, [1, 1, 1])], kernelFastPath: false, workerThreads: "one" }) }, async ({ lab, servers, natlb }) => {
    t.deepEqual((await natlb!.status()).workerThreads, { setting: "one", running: "one" });
    const bytes = 16 * MiB;
    const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "wt-one"), conns: 3, count: 3, localPortBase: 30800 });
    await assertIntact(t, summary, servers, lab, bytes);
    t.true((await natlb!.status()).counters.txBytes >= 3 * bytes, "user space (one thread) carried the downloads");
  });
  await withKfLab(t, { offloads: true, config: (lab) => ({ services: [tcpService(lab, [1, 1, 1])], workerThreads: "perInterface" }) }, async ({ lab, servers, natlb }) => {
    t.deepEqual((await natlb!.status()).workerThreads, { setting: "perInterface", running: "perInterface" });
    const bytes = 16 * MiB;
    const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "wt-per"), conns: 3, count: 3, localPortBase: 30850 });
    await assertIntact(t, summary, servers, lab, bytes);
    assertMostlyKernelForwarded(t, (await natlb!.status()).counters, 3, 3 * bytes);
  });
});

test.serial("an offloaded flow that keeps carrying traffic outlives tcpEstablished (3 s), its bytes grow in the listing; idle, it expires and its kernel entries go", async (t) => {
  const chunks = 100;  // 10 s: each sample is two CLI calls, slow on a loaded machine
  const chunkBytes = 16 * 1024;
  const localPort = 31000;
  await withKfLab(
    t,
    { offloads: true, reals: 1, config: (lab) => ({ services: [pacedService(lab.vip, [lab.reals[0]!.ip])], kernelFastPath: true, timeouts: { tcpEstablished: 3, ...SHORT_CLOSING_TIMEOUTS } }) },
    async ({ lab, natlb }) => {
      const server = await startPacedServer(lab, 1, PACED_REAL_PORT, { chunkBytes, intervalMs: 100, chunks });
      const client = startPacedClient(lab, { host: lab.vip, port: PACED_SERVICE_PORT, localPort, expectBytes: chunks * chunkBytes, lingerMs: 15_000, timeoutMs: 30_000 });

      // While it runs (about 7 s): the flow is listed, ESTABLISHED, in the kernel, and its bytes grow.
      const received = client.received(30_000);
      const samples = await sampleFlowWhile(received, natlb!, lab, localPort, (flow, kernelFlows) => ({
        state: flow?.state, bytesOut: flow?.bytesOut, ageMs: flow?.ageMs, kernelFlows,
      }));
      const got = await received;
      const sent = await server.sentTo(localPort, 5000);
      t.is(got.bytes, sent.bytes);
      t.is(got.sha256, sent.sha256, "sha256 at the client differs from the server's");
      t.true(got.ms > 4000, `the stream lasted ${got.ms} ms: it must outlast tcpEstablished (3 s) for this test to mean anything`);

      t.log(JSON.stringify(samples));
      const firstSeen = samples.findIndex((s) => s.state !== undefined);
      t.true(firstSeen >= 0, "the flow was never listed");
      const fromFirst = samples.slice(firstSeen);
      t.true(fromFirst.length >= 4, `only ${fromFirst.length} samples`);
      t.deepEqual(fromFirst.filter((s) => s.state !== "ESTABLISHED"), [], "the flow was ESTABLISHED, listed at every sample");
      t.true((fromFirst.at(-1)?.ageMs ?? 0) > 4000, "the same flow lived more than tcpEstablished + 1 s");
      t.is(fromFirst.at(-1)?.kernelFlows, 1, "the flow was in the kernel");
      let increases = 0;
      for (let i = 1; i < fromFirst.length; i++) if (fromFirst[i]!.bytesOut! > fromFirst[i - 1]!.bytesOut!) increases++;
      t.true(increases >= 3, `bytesOut grew ${increases} time(s) while the stream ran`);

      // Once the kernel's counters are read back, the listing shows every byte the real sent.
      const complete = await waitUntil("the listing to show the whole stream", async () => {
        const flow = flowOf(await natlb!.connections(), lab, localPort);
        return flow === undefined ? "gone" : flow.bytesOut >= chunks * chunkBytes ? "complete" : undefined;
      }, 5000, 100).catch(() => "timeout");
      t.is(complete, "complete", "the listing never showed all the bytes of the stream before the flow expired");

      let c = (await natlb!.status()).counters;
      t.is(c.flowsOffloaded, 1);
      t.is(c.dropNoFlow, 0, "no segment of the stream lost its flow");
      t.true(c.kernelForwardedBytes >= 0.9 * chunks * chunkBytes, `kernelForwardedBytes ${c.kernelForwardedBytes}`);

      // Idle (the client keeps the connection open and quiet): the flow expires and leaves the kernel.
      const expired = await waitUntil("the idle flow to expire", async () => {
        const s = await natlb!.status();
        return s.kernelFastPath.flows === 0 && flowOf(await natlb!.connections(), lab, localPort) === undefined;
      }, 10_000, 200).catch(() => false);
      t.true(expired, `still there: ${JSON.stringify((await natlb!.status()).kernelFastPath)}`);
      t.true(client.tool.running, "the client still holds the connection: the flow expired by idleness");

      // Its kernel entries are really gone: a segment on the old connection reaches user space (which has
      // no flow for it) and not the real.
      c = (await natlb!.status()).counters;
      await client.write(5000);
      await sleep(1500);
      const after = (await natlb!.status()).counters;
      t.is(after.kernelForwardedPackets, c.kernelForwardedPackets, "the kernel forwarded a segment of an expired flow");
      t.true(after.dropNoFlow > c.dropNoFlow, "user space saw the segment and had no flow for it");
      t.is(server.gotFrom(localPort), 0, "the real got data of an expired flow");
      await client.stop();
    },
  );
});

test.serial("a half-closed offloaded flow (FIN_WAIT) goes on carrying the real's data past tcpFinWait (2 s), then closes and expires", async (t) => {
  // 12 s of stream: each sample is two CLI calls, which take seconds under the full suite's load.
  const chunks = 120;
  const chunkBytes = 16 * 1024;
  const localPort = 31500;
  await withKfLab(
    t,
    { offloads: true, reals: 1, config: (lab) => ({ services: [pacedService(lab.vip, [lab.reals[0]!.ip])], kernelFastPath: true, timeouts: SHORT_CLOSING_TIMEOUTS }) },
    async ({ lab, natlb }) => {
      const server = await startPacedServer(lab, 1, PACED_REAL_PORT, { chunkBytes, intervalMs: 100, chunks });
      // The client sends its FIN after about 1.5 s (15 chunks), long after the hand-over (16 packets).
      const client = startPacedClient(lab, {
        host: lab.vip, port: PACED_SERVICE_PORT, localPort, expectBytes: chunks * chunkBytes, halfCloseAfterBytes: 15 * chunkBytes, timeoutMs: 30_000,
      });
      await client.tool.waitForEvent((e) => e.event === "half-closed", 10_000, "the half-close");
      const offloadedBeforeFin = (await natlb!.status()).counters.flowsOffloaded;

      const received = client.received(30_000);
      const samples = await sampleFlowWhile(received, natlb!, lab, localPort, (flow, kernelFlows) => ({
        state: flow?.state, kernelFlows, at: Date.now(),
      }));
      const got = await received;
      const sent = await server.sentTo(localPort, 5000);
      t.is(got.bytes, sent.bytes);
      t.is(got.sha256, sent.sha256, "sha256 at the client differs from the server's");
      t.log(JSON.stringify(samples.map((s) => ({ ...s, at: s.at - samples[0]!.at }))));
      t.is(offloadedBeforeFin, 1, "the flow was handed over before the client's FIN (or the test means nothing)");
      const span = (samples.at(-1)?.at ?? 0) - (samples[0]?.at ?? 0);
      t.true(span > 3000, `samples over ${span} ms only: the stream must outlast tcpFinWait (2 s) for this test to mean anything`);
      t.deepEqual(samples.filter((s) => s.state !== "FIN_WAIT" || s.kernelFlows !== 1), [], "listed FIN_WAIT and in the kernel while the real sent");
      const c = (await natlb!.status()).counters;
      t.true(c.kernelForwardedBytes >= 0.8 * chunks * chunkBytes, `kernelForwardedBytes ${c.kernelForwardedBytes}`);
      t.is(c.dropNoFlow, 0, "no segment lost its flow");

      // The real closes too: TIME_WAIT, then the flow expires and leaves the kernel.
      const gone = await waitUntil("the closed flow to expire", async () => {
        const s = await natlb!.status();
        return s.kernelFastPath.flows === 0 && s.flows.live === 0;
      }, 10_000, 200).catch(() => false);
      t.true(gone, JSON.stringify((await natlb!.status()).kernelFastPath));
    },
  );
});

test.serial("port reuse: downloads from the same client ports right after the first ones (TIME_WAIT flows in the kernel) arrive intact", async (t) => {
  await withKfLab(t, { offloads: true }, async ({ lab, servers, natlb }) => {
    const bytes = 16 * MiB;
    const options = { conns: 1, count: 2, localPortBase: 32000, timeoutMs: 60_000 };
    const first = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "kf-reuse-1"), ...options });
    await assertIntact(t, first, servers, lab, bytes);
    const connections = await natlb!.connections();
    for (const r of first.results) {
      const flow = flowOf(connections, lab, r.localPort!);
      t.truthy(flow, `flow of port ${r.localPort} listed`);
      t.not(flow?.state, "ESTABLISHED", JSON.stringify(flow));
    }
    t.is((await natlb!.status()).kernelFastPath.flows, 2, "the closed flows are still in the kernel map (the case this test is about)");

    const second = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "kf-reuse-2"), ...options });
    // Both runs' connections logged (a port's latest line is the one the check compares with).
    const ports = first.results.map((r) => r.localPort);
    await waitUntil("4 log lines", () => servers.flatMap((s) => s.served()).filter((e) => ports.includes(e.peerPort)).length >= 4, 3000, 20).catch(() => undefined);
    await assertIntact(t, second, servers, lab, bytes);
    t.deepEqual(second.results.map((r) => r.localPort), ports, "the same client ports");
    t.true(
      second.results.some((r, i) => r.real !== first.results[i]!.real),
      `for this test to mean anything a port must go to another real the second time: ${JSON.stringify([first, second].map((s) => s.results.map((r) => r.real)))}`,
    );
    const status = await natlb!.status();
    t.is(status.counters.newFlows, 4);
    t.is(status.counters.flowsOffloaded, 4, "the second flows were handed over too");
    t.is(status.kernelFastPath.flows, 2, "the first flows' kernel entries went when their ports were reused");
    assertNoDataPlaneErrors(t, status.counters);
  });
});

/** The services that stay in the service removal test. */
function remaining(lab: Lab) {
  return [tcpService(lab, [1, 1]), pacedService(lab.vip, lab.reals.map((r) => r.ip), PACED_SERVICE_PORT + 2)];
}

test.serial("the connections listing counts every byte of closed offloaded flows: the kernel's counts and the segments user space forwarded", async (t) => {
  await withKfLab(t, { offloads: true }, async ({ lab, servers, natlb }) => {
    const bytes = 16 * MiB;
    const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "kf-count"), conns: 6, count: 6, localPortBase: 32500, timeoutMs: 60_000 });
    await assertIntact(t, summary, servers, lab, bytes);
    t.is((await natlb!.status()).counters.flowsOffloaded, 6);
    // About a second after their last segment the flows' counts are read back from the kernel (they are
    // TIME_WAIT for 120 s). The IP bytes each real sent are at least the body it served.
    const ports = summary.results.map((r) => r.localPort!);
    let listed: Connection[] = [];
    const refreshed = await waitUntil("the kernel's counts in the listing", async () => {
      listed = await natlb!.connections();
      return ports.every((port) => (flowOf(listed, lab, port)?.packetsOut ?? 0) > 100);
    }, 5000, 200).catch(() => false);
    t.true(refreshed, `the listing never showed the kernel's counts: ${JSON.stringify(ports.map((port) => flowOf(listed, lab, port)))}`);
    await sleep(1500);  // one more read back, in case the first came before the last segments
    listed = await natlb!.connections();
    for (const port of ports) {
      const flow = flowOf(listed, lab, port);
      t.truthy(flow, `flow of port ${port}`);
      t.true(
        (flow?.bytesOut ?? 0) >= bytes,
        `port ${port}: bytesOut ${flow?.bytesOut} is less than the ${bytes}-byte body the real sent (short by ${bytes - (flow?.bytesOut ?? 0)}); packetsOut ${flow?.packetsOut}`,
      );
      t.true((flow?.bytesIn ?? 0) > 0);
    }
  });
});

test.serial("removing a service (API, then reload without it) withdraws its offloaded flows from the kernel; user space drops their client segments", async (t) => {
  await withKfLab(
    t,
    {
      offloads: true,
      reals: 2,
      // Two streams on two services of the VIP, one removed by the API, the other by a reload. The VIP
      // keeps a service, and so does the reals' port (a third service that stays): the streams' later
      // frames are still natlb's, as they would be without the fast path.
      config: (lab) => ({ services: [...remaining(lab), pacedService(lab.vip, [lab.reals[0]!.ip]), pacedService(lab.vip, [lab.reals[1]!.ip], PACED_SERVICE_PORT + 1)], kernelFastPath: true }),
    },
    async ({ lab, natlb }) => {
      const stream = { chunkBytes: 16 * 1024, intervalMs: 100, chunks: 200 };
      const servers = [await startPacedServer(lab, 1, PACED_REAL_PORT, stream), await startPacedServer(lab, 2, PACED_REAL_PORT, stream)];
      const clients = [PACED_SERVICE_PORT, PACED_SERVICE_PORT + 1].map((port, i) =>
        startPacedClient(lab, { host: lab.vip, port, localPort: 33000 + i, expectBytes: stream.chunks * stream.chunkBytes, timeoutMs: 40_000 }),
      );
      try {
        const offloaded = await waitUntil("both streams in the kernel", async () => (await natlb!.status()).kernelFastPath.flows === 2, 8000, 100).catch(() => false);
        t.true(offloaded, JSON.stringify((await natlb!.status()).kernelFastPath));
        const start = (await natlb!.status()).counters;
        t.is(start.flowsOffloaded, 2);

        const removed = await natlb!.cli(["service", "remove", `${lab.vip}:${PACED_SERVICE_PORT}`]);
        t.is(removed.code, 0, removed.stderr);
        const one = await waitUntil("one stream left in the kernel", async () => (await natlb!.status()).kernelFastPath.flows === 1, 3000, 50).catch(() => false);
        t.true(one, JSON.stringify((await natlb!.status()).kernelFastPath));

        writeFileSync(natlb!.configPath, JSON.stringify(handOverOnly({ services: remaining(lab), kernelFastPath: true })));
        const reload = await natlb!.cli(["reload"]);
        t.is(reload.code, 0, reload.stderr);
        const none = await waitUntil("no stream left in the kernel", async () => (await natlb!.status()).kernelFastPath.flows === 0, 3000, 50).catch(() => false);
        t.true(none, JSON.stringify((await natlb!.status()).kernelFastPath));
        t.deepEqual((await natlb!.status()).services.map((s) => `${s.vip}:${s.port}`), remaining(lab).map((s) => `${s.vip}:${s.port}`));

        // The streams go on trying (the reals retransmit, backing off; the clients answer): user space now
        // forwards the reals' segments and drops the clients' (no service); the kernel forwards nothing.
        await sleep(300);
        const withdrawn = (await natlb!.status()).counters;
        const later = await waitUntil("a client segment after the withdrawal", async () => {
          const c = (await natlb!.status()).counters;
          return c.dropNoService > withdrawn.dropNoService ? c : undefined;
        }, 10_000, 200).catch(() => undefined);
        t.truthy(later, `no client segment reached user space within 10 s of the withdrawal: ${JSON.stringify({ start, withdrawn, now: (await natlb!.status()).counters })}`);
        if (later === undefined) return;
        t.log(JSON.stringify({ start: start.kernelForwardedPackets, withdrawn: withdrawn.kernelForwardedPackets, later: later.kernelForwardedPackets, dropNoService: later.dropNoService }));
        t.is(later.kernelForwardedPackets, withdrawn.kernelForwardedPackets, "the kernel still forwards segments of withdrawn flows");
        t.true(later.toClient > withdrawn.toClient, "the reals' segments of withdrawn flows are forwarded by user space");
        t.true(withdrawn.dropNoService > start.dropNoService, "the clients' segments reached user space and were dropped (no service)");
        t.is(later.flowsOffloaded, 2, "withdrawn flows are not handed over again");
      } finally {
        await Promise.all([...clients, ...servers].map((p) => p.stop()));
      }
    },
  );
});

test.serial("with the fast path on, health checks, UDP through the VIP, ping and direct connections to a real still work; only VIP TCP flows are handed over", async (t) => {
  const healthCheck = { type: "tcp", intervalMs: 200, timeoutMs: 200, rise: 2, fall: 2 };
  await withKfLab(
    t,
    { offloads: true, config: (lab) => fastPathConfig(lab, { services: [tcpService(lab, [1, 1, 1], { healthCheck }), udpService(lab)] }) },
    async ({ lab, servers, natlb }) => {
      const up = await waitUntil("every real up", async () => (await natlb!.status()).services[0]!.reals.every((r) => r.up), 5000, 200).catch(() => false);
      t.true(up, `health checks from the gateway: ${JSON.stringify((await natlb!.status()).services[0]!.reals.map((r) => r.up))}`);

      await startUdpEchoes(lab);
      const udp = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 30, sockets: 6, localPortBase: 34000 });
      t.is(udp.received, 30, `lost: ${udp.lost.join(",")}`);
      t.deepEqual([...new Set(udp.replies.map((r) => r.from))], [`${lab.vip}:${UDP_SERVICE_PORT}`]);

      const ping = await pingFrom(lab, lab.client.ns, lab.vip, 3);
      t.is(ping.received, 3);

      const beforeDirect = (await natlb!.status()).counters;
      await assertDirectDownloads(t, lab, servers);
      let status = await natlb!.status();
      t.is(status.counters.toClient, beforeDirect.toClient, "the direct connections' replies took the kernel's path, not natlb's");
      t.is(status.counters.flowsOffloaded, 0, "UDP flows and direct connections are not handed over");
      t.is(status.kernelFastPath.flows, 0);

      // Short TCP connections (a 1 KiB body: fewer than 16 packets) stay in user space.
      const short = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 1024, "kf-short"), conns: 3, count: 3, localPortBase: 34050 });
      await assertIntact(t, short, servers, lab, 1024);
      const flowsBefore = status.counters.newFlows;
      status = await natlb!.status();
      t.is(status.counters.newFlows, flowsBefore + 3, "3 TCP flows through the VIP");
      t.is(status.counters.flowsOffloaded, 0, "connections of fewer than 16 packets are not handed over");

      const bytes = 8 * MiB;
      const viaVip = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "kf-beside"), conns: 3, count: 3, localPortBase: 34100 });
      await assertIntact(t, viaVip, servers, lab, bytes);
      status = await natlb!.status();
      t.is(status.counters.flowsOffloaded, 3, "the 3 long downloads were handed over");
      t.true(status.counters.kernelForwardedBytes >= 0.9 * 3 * bytes, `kernelForwardedBytes ${status.counters.kernelForwardedBytes}`);
      t.true(status.services[0]!.reals.every((r) => r.up), "the reals stayed up");
      assertNoDataPlaneErrors(t, status.counters);
    },
  );
});

test.serial("after SIGKILL no program is left at tcx ingress; kernel-undo restores the rest; a new natlb attaches again and hands flows over", async (t) => {
  await withKfLab(t, { offloads: true, startNatlb: false }, async (env) => {
    const { lab, servers } = env;
    await warmNeighbours(lab, 35100);
    const before = await gatewaySnapshot(lab);
    env.natlb = await startBalancer(lab, fastPathConfig(lab));
    const first = await tcxPrograms(lab);
    assertOneProgramOnEach(t, first);
    const bytes = 8 * MiB;
    const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "kf-kill"), conns: 3, count: 3, localPortBase: 35000 });
    await assertIntact(t, summary, servers, lab, bytes);
    t.is((await env.natlb.status()).counters.flowsOffloaded, 3);

    t.deepEqual(await env.natlb.stop("SIGKILL"), { code: null, signal: "SIGKILL" });
    t.true(await tcxGone(lab), `programs still at tcx ingress after SIGKILL: ${JSON.stringify(await tcxPrograms(lab))}`);
    env.natlb = undefined;

    const undo = await lab.exec(lab.gateway.ns, process.execPath, [NATLB_CLI, "kernel-undo"]);
    t.regex(undo.stdout, /kernel set-up removed/);
    const after = await gatewaySnapshot(lab);
    for (const key of Object.keys(before)) t.is(after[key], before[key], `${key} differs after SIGKILL + kernel-undo`);

    env.natlb = await startBalancer(lab, fastPathConfig(lab));
    const second = await tcxPrograms(lab);
    assertOneProgramOnEach(t, second);
    t.notDeepEqual(second.eth0, first.eth0, "a new program (the killed one's is gone)");
    const again = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "kf-again"), conns: 3, count: 3, localPortBase: 35200 });
    await assertIntact(t, again, servers, lab, bytes);
    t.is((await env.natlb.status()).counters.flowsOffloaded, 3);
  });
});

test.serial("a reload that changes kernelFastPath is refused with 409 (CLI, API, SIGHUP), one with a non-boolean is refused, and the fast path goes on", async (t) => {
  await withKfLab(t, { offloads: true }, async ({ lab, servers, natlb }) => {
    const programs = await tcxPrograms(lab);
    assertOneProgramOnEach(t, programs);
    const first = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 4 * MiB, "kf-r1"), conns: 3, count: 3, localPortBase: 36000 });
    await assertIntact(t, first, servers, lab, 4 * MiB);

    for (const config of [fastPathConfig(lab, { kernelFastPath: false }), handOverOnly({ services: [tcpService(lab, [1, 1, 1])] })]) {
      writeFileSync(natlb!.configPath, JSON.stringify(config));
      const reload = await natlb!.cli(["reload"]);
      t.not(reload.code, 0, `reload to ${JSON.stringify(config)} was accepted: ${reload.stdout}`);
      t.regex(reload.stderr, /kernelFastPath cannot change while running: restart natlb/);
    }
    // The control API itself answers 409.
    const http = await lab.exec(lab.gateway.ns, "curl", [
      "-s", "-w", "\\n%{http_code}", "--max-time", "10", "--unix-socket", natlb!.socket,
      "-X", "POST", "-H", "content-type: application/json", "-d", "{}", "http://natlb/reload",
    ]);
    const [body, code] = http.stdout.trim().split("\n");
    t.is(code, "409", http.stdout);
    t.regex(body ?? "", /kernelFastPath cannot change while running: restart natlb/);

    natlb!.child.kill("SIGHUP");
    await waitUntil("the refused SIGHUP reload to be logged", () => /reload refused/.test(natlb!.output()), 10_000, 100);
    t.regex(natlb!.output(), /kernelFastPath cannot change while running/);

    writeFileSync(natlb!.configPath, JSON.stringify(fastPathConfig(lab, { kernelFastPath: "yes" })));
    const bad = await natlb!.cli(["reload"]);
    t.not(bad.code, 0);
    t.regex(bad.stderr, /kernelFastPath: expected "auto", true or false, got "yes"/);

    // Unchanged kernelFastPath with other changes: accepted.
    writeFileSync(natlb!.configPath, JSON.stringify(handOverOnly({ services: [tcpService(lab, [2, 1, 1])], kernelFastPath: true })));
    const same = await natlb!.cli(["reload"]);
    t.is(same.code, 0, same.stderr);
    const status = await natlb!.status();
    t.deepEqual(status.services[0]!.reals.map((r) => r.weight), [2, 1, 1], "the accepted reload applied");
    t.true(status.kernelFastPath.enabled);
    t.deepEqual(await tcxPrograms(lab), programs, "the same programs stayed attached");

    const second = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 16 * MiB, "kf-r2"), conns: 3, count: 3, localPortBase: 36100 });
    await assertIntact(t, second, servers, lab, 16 * MiB);
    const c = (await natlb!.status()).counters;
    t.is(c.flowsOffloaded, 6, "the flows after the reloads were handed over too");
    assertNoDataPlaneErrors(t, c);
  });
});

test.serial("without CAP_BPF and CAP_NET_ADMIN start fails naming kernelFastPath and the capabilities; kernelFastPath \"yes\" is refused; nothing is attached", async (t) => {
  await withKfLab(t, { offloads: false, startNatlb: false }, async ({ lab }) => {
    const startOrError = (config: unknown, options: Parameters<typeof startBalancer>[2]) =>
      startBalancer(lab, config, { readyTimeoutMs: 15_000, ...options }).then(
        async (natlb: BalancerProcess) => {
          await natlb.stop();
          return undefined;
        },
        (e: unknown) => e as Error,
      );

    // Without any of them, and with CAP_BPF but neither CAP_NET_ADMIN nor CAP_SYS_ADMIN (a TC program needs it).
    for (const dropped of ["net_admin,sys_admin,bpf", "net_admin,sys_admin"]) {
      const minus = dropped.split(",").map((c) => `-${c}`).join(",");
      const wrapper = ["setpriv", `--bounding-set=${minus}`, `--inh-caps=${minus}`, "--"];
      const error = await startOrError(fastPathConfig(lab), { runArgs: ["--no-kernel-setup"], wrapper });
      t.truthy(error, `natlb started with the kernel fast path without ${dropped}`);
      t.regex(error?.message ?? "", /kernelFastPath/, dropped);
      t.regex(error?.message ?? "", /CAP_BPF/, dropped);
      t.regex(error?.message ?? "", /CAP_NET_ADMIN/, dropped);
      t.deepEqual(await tcxPrograms(lab), { eth0: [], eth1: [] }, dropped);
    }

    const before = await gatewaySnapshot(lab);
    for (const value of ["yes", 1, null]) {
      const refused = await startOrError(fastPathConfig(lab, { kernelFastPath: value }), {});
      t.truthy(refused, `kernelFastPath ${JSON.stringify(value)} was accepted`);
      t.regex(refused?.message ?? "", /kernelFastPath: expected "auto", true or false, got /);
      t.true((refused?.message ?? "").includes(`got ${value === "yes" ? '"yes"' : String(value)}`), refused?.message);
    }
    t.deepEqual(await tcxPrograms(lab), { eth0: [], eth1: [] });
    t.deepEqual(await gatewaySnapshot(lab), before, "kernel state left behind by the refused starts");

    // check-config says the same.
    const dir = mkdtempSync(join(tmpdir(), `natlb-${lab.id}-`));
    try {
      const file = join(dir, "natlb.json");
      writeFileSync(file, JSON.stringify(fastPathConfig(lab, { kernelFastPath: "yes" })));
      const check = await lab.tryExec(lab.gateway.ns, process.execPath, [NATLB_CLI, "check-config", file]);
      t.not(check.code, 0);
      t.regex(check.stderr + check.stdout, /kernelFastPath: expected "auto", true or false, got "yes"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// Classic tc filters beside natlb's tcx program. This kernel has neither matchall nor gact: the counting
// filter is a u32 match-all whose one action mirrors each frame it sees to an ifb device of the gateway
// (which drops what was not redirected to it) and passes the frame on; the action's packet count is the
// filter's. The filter sits on the clsact qdisc, which runs only when the tcx programs before it say
// "next" (TCX_NEXT): a TC_ACT_OK from natlb's program would end the hook and leave the count at 0. A tcx
// program attached after natlb's runs on the same verdict (bpf_mprog goes on to the next program only on
// TCX_NEXT), so the classic filter stands for both (no bpftool here to attach a second tcx program).

/** The ifb device the counting filters mirror to (in the gateway's namespace). */
const COUNTER_DEV = "kfcount";

async function addCountingFilters(lab: Lab, interfaces: readonly string[]): Promise<void> {
  const ns = lab.gateway.ns;
  await lab.exec(ns, "ip", ["link", "add", COUNTER_DEV, "type", "ifb"]);
  await lab.exec(ns, "ip", ["link", "set", "dev", COUNTER_DEV, "up"]);
  for (const dev of interfaces) {
    await lab.exec(ns, "tc", ["qdisc", "add", "dev", dev, "clsact"]);
    await lab.exec(ns, "tc", [
      "filter", "add", "dev", dev, "ingress", "protocol", "ip", "prio", "1",
      "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", COUNTER_DEV, "pass",
    ]);
  }
}

/** Best effort: the lab is destroyed anyway. */
async function removeCountingFilters(lab: Lab, interfaces: readonly string[]): Promise<void> {
  if (lab.destroyed) return;
  for (const dev of interfaces) await lab.tryExec(lab.gateway.ns, "tc", ["qdisc", "del", "dev", dev, "clsact"]);
  await lab.tryExec(lab.gateway.ns, "ip", ["link", "del", "dev", COUNTER_DEV]);
}

interface TcFilterEntry {
  options?: { actions?: Array<{ kind?: string; to_dev?: string; stats?: { packets?: number } }> };
}

/** Packets the counting filter at the ingress of `dev` has seen (its mirred action's count). */
async function filterPackets(lab: Lab, dev: string): Promise<number> {
  const out = (await lab.exec(lab.gateway.ns, "tc", ["-s", "-j", "filter", "show", "dev", dev, "ingress"])).stdout;
  const actions = (JSON.parse(out) as TcFilterEntry[]).flatMap((f) => f.options?.actions ?? []).filter((a) => a.kind === "mirred" && a.to_dev === COUNTER_DEV);
  if (actions.length !== 1 || typeof actions[0]!.stats?.packets !== "number") throw new Error(`no counting filter at the ingress of ${dev}: ${out}`);
  return actions[0]!.stats.packets;
}

test.serial("classic tc filters and later tcx programs on a managed interface still see the frames the fast path passes on", async (t) => {
  const interfaces = ["eth0", "eth1"] as const;
  await withKfLab(
    t,
    { offloads: true, config: (lab) => fastPathConfig(lab, { services: [tcpService(lab, [1, 1, 1]), udpService(lab)] }) },
    async ({ lab, servers, natlb }) => {
      await startUdpEchoes(lab);
      assertOneProgramOnEach(t, await tcxPrograms(lab));
      try {
        // natlb runs, its tcx links are attached: a clsact qdisc and a filter go on beside them.
        await addCountingFilters(lab, interfaces);
        assertOneProgramOnEach(t, await tcxPrograms(lab));
        const before = { eth0: await filterPackets(lab, "eth0"), eth1: await filterPackets(lab, "eth1") };
        const start = (await natlb!.status()).counters;

        // Traffic the program passes on ("next"): ICMP, UDP, and TCP connections too short to be handed over.
        const pings = 5;
        const ping = await pingFrom(lab, lab.client.ns, lab.vip, pings);
        t.is(ping.received, pings, "pings to the VIP with the clsact filters on");
        const udp = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 30, sockets: 3, localPortBase: 37000 });
        t.is(udp.received, 30, `lost: ${udp.lost.join(",")}`);
        const conns = 3;
        const short = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 1024, "kf-tc"), conns, count: conns, localPortBase: 37050 });
        await assertIntact(t, short, servers, lab, 1024);

        const c = (await natlb!.status()).counters;
        t.is(c.flowsOffloaded, 0, "nothing of this traffic was handed over (or the test means nothing)");
        t.is(c.kernelForwardedPackets, start.kernelForwardedPackets, "the kernel forwarded none of it");
        t.is(c.icmpEchoReplies - start.icmpEchoReplies, pings);

        // natlb saw all of it (after TC), and so did the classic filters: on eth0 every echo request, datagram
        // and at least SYN, request and FIN of each connection; on eth1 every echo reply of the reals and at
        // least SYN-ACK, response and FIN of each connection.
        const after = { eth0: await filterPackets(lab, "eth0"), eth1: await filterPackets(lab, "eth1") };
        const seen = { eth0: after.eth0 - before.eth0, eth1: after.eth1 - before.eth1 };
        const expected = { eth0: pings + udp.sent + 3 * conns, eth1: udp.received + 3 * conns };
        const qdiscs = await lab.exec(lab.gateway.ns, "tc", ["-s", "qdisc", "show", "dev", "eth0"]);
        t.log(JSON.stringify({ seen, expected, userSpaceFrames: c.rxFrames - start.rxFrames }), qdiscs.stdout);
        t.true(seen.eth0 >= expected.eth0, `the filter at eth0's ingress saw ${seen.eth0} frames, at least ${expected.eth0} passed it`);
        t.true(seen.eth1 >= expected.eth1, `the filter at eth1's ingress saw ${seen.eth1} frames, at least ${expected.eth1} passed it`);
        t.true(c.rxFrames - start.rxFrames >= expected.eth0 + expected.eth1, "natlb's rings saw them too");

        // The fast path itself still works beside the filters.
        const bytes = 8 * MiB;
        const long = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "kf-tc-long"), conns: 3, count: 3, localPortBase: 37100 });
        await assertIntact(t, long, servers, lab, bytes);
        const end = (await natlb!.status()).counters;
        t.is(end.flowsOffloaded, 3, "the long downloads were handed over with the filters on");
        t.true(end.kernelForwardedBytes >= 0.9 * 3 * bytes, `kernelForwardedBytes ${end.kernelForwardedBytes}`);
        assertNoDataPlaneErrors(t, end);
      } finally {
        await removeCountingFilters(lab, interfaces);
      }
    },
  );
});

// ---------------------------------------------------------------------------------------------------

/** An address of the client subnet (198.18.0.0/24) that no lab host uses: a next hop that never answers ARP. */
const DEAD_NEXT_HOP = "198.18.0.50";

test.serial("a route change that moves an offloaded flow's next hop takes it back from the kernel", async (t) => {
  const chunkBytes = 16 * 1024;
  const chunks = 150;  // one every 100 ms: 15 s, longer than the hand-over, the withdrawal and the outage
  const localPort = 37500;
  await withKfLab(
    t,
    { offloads: true, reals: 1, config: (lab) => ({ services: [pacedService(lab.vip, [lab.reals[0]!.ip])], kernelFastPath: true }) },
    async ({ lab, natlb }) => {
      const ns = lab.gateway.ns;
      const hostRoute = [`${lab.client.ip}/32`, "via", DEAD_NEXT_HOP, "dev", "eth0"];
      // The dead next hop is on eth0's subnet (198.18.0.0/24, as the client) and no lab address.
      t.true(lab.client.ip.startsWith("198.18.0.") && lab.gateway.clientIp.startsWith("198.18.0."), `client ${lab.client.ip}, gateway ${lab.gateway.clientIp}`);
      t.false([lab.client.ip, lab.gateway.clientIp, lab.vip, lab.vip2].includes(DEAD_NEXT_HOP));
      const server = await startPacedServer(lab, 1, PACED_REAL_PORT, { chunkBytes, intervalMs: 100, chunks });
      const client = startPacedClient(lab, { host: lab.vip, port: PACED_SERVICE_PORT, localPort, expectBytes: chunks * chunkBytes, timeoutMs: 90_000 });
      let routeAdded = false;
      try {
        const offloaded = await waitUntil("the stream in the kernel", async () => {
          const s = await natlb!.status();
          return s.kernelFastPath.flows === 1 && s.counters.flowsOffloaded === 1 ? s : undefined;
        }, 8000, 100).catch(() => undefined);
        t.truthy(offloaded, `the stream was not handed over: ${JSON.stringify((await natlb!.status()).kernelFastPath)}`);
        if (offloaded === undefined) return;
        // The kernel forwards it for a while.
        await sleep(500);
        const handedOver = (await natlb!.status()).counters;
        t.true(handedOver.kernelForwardedPackets > offloaded.counters.kernelForwardedPackets, "the kernel forwards the stream");

        // The client's host route now goes via a next hop nobody answers for. natlb re-reads the routes every 5 s.
        await lab.exec(ns, "ip", ["route", "add", ...hostRoute]);
        routeAdded = true;
        const routeChanged = Date.now();
        const withdrawn = await waitUntil("the stream to leave the kernel", async () => {
          const s = await natlb!.status();
          return s.kernelFastPath.flows === 0 ? s : undefined;
        }, 12_000, 100).catch(() => undefined);
        t.truthy(withdrawn, `the flow is still in the kernel 12 s after its next hop changed: ${JSON.stringify((await natlb!.status()).kernelFastPath)}`);
        if (withdrawn === undefined) return;
        t.log(`withdrawn ${Date.now() - routeChanged} ms after the route change`);
        t.true(client.tool.running, "the stream still runs (or the test means nothing)");
        const flow = flowOf(await natlb!.connections(), lab, localPort);
        t.is(flow?.state, "ESTABLISHED", `the withdrawn flow stays in user space's map: ${JSON.stringify(flow)}`);

        // User space forwards it now: the real's segments go towards the dead next hop, which never answers.
        const dropsFrom = withdrawn.counters;
        const dropping = await waitUntil("a segment of the real dropped for want of a neighbour", async () => {
          const c = (await natlb!.status()).counters;
          return c.dropNoNeighbour > dropsFrom.dropNoNeighbour ? c : undefined;
        }, 5000, 100).catch(() => undefined);
        t.truthy(dropping, `user space dropped no segment of the real towards ${DEAD_NEXT_HOP}: ${JSON.stringify((await natlb!.status()).counters)}`);
        t.true((dropping?.arpRequestsSent ?? 0) > handedOver.arpRequestsSent, `natlb asked for ${DEAD_NEXT_HOP}`);
        // Segments in flight at the withdrawal may still be the kernel's; after that, none.
        const kernelAfterWithdrawal = (await natlb!.status()).counters.kernelForwardedPackets;

        await lab.exec(ns, "ip", ["route", "del", ...hostRoute]);
        routeAdded = false;
        // Back on the old route (within the next refresh): the stream goes on, forwarded by user space,
        // and completes intact after the real's retransmission back-off.
        const got = await client.received(60_000);
        const sent = await server.sentTo(localPort, 5000);
        t.is(got.bytes, sent.bytes);
        t.is(got.sha256, sent.sha256, "sha256 at the client differs from the server's");

        const end = (await natlb!.status()).counters;
        t.log(JSON.stringify({
          kernelForwardedPackets: { handedOver: handedOver.kernelForwardedPackets, withdrawn: withdrawn.counters.kernelForwardedPackets, afterWithdrawal: kernelAfterWithdrawal, end: end.kernelForwardedPackets },
          toClient: { withdrawn: withdrawn.counters.toClient, end: end.toClient }, toReal: { withdrawn: withdrawn.counters.toReal, end: end.toReal },
          dropNoNeighbour: end.dropNoNeighbour, arpRequestsSent: end.arpRequestsSent, gotMs: got.ms,
        }));
        t.is(end.flowsOffloaded, 1, "the flow was not handed over again");
        t.is((await natlb!.status()).kernelFastPath.flows, 0);
        t.is(end.kernelForwardedPackets, kernelAfterWithdrawal, "the kernel forwarded segments of the withdrawn flow");
        t.true(end.toClient > (dropping?.toClient ?? withdrawn.counters.toClient), "user space forwarded the real's segments once the route was back");
        t.true(end.toReal > withdrawn.counters.toReal, "user space forwarded the client's segments");
        t.is(end.dropNoFlow, 0, "no segment lost its flow");
      } finally {
        if (routeAdded) await lab.tryExec(ns, "ip", ["route", "del", ...hostRoute]);
        await Promise.all([client.stop(), server.stop()]);
      }
    },
  );
});

test.serial("every kf lab namespace made by this file is gone", async (t) => {
  const mine: string[] = [];
  for (const ns of await listLabNamespaces(PREFIX)) if ((await namespaceOwnerPid(ns)) === process.pid) mine.push(ns);
  t.deepEqual(mine, []);
});
