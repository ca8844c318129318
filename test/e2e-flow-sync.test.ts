// The flow sync between two natlb daemons (lab/syncPairTopology.ts): connections made through A appear
// in B's flow map with the same real and state (read through B's control API), B started late gets a
// snapshot of A's flows, and a datagram from another host of the LAN with a wrong key is rejected,
// counted and creates nothing; a persistent client's template made on A reaches B, and the client's
// network keeps to that real through B.
import test, { type ExecutionContext } from "ava";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startBalancer, type BalancerHost, type BalancerProcess, type StartBalancerOptions } from "../lab/balancerProcess";
import { blobSha256 } from "../lab/blobContent";
import { startBlobServer } from "../lab/blobServer";
import { blobUrl, runDownload, type DownloadSummary } from "../lab/download";
import { startFlood } from "../lab/flood";
import { createSyncPairLab, PEER_GATEWAY_BACKEND_IP, PEER_GATEWAY_STUB_IP, type SyncPairLab } from "../lab/syncPairTopology";
import type { Lab } from "../lab/topology";
import { waitUntil } from "../lab/wait";
import { requestControl } from "../src/control";
import { loadNative } from "../src/native";
import type { Connection } from "../src/flows/flowMap";
import { holdConnections } from "./support/heldConnections";
import { startPacedClient, startPacedServer } from "./support/pacedStream";
import { REAL_PORT, SERVICE_PORT, tcpService } from "./support/lab";

const SYNC_PORT = 8848;

const syncCounters = async (natlb: BalancerProcess): Promise<Record<string, number>> => (await natlb.status()).sync?.counters ?? {};
const byClientPort = (conns: Connection[]) => new Map(conns.filter((c) => c.template === undefined).map((c) => [c.client.port, c]));

interface SyncPairRun {
  pair: SyncPairLab;
  lab: Lab;
  keyFile: string;
  holder: ReturnType<typeof holdConnections>;
  /** Starts a natlb, named for the logs; stopped (last started first) when the test ends. */
  start(name: string, host: BalancerHost, config: unknown, options?: StartBalancerOptions): Promise<BalancerProcess>;
}

/** The sync pair lab with blob servers on its two reals, a key file, and the natlbs' output logged on failure. */
async function withSyncPair(t: ExecutionContext, key: string | Buffer, body: (run: SyncPairRun) => Promise<void>, reals = 2): Promise<void> {
  const pair = await createSyncPairLab({ reals, offloads: true });
  const { lab } = pair;
  const keyDir = mkdtempSync(join(tmpdir(), "natlb-sync-"));
  const keyFile = join(keyDir, "sync.key");
  writeFileSync(keyFile, key, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  const started: Array<[string, BalancerProcess]> = [];
  const holder = holdConnections(lab.client.ns);
  const start = async (name: string, host: BalancerHost, config: unknown, options?: StartBalancerOptions) => {
    const natlb = await startBalancer(host, config, options);
    started.push([name, natlb]);
    return natlb;
  };
  try {
    await Promise.all(lab.reals.map((_, i) => startBlobServer(lab, i + 1, REAL_PORT)));
    await body({ pair, lab, keyFile, holder, start });
  } catch (error) {
    for (const [name, natlb] of started) t.log(`natlb ${name} output:\n${natlb.output()}`);
    throw error;
  } finally {
    holder.stop();
    for (const [, natlb] of [...started].reverse()) await natlb.stop().catch(() => undefined);
    await pair.destroy();
    rmSync(keyDir, { recursive: true, force: true });
  }
}

test("flows made through A reach B with their real and state; a late B gets a snapshot; a wrong key is rejected", async (t) => {
  await withSyncPair(t, randomBytes(32).toString("hex"), async ({ pair, lab, keyFile, holder, start }) => {
    const service = tcpService(lab, [1, 1]);
    const a = await start("A", pair.fromA, {
      services: [service],
      sync: { listen: `${lab.gateway.backendIp}:${SYNC_PORT}`, peers: [`${PEER_GATEWAY_BACKEND_IP}:${SYNC_PORT}`], keyFile },
    });
    const first = await holder.open(lab.vip, SERVICE_PORT, 10);
    t.is(first.failed, 0);
    await waitUntil("A's first flows established", async () => {
      const conns = byClientPort(await a!.connections());
      return first.opened.every((p) => conns.get(p)?.state === "ESTABLISHED");
    }, 10_000);

    // B starts late, with the reals in the other order (other real ids): it asks A for a snapshot.
    const b = await start("B", pair.fromPeer, {
      services: [{ ...service, reals: [...service.reals].reverse() }],
      sync: { listen: `${PEER_GATEWAY_BACKEND_IP}:${SYNC_PORT}`, peers: [`${lab.gateway.backendIp}:${SYNC_PORT}`], keyFile },
    }, { wrapper: ["env", "NATLB_TEST_HOOKS=1"] });
    await waitUntil("B's snapshot", async () => (await syncCounters(b!)).snapshotsCompleted! >= 1, 10_000);
    const afterSnapshot = await syncCounters(b);
    t.true(afterSnapshot.snapshotRecordsReceived! >= 10, JSON.stringify(afterSnapshot));
    const aConns = byClientPort(await a.connections());
    const bConns = byClientPort(await b.connections());
    for (const port of first.opened) {
      t.is(bConns.get(port)?.real.ip, aConns.get(port)!.real.ip, `client port ${port}`);
      t.is(bConns.get(port)?.state, "ESTABLISHED", `client port ${port}`);
      t.true(bConns.get(port)?.synced, `client port ${port}: synced, not made on B`);
      t.is(bConns.get(port)?.pickedUp, undefined, `client port ${port}: synced is not a mid-stream pick-up`);
      t.is(aConns.get(port)!.synced, undefined);
    }
    // B claimed their replies in its kernel when it applied them (B forwarded none of their packets), so
    // a real's reply that reaches B after a take-over is natlb's.
    const claims = (await pair.fromPeer.exec(pair.peer.ns, "/usr/sbin/nft", ["list", "set", "netdev", "natlb", "replies"])).stdout;
    for (const port of first.opened) {
      t.regex(claims, new RegExp(`tcp \\. ${REAL_PORT} \\. ${lab.client.ip.replace(/\./g, "\\.")} \\. ${port}\\b`), `client port ${port}`);
    }
    t.is((await b.status()).counters.replyClaimSignals >= 10, true);
    // B counts them for its own reals (ipvsadm's ActiveConn), whatever ids it gave them.
    const activeOnB = (await b.status()).services[0]!.reals.reduce((sum, r) => sum + r.activeConns, 0);
    t.is(activeOnB, 10);

    // B taking over would hand its established flows to its kernel fast path at once (when it has one).
    if ((await b.status()).kernelFastPath.enabled) {
      t.deepEqual(await requestControl(b.socket, "POST /test/offload-established"), { offloaded: 10 });
      t.is((await b.status()).kernelFastPath.flows, 10);
      t.deepEqual(await requestControl(b.socket, "POST /test/offload-established"), { offloaded: 0 }, "each flow once");
    } else {
      t.log(`B has no kernel fast path: ${(await b.status()).kernelFastPath.unavailable}`);
    }

    // Live: new connections and closes stream to B as they happen.
    const second = await holder.open(lab.vip, SERVICE_PORT, 10);
    t.is(second.failed, 0);
    const closed = second.opened.slice(0, 5);
    await holder.close(closed);
    await waitUntil("B to follow A's states", async () => {
      const [onA, onB] = [byClientPort(await a!.connections()), byClientPort(await b!.connections())];
      return second.opened.every((p) => onA.get(p) !== undefined && onB.get(p)?.state === onA.get(p)!.state && onB.get(p)?.real.ip === onA.get(p)!.real.ip) &&
        closed.every((p) => onA.get(p)!.state !== "ESTABLISHED");
    }, 10_000);
    const live = await syncCounters(b);
    t.true(live.appliedInserted! >= 20, JSON.stringify(live));
    t.true((await syncCounters(a)).sentRecords! >= 20);
    // A applied nothing of its own flows back (no ping-pong), and B made none of its own.
    t.is((await syncCounters(a)).appliedInserted, 0);
    t.is((await b.status()).counters.newFlows, 0);

    // A host of the LAN (the rogue, 198.18.1.99) sends B a well-formed datagram made with another key.
    const native = loadNative();
    const forged = native.syncMessage.encode(
      { type: native.syncMessage.types.flows, senderId: 7, sequence: 1, timestampMs: Date.now() },
      [{ protocol: 6, state: 2, flags: 4, clientIp: lab.client.ip, clientPort: 999, vip: lab.vip, vport: SERVICE_PORT, realIp: lab.reals[0]!.ip, realPort: REAL_PORT }],
      new Uint8Array(randomBytes(32)),
    );
    const rogue = lab.backendRogue!;
    const before = await syncCounters(b);
    await lab.exec(rogue.ns, process.execPath, ["-e",
      `const s = require("node:dgram").createSocket("udp4"); s.send(Buffer.from("${Buffer.from(forged).toString("hex")}", "hex"), ${SYNC_PORT}, "${PEER_GATEWAY_BACKEND_IP}", () => s.close());`]);
    await waitUntil("B to count the forged datagram", async () => (await syncCounters(b!)).rejectedBadMac === (before.rejectedBadMac ?? 0) + 1, 5_000);
    const afterForgery = await syncCounters(b);
    t.is(afterForgery.appliedInserted, before.appliedInserted);
    t.false([...byClientPort(await b.connections()).keys()].includes(999));

    // The operator's view: `natlb status` on B says what the sync did.
    const status = await b.cli(["status"]);
    t.regex(status.stdout, /sync: 198\.18\.1\.2:8848 <-> 198\.18\.1\.1:8848; .*rejectedBadMac 1/);
  });
});

// Sync and mid-stream pick-up together (instances behind ECMP that sync too): a flow A picks up from a
// bare ACK of no connection stays on A until it proves itself, so a spoofed flood's flows never reach B,
// while A's real connections do.
test("a flow picked up mid-stream is not synced before it proves itself: a spoofed ACK flood's flows stay on A", async (t) => {
  await withSyncPair(t, randomBytes(32).toString("hex"), async ({ pair, lab, keyFile, holder, start }) => {
    const service = tcpService(lab, [1, 1], { scheduler: "mh", mhSeed: 7, midStreamPickUp: true });
    const a = await start("A", pair.fromA, {
      services: [service],
      sync: { listen: `${lab.gateway.backendIp}:${SYNC_PORT}`, peers: [`${PEER_GATEWAY_BACKEND_IP}:${SYNC_PORT}`], keyFile },
    });
    const b = await start("B", pair.fromPeer, {
      services: [service],
      sync: { listen: `${PEER_GATEWAY_BACKEND_IP}:${SYNC_PORT}`, peers: [`${lab.gateway.backendIp}:${SYNC_PORT}`], keyFile },
    });
    await waitUntil("A and B to hear each other", async () => (await syncCounters(a!)).peersHeard! >= 1 && (await syncCounters(b!)).peersHeard! >= 1, 10_000);

    const flood = await startFlood(pair.fromA, { kind: "ack", ns: lab.client.ns, target: { ip: lab.vip, port: SERVICE_PORT }, rate: 1000, count: 300, seconds: 5, seed: 13 });
    const sent = (await flood.done).sent;
    t.true(sent >= 250, `the generator sent ${sent} ACKs`);
    await waitUntil("A to pick the ACKs up", async () => (await a!.status()).counters.midStreamPickUps >= sent * 0.9, 10_000);
    // Real connections after the flood: their records reach B, so the sync ran all along.
    const real = await holder.open(lab.vip, SERVICE_PORT, 5);
    t.is(real.failed, 0);
    await waitUntil("B to learn A's real connections", async () => {
      const onB = byClientPort(await b!.connections());
      return real.opened.every((p) => onB.get(p)?.state === "ESTABLISHED");
    }, 10_000);

    const onA = (await a.connections()).filter((c) => c.pickedUp === true);
    t.true(onA.length >= sent * 0.9, `${onA.length} picked-up flows on A`);
    t.true(onA.every((c) => c.client.ip !== lab.client.ip && c.synced === undefined));
    t.true((await a.status()).flows.unassured.halfOpenTcp >= onA.length, "A holds them unassured (a bare ACK proves nothing)");
    const onB = await b.connections();
    t.deepEqual(onB.filter((c) => c.client.ip !== lab.client.ip), [], "no picked-up flow of the flood reached B");
    t.true(onB.every((c) => c.synced === true && c.pickedUp === undefined));
    t.is((await syncCounters(b)).appliedInserted, real.opened.length, "B applied A's real connections only");
  });
});

test("over a multicast group: B, started first, learns A's connections as they are made, and a busy one again every refreshS", async (t) => {
  await withSyncPair(t, randomBytes(48), async ({ pair, lab, keyFile, holder, start }) => {
    const service = tcpService(lab, [1, 1]);
    const streamed = { vip: lab.vip, port: 82, protocol: "tcp", reals: [{ ip: lab.reals[0]!.ip, port: 9090 }] };
    const multicast = { group: "239.18.0.1", interface: "eth1" };
    const sync = (listen: string) => ({ listen: `${listen}:${SYNC_PORT}`, multicast, keyFile, refreshS: 1 });
    const b = await start("B", pair.fromPeer, { services: [service, streamed], sync: sync(PEER_GATEWAY_BACKEND_IP) });
    const a = await start("A", pair.fromA, { services: [service, streamed], sync: sync(lab.gateway.backendIp) });
    const opened = await holder.open(lab.vip, SERVICE_PORT, 8);
    t.is(opened.failed, 0);
    await waitUntil("B to learn A's connections", async () => {
      const [onA, onB] = [byClientPort(await a!.connections()), byClientPort(await b!.connections())];
      return opened.opened.every((p) => onA.get(p)?.state === "ESTABLISHED" && onB.get(p)?.state === "ESTABLISHED" && onB.get(p)?.real.ip === onA.get(p)!.real.ip);
    }, 10_000);
    t.true((await syncCounters(b)).appliedInserted! >= 8);
    t.is((await syncCounters(a)).rejectedBadMac, 0);

    // A stream busy for 4 s (on A's kernel fast path once established, where it runs): sent again
    // every second (refreshS 1), so B's copy lives on; the idle held connections are not.
    const server = await startPacedServer(lab, 1, 9090, { chunkBytes: 16 * 1024, intervalMs: 100, chunks: 40 });
    const updatedBefore = (await syncCounters(b)).appliedUpdated!;
    const client = startPacedClient(lab, { host: lab.vip, port: 82, localPort: 45082, expectBytes: 40 * 16 * 1024, lingerMs: 0, timeoutMs: 20_000 });
    try {
      await client.received(20_000);
    } finally {
      await client.stop();
      await server.stop();
    }
    const refreshed = await syncCounters(a);
    t.true(refreshed.refreshRecordsSent! >= 2, JSON.stringify(refreshed));
    t.true((await syncCounters(b)).appliedUpdated! >= updatedBefore + 2);
    // Idle flows are not sent again and again: nothing has traffic now (the stream ended, the held
    // connections idle; each was re-sent at most once, after its handshake).
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const idle = (await syncCounters(a)).refreshRecordsSent!;
    await new Promise((resolve) => setTimeout(resolve, 2500));
    t.is((await syncCounters(a)).refreshRecordsSent, idle);
    t.is(byClientPort(await b.connections()).get(45082)?.real.ip, lab.reals[0]!.ip);
  });
});

/** Every body intact (sha256); the reals that served them, in order. */
function realsOf(t: ExecutionContext, summary: DownloadSummary, bytes: number, seed: string): string[] {
  t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
  const expected = blobSha256(seed, bytes);
  t.deepEqual(summary.results.filter((r) => r.sha256 !== expected || r.bytes !== bytes).map((r) => r.index), [], "every body intact (sha256)");
  return summary.results.map((r) => r.real!);
}

test("persistence: the template A binds for a client's /24 reaches B; new connections of that network through B keep to its real", async (t) => {
  await withSyncPair(t, randomBytes(32), async ({ pair, lab, keyFile, start }) => {
    // Another host of the client's /24 (198.18.0.77 on the stub, behind B): the reals answer it through B.
    const neighbour = "198.18.0.77";
    const bytes = 64 * 1024;
    const persistent = tcpService(lab, [1, 1, 1], { scheduler: "rr", persistence: { timeoutS: 300, netmask: "255.255.255.0" } });
    const spread = { ...tcpService(lab, [1, 1, 1], { scheduler: "rr" }), vip: lab.vip2 };
    const sync = (listen: string, peer: string) => ({ listen: `${listen}:${SYNC_PORT}`, peers: [`${peer}:${SYNC_PORT}`], keyFile });
    await start("A", pair.fromA, { services: [persistent, spread], sync: sync(lab.gateway.backendIp, PEER_GATEWAY_BACKEND_IP) });
    // B numbers the reals the other way round (other ids, another first rr pick).
    const b = await start("B", pair.fromPeer, {
      services: [{ ...persistent, reals: [...persistent.reals].reverse() }, spread],
      sync: sync(PEER_GATEWAY_BACKEND_IP, lab.gateway.backendIp),
    });
    const throughA = realsOf(t, await runDownload(pair.fromA, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "a"), count: 4, timeoutMs: 30_000 }), bytes, "a");
    t.is(new Set(throughA).size, 1, `through A: ${throughA.join(" ")}`);
    const held = throughA[0]!;

    const templatesOnB = async () => {
      const listed = await b.cli(["conns", "--templates", "--service", `${lab.vip}:${SERVICE_PORT}`, "--json"]);
      t.is(listed.code, 0, listed.stderr);
      return (JSON.parse(listed.stdout) as { connections: Connection[] }).connections.filter((c) => c.template !== undefined);
    };
    await waitUntil("B to hold A's template", async () => (await templatesOnB()).length === 1, 10_000);
    const [synced] = await templatesOnB();
    t.deepEqual(synced!.client, { ip: "198.18.0.0", port: 0 });
    t.is(synced!.real.ip, held);
    t.is((await b.status()).counters.newFlows, 0, "B made nothing itself: the template came by sync");
    t.is((await b.status()).services[0]!.templates, 1);

    // The neighbour reaches the VIPs through B; the reals answer it through B.
    await pair.fromPeer.exec(pair.stub.ns, "ip", ["addr", "add", `${neighbour}/32`, "dev", pair.stub.ifname]);
    for (const vip of [lab.vip, lab.vip2]) await pair.fromPeer.exec(pair.stub.ns, "ip", ["route", "add", `${vip}/32`, "via", PEER_GATEWAY_STUB_IP]);
    for (const real of lab.reals) await pair.fromA.exec(real.ns, "ip", ["route", "add", `${neighbour}/32`, "via", PEER_GATEWAY_BACKEND_IP]);
    const throughB = (vip: string, seed: string) =>
      runDownload(pair.fromPeer, { url: blobUrl(vip, SERVICE_PORT, bytes, seed), count: 9, timeoutMs: 30_000, ns: pair.stub.ns, localAddress: neighbour });
    // Without persistence, B's rr spreads the neighbour's connections over the three reals...
    const spreadOnB = realsOf(t, await throughB(lab.vip2, "spread"), bytes, "spread");
    t.is(new Set(spreadOnB).size, 3, `without persistence through B: ${spreadOnB.join(" ")}`);
    // ...with it, every one goes to the real A bound the /24 to.
    const keptOnB = realsOf(t, await throughB(lab.vip, "kept"), bytes, "kept");
    t.deepEqual(keptOnB, Array(9).fill(held), `through B: ${keptOnB.join(" ")}`);
    t.true((await b.status()).counters.newFlows >= 18, "the neighbour's connections went through B");
    const after = await templatesOnB();
    t.is(after.length, 1);
    t.is(after[0]!.real.ip, held);
    t.like(await syncCounters(b), { rejectedConflict: 0, rejectedInvalidRecord: 0, rejectedUnknownService: 0 });
  }, 3);
});
