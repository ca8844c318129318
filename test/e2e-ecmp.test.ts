// End to end, scale-out behind ECMP (lab/ecmpTopology.ts): a router running BIRD with kernel ECMP (L4
// hash), natlb instances that each announce the VIP through their own BIRD, direct-routing reals. Real
// packets: paced streams checked by sha256 against what the servers sent, a killed instance (SIGKILL to
// natlb and its BIRD, links left up), its flows picked up mid-stream by the survivors, its return, and
// the withdrawals (graceful stop, every real down on one instance).
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import test, { type ExecutionContext } from "ava";
import type { StartBalancerOptions } from "../lab/balancerProcess";
import { blobUrl, runDownload } from "../lab/download";
import { startFlood } from "../lab/flood";
import { startUdpEcho } from "../lab/udpEcho";
import { startGapProbe } from "../lab/udpGapProbe";
import { requestControl } from "../src/control";
import { startBlobServer, type BlobServerHandle } from "../lab/blobServer";
import { createEcmpLab, type EcmpLab } from "../lab/ecmpTopology";
import { ECMP_MH_SEED, killInstance, realsDownFlag, startInstance, startInstanceBird, startInstanceNatlb, waitForNexthops, type RunningInstance } from "../lab/ecmpInstances";
import { startStreamClient, startStreamServer, type StreamClientHandle, type StreamServerHandle } from "./support/pacedStream";

const STREAM_PORT = 80;
const SHORT_PORT = 8080;
const UDP_PORT = 53;
const PORTS = [{ port: STREAM_PORT, protocol: "tcp" }, { port: SHORT_PORT, protocol: "tcp" }, { port: UDP_PORT, protocol: "udp" }] as const;
const KiB = 1024;
// 64 KiB every 20 ms: 3.2 MiB/s per stream, 28 MiB in about 9 s whatever the machine's speed.
const CHUNK = 64 * KiB;
const CHUNKS = 450;
const STREAM_BYTES = CHUNK * CHUNKS;

interface EcmpEnv {
  lab: EcmpLab;
  instances: RunningInstance[];
  streamServers: StreamServerHandle[];
  blobServers: BlobServerHandle[];
}

async function withEcmpLab(
  t: ExecutionContext, instanceCount: number, body: (env: EcmpEnv) => Promise<void>, natlbOptions: (index: number) => StartBalancerOptions = () => ({}),
  configExtra: Record<string, unknown> = {},
): Promise<void> {
  const lab = await createEcmpLab({ instances: instanceCount, reals: 3, offloads: true, prefix: "ecmp" });
  const env: EcmpEnv = { lab, instances: lab.instances.map((instance) => ({ instance, natlb: undefined, bird: undefined })), streamServers: [], blobServers: [] };
  try {
    env.streamServers = await Promise.all(lab.reals.map((_, i) =>
      startStreamServer(lab, i + 1, STREAM_PORT, { sendBytes: STREAM_BYTES, chunkBytes: CHUNK, intervalMs: 20, maxSeconds: 280 })));
    env.blobServers = await Promise.all(lab.reals.map((_, i) => startBlobServer(lab, i + 1, SHORT_PORT, { maxSeconds: 280 })));
    // Bound to the VIP, so a direct-routing real answers from it.
    await Promise.all(lab.reals.map((_, i) => startUdpEcho(lab, i + 1, UDP_PORT, { host: lab.vip, quiet: true })));
    for (const running of env.instances) await startInstance(lab, running, PORTS, natlbOptions(running.instance.index), configExtra);
    await waitForNexthops(lab, lab.vip, lab.instances);
    await body(env);
  } catch (error) {
    for (const { instance, natlb, bird } of env.instances) {
      if (natlb) t.log(`g${instance.index} natlb output:\n${natlb.output().slice(-4000)}`);
      if (bird) t.log(`g${instance.index} BIRD:\n${bird.output().slice(-2000)}`);
    }
    t.log(`router BIRD:\n${lab.destroyed ? "" : lab.routerBird.output().slice(-2000)}`);
    throw error;
  } finally {
    for (const { natlb } of env.instances) await natlb?.stop().catch(() => undefined);
    await lab.destroy();
  }
}

/** Starts paced streams from client ports `firstPort`.. and waits until each has its first MiB. */
async function startStreams(lab: EcmpLab, firstPort: number, count: number): Promise<Array<{ port: number; client: StreamClientHandle }>> {
  const streams = Array.from({ length: count }, (_, i) => {
    const port = firstPort + i;
    return { port, client: startStreamClient(lab, { host: lab.vip, port: STREAM_PORT, localPort: port, timeoutMs: 120_000, progressMs: 200 }) };
  });
  await Promise.all(streams.map((s) => s.client.waitForBytes(1024 * KiB, 30_000)));
  return streams;
}

/** Every stream ends with all its bytes, and the sha256 the real that served it computed. */
async function assertStreamsIntact(t: ExecutionContext, env: EcmpEnv, streams: Array<{ port: number; client: StreamClientHandle }>): Promise<void> {
  for (const { port, client } of streams) {
    const end = await client.ended(90_000);
    t.is(end.event, "done", `stream from port ${port}: ${JSON.stringify(end)}`);
    t.is(end["bytes"], STREAM_BYTES, `stream from port ${port}`);
    const servers = env.streamServers.filter((s) => s.acceptedPorts().includes(port));
    t.is(servers.length, 1, `the connection from port ${port} was accepted by exactly one real (once)`);
    const sent = await servers[0]!.sentTo(port, 10_000);
    t.is(end["sha256"], sent.sha256, `stream from port ${port}: sha256 at the client differs from the server's`);
  }
}

/** Short downloads on the second service: every one complete, with the serving real's sha256. */
async function assertNewConnections(t: ExecutionContext, env: EcmpEnv, localPortBase: number, seed: string): Promise<void> {
  const summary = await runDownload(env.lab, { url: blobUrl(env.lab.vip, SHORT_PORT, 256 * KiB, seed), conns: 4, count: 24, localPortBase, timeoutMs: 60_000 });
  t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error).slice(0, 3)));
  for (const result of summary.results) {
    const served = env.blobServers.find((s) => s.real.ip === result.real)?.served().filter((e) => e.peerPort === result.localPort).pop();
    t.truthy(served, `no real logged the download from port ${result.localPort}`);
    t.is(result.sha256, served?.sha256 ?? null);
  }
}

test.serial("ecmp: 3 instances behind a BIRD router; one killed mid-download: its flows are picked up by the others, all 8 streams arrive intact; it rejoins without breaking 8 more", async (t) => {
  await withEcmpLab(t, 3, async (env) => {
    const { lab, instances } = env;
    t.deepEqual(await lab.routerNexthops(lab.vip), lab.instances.map((g) => g.clientIp).sort(), "one nexthop per instance");
    for (const { natlb } of instances) {
      const status = await natlb!.status();
      t.deepEqual(status.services.map((s) => [s.port, s.mhSeed, s.midStreamPickUp]), PORTS.map((p) => [p.port, ECMP_MH_SEED, p.protocol === "tcp" ? true : undefined]), "pick-up is on by default with bgp (TCP's)");
      const bgp = status.bgp;
      t.deepEqual(bgp?.announced, [lab.vip]);
      t.is(bgp?.announcements, 1);
    }
    const routesText = readFileSync(lab.instances[0]!.routesFile, "utf8");
    t.regex(routesText, new RegExp(`^route ${lab.vip.replace(/\./g, "\\.")}/32 blackhole;$`, "m"));

    // 8 paced streams, spread by the router's hash over the instances.
    const first = await startStreams(lab, 41_000, 8);
    const carried = await Promise.all(instances.map(async ({ natlb }) =>
      new Set((await natlb!.connections()).filter((c) => c.vip.port === STREAM_PORT).map((c) => c.client.port))));
    t.log(`streams per instance: ${carried.map((ports, i) => `g${i + 1} [${[...ports].join(" ")}]`).join(", ")}`);
    const victimIndex = carried.reduce((best, ports, i) => (ports.size > carried[best]!.size ? i : best), 0);
    const victim = instances[victimIndex]!;
    const moved = [...carried[victimIndex]!];
    t.true(moved.length > 0, "the instance to kill carries streams");
    const survivors = instances.filter((r) => r !== victim);
    const pickUpsBefore = await Promise.all(survivors.map(async ({ natlb }) => (await natlb!.status()).counters.midStreamPickUps));

    await killInstance(victim);
    await waitForNexthops(lab, lab.vip, survivors.map((r) => r.instance));
    await assertNewConnections(t, env, 43_000, "after-kill");
    await assertStreamsIntact(t, env, first);

    // The survivors took the dead instance's flows over mid-stream, dropping none of their segments.
    const survivorFlows = (await Promise.all(survivors.map(({ natlb }) => natlb!.connections()))).flat();
    const pickedUp = new Set(survivorFlows.filter((c) => c.pickedUp === true && c.vip.port === STREAM_PORT).map((c) => c.client.port));
    for (const port of moved) t.true(pickedUp.has(port), `the stream from port ${port} was picked up by a survivor`);
    t.true(survivorFlows.every((c) => c.synced === undefined), "no sync runs here: no flow is marked synced (the two marks are apart)");
    let pickUps = 0;
    for (const [i, { natlb }] of survivors.entries()) {
      const c = (await natlb!.status()).counters;
      pickUps += c.midStreamPickUps - pickUpsBefore[i]!;
      t.is(c.dropNoFlow, 0, `g${survivors[i]!.instance.index} dropped no segment of an unknown flow`);
    }
    t.true(pickUps >= moved.length, `${pickUps} pick-ups for ${moved.length} moved streams`);

    // 8 more streams, and the killed instance comes back while they run (its natlb starts first, then
    // its BIRD announces it).
    await startInstanceNatlb(lab, victim, PORTS);
    const second = await startStreams(lab, 42_000, 8);
    await startInstanceBird(lab, victim);
    await waitForNexthops(lab, lab.vip, lab.instances);
    const unfinished = second.filter((s) => s.client.bytes() < STREAM_BYTES).length;
    t.log(`${unfinished} of the 8 streams still ran when the instance was back`);
    t.true(unfinished >= 4, "the rejoin happened while streams ran");
    t.deepEqual((await victim.natlb!.status()).bgp?.announced, [lab.vip]);
    await assertStreamsIntact(t, env, second);
    // What the returning instance carries of those streams began elsewhere: it picked each up.
    const rejoined = (await victim.natlb!.connections()).filter((c) => c.vip.port === STREAM_PORT && c.client.port >= 42_000 && c.client.port < 42_008);
    t.log(`the rejoined instance took over ${rejoined.length} of the 8 running streams (the router's hash decides)`);
    for (const flow of rejoined) t.true(flow.pickedUp === true, `stream from port ${flow.client.port} on the rejoined instance`);
    t.is((await victim.natlb!.status()).counters.dropNoFlow, 0);
    await assertNewConnections(t, env, 44_000, "after-rejoin");
  });
});

test.serial("ecmp: an instance withdraws the VIP when its reals all go down (and announces it again when they are back), when natlb stops after an uncaught error, and when it stops gracefully", async (t) => {
  await withEcmpLab(t, 2, async (env) => {
    const { lab, instances } = env;
    const [first, second] = instances as [RunningInstance, RunningInstance];

    // Every real down on the first instance only (its health checks fail): the router keeps the second.
    const flag = realsDownFlag(lab, first.instance);
    writeFileSync(flag, "");
    await waitForNexthops(lab, lab.vip, [second.instance]);
    let bgp = (await first.natlb!.status()).bgp!;
    t.deepEqual(bgp.announced, []);
    t.is(bgp.withdrawals, 1);
    t.false(readFileSync(first.instance.routesFile, "utf8").includes(lab.vip), "the routes file no longer names the VIP");
    await assertNewConnections(t, env, 45_000, "one-instance");

    rmSync(flag);
    await waitForNexthops(lab, lab.vip, lab.instances);
    bgp = (await first.natlb!.status()).bgp!;
    t.deepEqual(bgp.announced, [lab.vip]);
    t.is(bgp.announcements, 2);
    t.regex((await first.natlb!.cli(["status"])).stdout, new RegExp(`bgp \\(BIRD .*\\): announcing ${lab.vip.replace(/\./g, "\\.")}; 2 announcement\\(s\\), 1 withdrawal\\(s\\)`));

    // An uncaught exception in the second instance's natlb: its fatal-error stop withdraws the VIP; BIRD goes
    // on. 16 UDP flows run across it: the ones it carried move to the first instance, which picks the same real.
    const probeMs = 8000;
    const probe = startGapProbe(lab, { host: lab.vip, port: UDP_PORT, sockets: 16, intervalMs: 20, durationMs: probeMs, localPortBase: 48_000, ns: lab.client.ns });
    await probe.tool.waitForEvent((e) => e.event === "started", 10_000, "the UDP probe's start");
    await new Promise((resolve) => setTimeout(resolve, 1500));
    t.deepEqual(await requestControl(second.natlb!.socket, "POST /test/throw?kind=exception"), { ok: true, kind: "exception" });
    const exit = await new Promise((resolve) => second.natlb!.child.once("exit", (code) => resolve(code)));
    t.is(exit, 1);
    t.regex(second.natlb!.output(), /VIP withdrawn through BIRD/);
    await second.natlb!.stop();
    second.natlb = undefined;
    await waitForNexthops(lab, lab.vip, [first.instance]);
    t.notRegex(readFileSync(second.instance.routesFile, "utf8"), /^route /m);
    const gaps = await probe.summary();
    for (const flow of gaps.sockets) {
      t.deepEqual(flow.reals.length, 1, `UDP flow from port ${flow.localPort} was answered by ${flow.reals.join(", ")}`);
      t.true(flow.gapEndsAt < gaps.stoppedAt, `UDP flow from port ${flow.localPort} was answered again after the crash (longest gap ${flow.longestGapMs} ms)`);
    }
    t.log(`UDP flows: longest gaps ${gaps.sockets.map((f) => f.longestGapMs).sort((a, b) => b - a).slice(0, 8).join(", ")} ms`);
    await assertNewConnections(t, env, 46_000, "after-crash");

    // The first one's natlb stops (SIGTERM), its BIRD goes on: the router has no route left.
    await first.natlb!.stop();
    first.natlb = undefined;
    await waitForNexthops(lab, lab.vip, []);
    t.notRegex(readFileSync(first.instance.routesFile, "utf8"), /^route /m);
    t.true(existsSync(first.instance.birdSocket), "BIRD still runs");
  }, (index) => (index === 2 ? { wrapper: ["env", "NATLB_TEST_HOOKS=1"] } : {}));
});

test.serial("ecmp: a spoofed flood of ACKs of no connection is picked up as unassured flows, held to the half-open share and evicted, while real connections go on", async (t) => {
  const capacity = 4096;
  const halfOpenShare = 0.25;
  await withEcmpLab(t, 2, async (env) => {
    const { lab, instances } = env;
    const flood = await startFlood(lab, { kind: "ack", ns: lab.client.ns, target: { ip: lab.vip, port: STREAM_PORT }, rate: 10_000, count: 40_000, seconds: 8, seed: 13 });
    await assertNewConnections(t, env, 47_000, "during-ack-flood");
    const sent = (await flood.done).sent;
    t.true(sent >= 30_000, `the generator sent ${sent} ACKs`);
    let pickUps = 0;
    for (const { instance, natlb } of instances) {
      const status = await natlb!.status();
      const f = status.flows;
      pickUps += status.counters.midStreamPickUps;
      t.log(`g${instance.index}: ${status.counters.midStreamPickUps} picked up, ${f.unassured.halfOpenTcp} unassured now, ${f.evicted.halfOpenTcpShare} evicted at the share, ${f.live} live`);
      t.true(f.unassured.halfOpenTcp <= capacity * halfOpenShare, `g${instance.index}: the picked-up flows stay within the half-open share`);
      t.true(f.unassured.halfOpenTcp > 0, `g${instance.index}: they are still unassured (a spoofed ACK proves nothing)`);
      t.true(f.evicted.halfOpenTcpShare > 0, `g${instance.index}: older ones were evicted for newer`);
      t.is(status.counters.dropFlowTableFull, 0);
    }
    t.true(pickUps >= sent * 0.9, `${pickUps} pick-ups of ${sent} ACKs`);
  }, () => ({}), { flowCapacity: capacity, floodProtection: { halfOpenShare } });
});
