// Crash safety, end to end with real packets: an uncaught exception or unhandled rejection in the daemon
// (test hooks, src/testHooks.ts, enabled with NATLB_TEST_HOOKS=1) stops forwarding, removes the kernel
// set-up and exits 1 with the error logged; SIGKILL in the middle of a download, then `natlb run` again
// with nothing in between, cleans up what the dead run left and forwards; the event loop blocked for 2 s
// stops neither forwarding (user space and the kernel fast path) nor flow expiry. Labs use the prefix "cs".
import { existsSync } from "node:fs";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { startBalancer, type BalancerProcess } from "../lab/balancerProcess";
import type { BlobServerHandle } from "../lab/blobServer";
import { blobUrl, runDownload, type DownloadSummary } from "../lab/download";
import { namespaceOwnerPid } from "../lab/staleLabs";
import { listLabNamespaces, type Lab } from "../lab/topology";
import { runUdpClient } from "../lab/udpEcho";
import { sleep, waitUntil } from "../lab/wait";
import { requestControl } from "../src/control";
import { REAL_PORT, SERVICE_PORT, UDP_REAL_PORT, UDP_SERVICE_PORT, gatewaySnapshot, startUdpEchoes, tcpService, udpService, withNatLab } from "./support/lab";
import { startPacedClient, startPacedServer, startStreamClient, startStreamServer } from "./support/pacedStream";
import { assertDirectDownloads } from "./support/trafficChecks";

const MiB = 1024 * 1024;
const PREFIX = "cs";
const WITH_TEST_HOOKS = ["env", "NATLB_TEST_HOOKS=1"];
/** The event-loop test's short connection: VIP:SHORT_SERVICE_PORT -> real 2:SHORT_REAL_PORT. */
const SHORT_SERVICE_PORT = 82;
const SHORT_REAL_PORT = 9001;
const SHORT_LOCAL_PORT = 42_100;
const NATIVE_MODULE = join(__dirname, "..", "src", "native.js");

/** The program ids at tcx ingress of the gateway's eth0 and eth1 (the kernel fast path's). */
async function tcxPrograms(lab: Lab): Promise<number[]> {
  const script =
    `const n = require(${JSON.stringify(NATIVE_MODULE)}).loadNative();` +
    `console.log(JSON.stringify([...n.tcxIngressPrograms("eth0"), ...n.tcxIngressPrograms("eth1")]));`;
  return JSON.parse((await lab.exec(lab.gateway.ns, process.execPath, ["-e", script])).stdout) as number[];
}

function exitOf(natlb: BalancerProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (natlb.child.exitCode !== null || natlb.child.signalCode !== null) {
    return Promise.resolve({ code: natlb.child.exitCode, signal: natlb.child.signalCode });
  }
  return new Promise((resolve) => natlb.child.once("exit", (code, signal) => resolve({ code, signal })));
}

/** Lets the gateway's kernel learn every real as its neighbour, as any traffic would (see e2e-lifecycle). */
async function warmNeighbours(lab: Lab, portBase: number): Promise<void> {
  for (const [i, real] of lab.reals.entries()) {
    await runDownload(lab, { url: blobUrl(real.ip, REAL_PORT, 1024, "warm"), localPortBase: portBase + i });
  }
}

/** Every download completed, with the body the real that answered logged for that client port. */
function assertIntact(t: ExecutionContext, summary: DownloadSummary, servers: BlobServerHandle[], bytes: number): void {
  t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
  for (const result of summary.results) {
    t.is(result.bytes, bytes);
    const served = servers.find((s) => s.real.ip === result.real)?.served().filter((e) => e.peerPort === result.localPort).pop();
    t.is(result.sha256, served?.sha256 ?? null, `sha256 at the client differs from the server's (port ${result.localPort})`);
  }
}

/** Downloads through the VIP; the servers' log lines come through pipes of their own: give them a moment. */
async function downloadThroughVip(lab: Lab, servers: BlobServerHandle[], seed: string, localPortBase: number): Promise<DownloadSummary> {
  const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 4 * MiB, seed), conns: 3, count: 3, localPortBase, timeoutMs: 30_000 });
  await waitUntil("the servers' log lines", () =>
    summary.results.every((r) => servers.some((s) => s.served().some((e) => e.peerPort === r.localPort))), 3000, 20).catch(() => undefined);
  return summary;
}

for (const kind of ["exception", "rejection"] as const) {
  test.serial(`an uncaught ${kind} stops forwarding, removes the kernel set-up (nftables, routes, TC program) and exits 1 with the error logged`, async (t) => {
    await withNatLab(t, { offloads: true, startNatlb: false, prefix: PREFIX }, async (env) => {
      const { lab, servers } = env;
      await warmNeighbours(lab, 39_900);
      const before = await gatewaySnapshot(lab);
      t.deepEqual(await tcxPrograms(lab), []);
      env.natlb = await startBalancer(lab, { services: [tcpService(lab, [1, 1, 1])] }, { wrapper: WITH_TEST_HOOKS });
      const natlb = env.natlb;
      assertIntact(t, await downloadThroughVip(lab, servers, `cs-${kind}`, 40_000), servers, 4 * MiB);
      t.is((await tcxPrograms(lab)).length, 2, "the kernel fast path runs (a TC program on eth0 and eth1)");
      t.regex((await gatewaySnapshot(lab)).nftables, /table netdev natlb/);

      t.deepEqual(await requestControl(natlb.socket, `POST /test/throw?kind=${kind}`), { ok: true, kind });
      const exit = await exitOf(natlb);
      t.deepEqual(exit, { code: 1, signal: null }, natlb.output());
      const origin = kind === "exception" ? "uncaughtException" : "unhandledRejection";
      const fatal = natlb.output().split("\n").find((line) => line.includes(`"origin":"${origin}"`));
      t.regex(fatal ?? "", new RegExp(`test hook: an (uncaught exception|unhandled rejection)`));
      t.regex(fatal ?? "", /"level":60/, "logged as fatal");
      t.regex(natlb.output(), /natlb stopped/, "the balancer's own stop ran");

      t.deepEqual(await tcxPrograms(lab), [], "no TC program left");
      const after = await gatewaySnapshot(lab);
      for (const key of Object.keys(before)) t.is(after[key], before[key], `${key} differs after the crash`);
      // The lab is healthy: the reals answer directly, and a new natlb (without the hooks) forwards.
      await assertDirectDownloads(t, lab, servers);
      env.natlb = await startBalancer(lab, { services: [tcpService(lab, [1, 1, 1])] });
      assertIntact(t, await downloadThroughVip(lab, servers, `cs-${kind}-again`, 40_100), servers, 4 * MiB);
      // Without NATLB_TEST_HOOKS=1 the hooks do not exist.
      const refused = await requestControl(env.natlb.socket, "POST /test/throw?kind=exception").then(() => "answered", (e: Error) => e.message);
      t.regex(refused, /unknown route POST \/test\/throw/);
      await sleep(200);
      t.is(env.natlb.child.exitCode, null, "natlb still runs");
    });
  });
}

test.serial("SIGKILL in the middle of a download, then `natlb run` again with the same config and no kernel-undo: it cleans up, comes up and forwards", async (t) => {
  await withNatLab(t, { offloads: true, startNatlb: false, prefix: PREFIX }, async (env) => {
    const { lab, servers } = env;
    await warmNeighbours(lab, 39_950);
    const before = await gatewaySnapshot(lab);
    const config = { services: [tcpService(lab, [1, 1, 1])] };  // kernelFastPath "auto": on, as root
    const first = await startBalancer(lab, config);
    env.natlb = first;
    const programsBefore = await tcxPrograms(lab);
    t.is(programsBefore.length, 2);

    // A download that outlasts the kill: 512 MiB, kept by the kernel fast path.
    const running = runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 512 * MiB, "cs-kill"), conns: 2, count: 2, localPortBase: 41_000, timeoutMs: 15_000, sha: false });
    const mid = await waitUntil("the download to be under way in the kernel fast path", async () => {
      const s = await first.status();
      // Handed over after the handshake, or scheduled by the kernel itself (the default).
      return s.counters.flowsOffloaded + s.counters.kernelScheduledFlows >= 2 && s.counters.kernelForwardedBytes > 16 * MiB ? s : undefined;
    }, 15_000, 50);
    t.true(mid.kernelFastPath.enabled);
    first.child.kill("SIGKILL");
    t.deepEqual(await exitOf(first), { code: null, signal: "SIGKILL" });
    env.natlb = undefined;

    // What the dead run left: its nftables table, its blackhole route, its control socket file.
    const left = await gatewaySnapshot(lab);
    t.regex(left.nftables, /table netdev natlb/, "the killed natlb's table is still there (or this test means nothing)");
    t.not(left.routes, before.routes, "the killed natlb's blackhole route is still there");
    t.true(existsSync(first.socket), "the killed natlb's control socket file is still there");

    const second = await startBalancer(lab, config, { socket: first.socket });
    env.natlb = second;
    const programsAfter = await tcxPrograms(lab);
    t.is(programsAfter.length, 2, `one program on each interface: ${JSON.stringify(programsAfter)}`);
    t.deepEqual(programsAfter.filter((id) => programsBefore.includes(id)), [], "the dead run's programs are gone");
    t.is((await second.status()).flows.live, 0, "a new flow map");
    t.deepEqual((await gatewaySnapshot(lab)).routes, left.routes, "one blackhole route, the same as before");
    const nft = await lab.exec(lab.gateway.ns, "/usr/sbin/nft", ["list", "tables"]);
    t.is(nft.stdout.split("\n").filter((l) => l.includes("natlb")).length, 1, nft.stdout);

    const again = await downloadThroughVip(lab, servers, "cs-after-kill", 41_100);
    assertIntact(t, again, servers, 4 * MiB);
    const { flowsOffloaded, kernelScheduledFlows } = (await second.status()).counters;
    t.true(flowsOffloaded + kernelScheduledFlows >= 3, "the new connections took the kernel fast path");
    const killed = await running;
    t.log(`the download cut by the kill: ${killed.ok} ok, ${killed.failed} failed`);

    t.deepEqual(await second.stop("SIGTERM"), { code: 0, signal: null });
    env.natlb = undefined;
    await first.stop().catch(() => undefined);  // its temporary directory
    const after = await gatewaySnapshot(lab);
    // The client's sockets of the cut download, orphaned in the client's kernel, still retransmit their
    // FIN to the VIP for a while: with natlb gone the gateway's kernel asks who has the VIP. That entry
    // is the client's doing, not natlb's state.
    after.neighbours = after.neighbours!.split("\n").filter((line) => !line.startsWith(`${lab.vip} `)).join("\n");
    for (const key of Object.keys(before)) t.is(after[key], before[key], `${key} differs after the second natlb stopped`);
  });
});

test.serial("the event loop blocked for 2 s: the kernel fast path and user space go on forwarding, and a UDP flow expires on time", async (t) => {
  const pacedPort = 81;
  const pacedRealPort = 9000;
  await withNatLab(
    t,
    {
      offloads: true,
      prefix: PREFIX,
      startNatlb: false,
    },
    async (env) => {
      const { lab } = env;
      await startUdpEchoes(lab);
      env.natlb = await startBalancer(lab, {
        services: [
          { vip: lab.vip, port: pacedPort, protocol: "tcp", scheduler: "rr", reals: [{ ip: lab.reals[0]!.ip, port: pacedRealPort }] },
          { vip: lab.vip, port: SHORT_SERVICE_PORT, protocol: "tcp", scheduler: "rr", reals: [{ ip: lab.reals[1]!.ip, port: SHORT_REAL_PORT }] },
          udpService(lab),
        ],
        timeouts: { udp: 1 },
        // The short connection must stay in user space (that is what the block must not stop): the kernel
        // schedules none of them, and hands the stream over after its handshake.
        kernelScheduling: false,
      }, { wrapper: WITH_TEST_HOOKS });
      const natlb = env.natlb;
      // A stream of 64 KiB every 20 ms (3.2 MB/s) for 8 s.
      const chunkBytes = 64 * 1024;
      const chunks = 400;
      const localPort = 42_000;
      const server = await startPacedServer(lab, 1, pacedRealPort, { chunkBytes, intervalMs: 20, chunks });
      const stoppers: Array<() => Promise<void>> = [];
      const client = startPacedClient(lab, { host: lab.vip, port: pacedPort, localPort, expectBytes: chunks * chunkBytes, timeoutMs: 40_000, progressMs: 50 });
      try {
        await client.waitForBytes(40 * chunkBytes, 15_000);
        await waitUntil("the stream in the kernel fast path", async () => (await natlb.status()).kernelFastPath.flows === 1, 5000, 50);

        // A short TCP connection that stays in user space (fewer than the 16 packets of a hand-over), idle.
        const shortServer = await startStreamServer(lab, 2, SHORT_REAL_PORT, { sendBytes: 1000, holdOpen: true, maxSeconds: 60 });
        const shortClient = startStreamClient(lab, { host: lab.vip, port: SHORT_SERVICE_PORT, localPort: SHORT_LOCAL_PORT, expectBytes: 1000, lingerMs: 30_000, timeoutMs: 45_000 });
        const short = { server: shortServer, client: shortClient };
        stoppers.push(() => shortClient.stop(), () => shortServer.stop());
        await shortClient.received(10_000);

        // A UDP flow from port 43000, idle from now on: it expires after 1 s, during the block. Its reply
        // claim in the kernel's list (nftables set "replies") goes with it: that is seen from outside.
        const udp = (localPortBase: number) =>
          runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 1, sockets: 1, localPortBase, timeoutMs: 1000 });
        const claims = async () => (await lab.exec(lab.gateway.ns, "/usr/sbin/nft", ["list", "set", "netdev", "natlb", "replies"])).stdout;
        const claimOf = (port: number) => new RegExp(`udp \\. ${UDP_REAL_PORT} \\. ${lab.client.ip.replace(/\./g, "\\.")} \\. ${port}\\b`);
        const first = await udp(43_000);
        const idleSince = Date.now();
        t.is(first.received, 1);
        t.regex(await claims(), claimOf(43_000), "the flow's reply claim is in the kernel's list");

        const countersBefore = (await natlb.status()).counters;
        t.deepEqual(await requestControl(natlb.socket, "POST /test/block?ms=2000"), { ok: true, ms: 2000 });
        const blockLine = await waitUntil("the block to begin", () => natlb.output().split("\n").find((l) => l.includes("blocking the event loop")), 5000, 5);
        const from = (JSON.parse(blockLine) as { from: number }).from;
        t.true(from - idleSince < 1000, `the block began ${from - idleSince} ms after the UDP exchange: too late for this test`);
        // During the block: the short connection writes 1000 bytes, which user space forwards to its real;
        // and the idle UDP flow's claim disappears.
        await sleep(Math.max(0, from + 500 - Date.now()));
        const wrote = short.client.write(3000);
        const [expiredAt, deliveredAt] = await Promise.all([
          waitUntil("the idle flow's claim to go", async () => (claimOf(43_000).test(await claims()) ? undefined : Date.now()), 5000, 50),
          waitUntil("the short connection's bytes at its real", () => (short.server.gotFrom(SHORT_LOCAL_PORT) >= 1000 ? Date.now() : undefined), 5000, 5),
        ]);
        await wrote;
        const unblockLine = await waitUntil("the block to end", () => natlb.output().split("\n").find((l) => l.includes("event loop unblocked")), 10_000, 5);
        const to = (JSON.parse(unblockLine) as { to: number }).to;
        const countersAfter = (await natlb.status()).counters;

        t.true(to - from >= 2000, `blocked ${to - from} ms`);
        t.log({ idleMs: expiredAt - idleSince, expiredAfterBlockBegan: expiredAt - from, deliveredAfterBlockBegan: deliveredAt - from, blockedMs: to - from });
        t.true(deliveredAt > from && deliveredAt < to, `the short connection's bytes reached its real ${deliveredAt - from} ms after the block began (it lasted ${to - from} ms)`);
        t.true(countersAfter.toReal > countersBefore.toReal, "user space forwarded them");
        t.true(expiredAt > from && expiredAt < to, `the idle flow expired ${expiredAt - from} ms after the block began (it lasted ${to - from} ms)`);
        // 1 s timeout, a sweep every 100 ms, and an nft listing every 50 ms that takes its own time.
        t.true(expiredAt - idleSince < 2200, `the idle flow expired ${expiredAt - idleSince} ms after its last packet (timeout 1 s)`);

        const streamed = client.bytesAt(to) - client.bytesAt(from);
        const kernelBytes = countersAfter.kernelForwardedBytes - countersBefore.kernelForwardedBytes;
        t.log({ bytesDuringBlock: streamed, kernelForwardedBytes: kernelBytes });
        t.true(streamed >= 0.5 * 3.2e6 * 2, `the client received ${streamed} bytes during the 2 s block (3.2 MB/s expected)`);
        // The client may read, early in the block, bytes its socket buffered before the counters were
        // read (a loaded machine delays it): a tenth of slack for those, where user space carrying the
        // stream would leave the kernel's count near zero.
        t.true(kernelBytes >= 0.9 * streamed, "the kernel fast path carried them");

        const got = await client.received(40_000);
        const sent = await server.sentTo(localPort, 5000);
        t.is(got.sha256, sent.sha256, "sha256 at the client differs from the server's");
        t.is(natlb.child.exitCode, null, "natlb still runs");
      } finally {
        await Promise.all([client.stop(), server.stop(), ...stoppers.map((stop) => stop())]);
      }
    },
  );
});

test.serial("every cs lab namespace made by this file is gone", async (t) => {
  const mine: string[] = [];
  for (const ns of await listLabNamespaces(PREFIX)) if ((await namespaceOwnerPid(ns)) === process.pid) mine.push(ns);
  t.deepEqual(mine, []);
});
