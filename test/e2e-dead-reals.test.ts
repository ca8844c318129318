// Flows of dead reals, with real packets (config deadRealFlows; src/balancer.ts endFlowsOfDeadReals,
// native/engine/engine.cc endPendingDeadRealFlows). A real is dead when its health check marks it down
// or it is removed; weight 0 only drains it.
// - keep: its connections go on to the end;
// - drop: they end in natlb: the client's connection stalls, nobody is told;
// - reset: natlb resets both ends of each TCP connection at once;
// - UDP (default drop): the client's next datagram goes to a live real; with keep it goes on to the dead one.
// New connections go to the remaining reals in every mode.
// The health check probes a separate port (the lab's blob server on 8080), which the test stops: the
// real's data service (a stream server on 9000, or the UDP echo) keeps running while it is "down".
// Every lab here uses the namespace prefix "fd".
import test, { type ExecutionContext } from "ava";
import type { BalancerStatus } from "../src/balancer";
import type { BalancerProcess } from "../lab/balancerProcess";
import { startCapture, type CapturedPacket } from "../lab/capture";
import type { Lab } from "../lab/topology";
import { sleep, waitUntil } from "../lab/wait";
import { REAL_PORT, UDP_REAL_PORT, UDP_SERVICE_PORT, startUdpEchoes, udpService, withNatLab } from "./support/lab";
import {
  downMarkTime,
  endingFlowsTime,
  startApiDriver,
  startStreamClient,
  startStreamServer,
  startUdpTalker,
  type StreamClientHandle,
  type StreamServerHandle,
} from "./support/routerChecks";

const PREFIX = "fd";
const KiB = 1024;
const STREAM_PORT = 81;
const STREAM_REAL_PORT = 9000;
/** A stream of 120 chunks of 64 KiB, one every 100 ms: about 12 s, so that the real dies in the middle of it. */
const CHUNK = 64 * KiB;
const STREAM_BYTES = 120 * CHUNK;
/** Probes the blob server on 8080, not the data service. A refused probe takes a real down at once. */
const HEALTH_CHECK = { type: "tcp", intervalMs: 200, timeoutMs: 200, rise: 2, fall: 2, port: REAL_PORT };
/** How soon after natlb marks the real down (or the removal returns) the resets must arrive. */
const PROMPT_MS = 2000;

type Counters = BalancerStatus["counters"];
type Mode = "keep" | "drop" | "reset";

function streamService(lab: Lab, extra: Record<string, unknown> = {}) {
  return {
    vip: lab.vip, port: STREAM_PORT, protocol: "tcp", scheduler: "rr",
    reals: lab.reals.map((r) => ({ ip: r.ip, port: STREAM_REAL_PORT })), ...extra,
  };
}

function deltas(after: Counters, before: Counters, names: Array<keyof Counters>): Record<string, number> {
  return Object.fromEntries(names.map((n) => [n, Number(after[n]) - Number(before[n])]));
}

/** Stream servers on every real (port 9000), each sending `bytes` (STREAM_BYTES) paced to each connection. */
function startStreamServers(lab: Lab, bytes = STREAM_BYTES): Promise<StreamServerHandle[]> {
  return Promise.all(lab.reals.map((_, i) => startStreamServer(lab, i + 1, STREAM_REAL_PORT, { sendBytes: bytes, chunkBytes: CHUNK, intervalMs: 100 })));
}

/** Index (0-based) of the real whose server accepted the connection from `port`. */
async function realOf(servers: StreamServerHandle[], port: number): Promise<number> {
  return waitUntil(`the connection from port ${port} at a real`, () => {
    const index = servers.findIndex((s) => s.acceptedPorts().includes(port));
    return index >= 0 ? index : undefined;
  }, 10_000, 20);
}

/** A long stream through the VIP, well under way (and handed to the kernel with the fast path). */
async function startLongStream(
  lab: Lab, servers: StreamServerHandle[], localPort: number, status: () => Promise<BalancerStatus>, kernelFastPath: boolean,
): Promise<{ client: StreamClientHandle; index: number }> {
  const client = startStreamClient(lab, { host: lab.vip, port: STREAM_PORT, localPort, timeoutMs: 30_000 });
  const index = await realOf(servers, localPort);
  await client.waitForBytes(8 * CHUNK, 10_000);
  if (kernelFastPath) await waitUntil("the stream in the kernel fast path", async () => (await status()).kernelFastPath.flows >= 1, 5000, 100);
  return { client, index };
}

/**
 * New connections through the VIP go to the live reals only: 6 short connections, each accepted by a
 * real other than `deadIndex`, and both of the others used.
 */
async function assertNewConnectionsAvoid(t: ExecutionContext, lab: Lab, servers: StreamServerHandle[], deadIndex: number, portBase: number): Promise<void> {
  const clients = Array.from({ length: 6 }, (_, i) => startStreamClient(lab, { host: lab.vip, port: STREAM_PORT, localPort: portBase + i, timeoutMs: 20_000 }));
  try {
    const reals = await Promise.all(clients.map((_, i) => realOf(servers, portBase + i)));
    t.false(reals.includes(deadIndex), `a new connection went to the dead real: ${JSON.stringify(reals)}`);
    t.is(new Set(reals).size, lab.reals.length - 1, `the new connections use every live real: ${JSON.stringify(reals)}`);
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
  }
}

// ---------------------------------------------------------------------------------------------------
// 4. A TCP stream whose real is marked down by its health check.

for (const kernelFastPath of [false, true]) {
  for (const mode of ["keep", "drop", "reset"] as const) {
    const title = `deadRealFlows ${mode}${kernelFastPath ? ", kernel fast path" : ""}: a TCP stream whose real's health check fails is ${
      mode === "keep" ? "kept to the end" : mode === "drop" ? "dropped (the client stalls, no reset)" : "reset at both ends within 2 s"
    }; new connections go to the other reals`;
    test.serial(title, async (t) => {
      await withNatLab(
        t,
        { offloads: true, prefix: PREFIX, config: (lab) => ({ services: [streamService(lab, { healthCheck: HEALTH_CHECK, deadRealFlows: mode })], kernelFastPath }) },
        async ({ lab, servers: healthListeners, natlb }) => {
          await checkDeadRealMode(t, lab, natlb!, healthListeners, mode, kernelFastPath);
        },
      );
    });
  }
}

async function checkDeadRealMode(
  t: ExecutionContext, lab: Lab, natlb: BalancerProcess, healthListeners: Array<{ stop(): Promise<void> }>, mode: Mode, kernelFastPath: boolean,
): Promise<void> {
  const streams = await startStreamServers(lab);
  // At the client: RSTs, and anything from a real's own address (a segment no flow rewrites any more);
  // on the backend link (the switch's port towards the gateway): RSTs.
  const atClient = await startCapture(lab, lab.client.ns, { filter: "tcp and (tcp[tcpflags] & tcp-rst != 0 or src net 198.18.1.0/24)", maxPackets: 1000, seconds: 50 });
  const atBackend = await startCapture(lab, lab.switch.ns, { ifname: "p-gw", filter: "tcp[tcpflags] & tcp-rst != 0", maxPackets: 1000, seconds: 50 });
  const { client, index } = await startLongStream(lab, streams, 41000, () => natlb.status(), kernelFastPath);
  const dead = lab.reals[index]!;
  const before = (await natlb.status()).counters;

  await healthListeners[index]!.stop();  // the real's data service keeps running
  const downAt = await downMarkTime(natlb, dead.ip, 5000);
  const bytesAtDown = client.bytesAt(downAt);
  t.true(bytesAtDown < STREAM_BYTES, "the real went down in the middle of the stream");

  let summary = "";
  if (mode === "keep") {
    const end = await client.ended(30_000);
    t.is(end.event, "done", JSON.stringify(end));
    t.is(end["bytes"], STREAM_BYTES);
    const sent = await streams[index]!.event("sent", 41000, 5000);
    t.is(end["sha256"], sent["sha256"], "the stream arrived intact from the dead real");
    summary = `stream done ${Number(end["t"]) - downAt} ms after the down mark, ${STREAM_BYTES - bytesAtDown} bytes after it`;
  } else if (mode === "drop") {
    await sleep(3500);
    const settled = client.bytesAt(downAt + 500);
    const now = client.bytes();
    t.is(now, settled, `the client got ${now - settled} bytes more after the flow was dropped`);
    t.true(now < STREAM_BYTES);
    t.is(client.failure(), undefined, "the client's connection was not reset or closed: it stalls");
    const conns = await natlb.connections();
    t.false(conns.some((c) => c.client.port === 41000), "the flow is gone from the flow map");
    summary = `client stalled at ${now} bytes (${now - bytesAtDown} after the down mark)`;
  } else {
    const end = await client.ended(PROMPT_MS + 3000);
    t.is(end.event, "failed");
    t.is(end["reason"], "ECONNRESET", "the client's connection was reset");
    const clientLag = Number(end["t"]) - downAt;
    t.true(clientLag <= PROMPT_MS, `the client was reset ${clientLag} ms after the down mark`);
    const closed = await streams[index]!.event("closed", 41000, PROMPT_MS + 3000);
    t.is(closed["reason"], "ECONNRESET", "the real's server saw its connection reset");
    const realLag = Number(closed["t"]) - downAt;
    t.true(realLag <= PROMPT_MS, `the real was reset ${realLag} ms after the down mark`);
    summary = `client reset ${clientLag} ms and real reset ${realLag} ms after the down mark, at ${end["bytes"]} bytes`;
  }
  if (kernelFastPath && mode !== "keep") t.is((await natlb.status()).kernelFastPath.flows, 0, "its kernel fast path entries are gone");

  const after = (await natlb.status()).counters;
  const counted = deltas(after, before, ["deadRealFlowsEnded", "tcpResetsSent", "dropNoFlow", "dropNoNeighbour"]);
  const expected = { keep: [0, 0], drop: [1, 0], reset: [1, 2] }[mode];
  t.is(counted["deadRealFlowsEnded"], expected[0], "deadRealFlowsEnded");
  t.is(counted["tcpResetsSent"], expected[1], "tcpResetsSent: one to the client, one to the real, per flow");

  const clientResets = await atClient.stop();
  const realResets = await atBackend.stop();
  const fromVip = clientResets.filter((p) => p.src === lab.vip && p.dport === 41000 && p.tcpFlags?.includes("RST"));
  const unrewritten = clientResets.filter((p) => p.src === dead.ip);
  const toReal = realResets.filter((p) => p.src === lab.client.ip && p.sport === 41000 && p.dst === dead.ip);
  t.is(fromVip.length, mode === "reset" ? 1 : 0, `RSTs from the VIP at the client: ${JSON.stringify(fromVip)}`);
  // (A segment the real sent just before natlb's RST reached it finds no flow and reaches the client
  // un-rewritten, whose stack answers with one more RST: rare, and not natlb's.)
  if (mode === "reset") t.true(toReal.length >= 1, `an RST for the real's end: ${JSON.stringify(toReal)}`);
  if (mode === "keep") t.is(toReal.length, 0);

  await assertNewConnectionsAvoid(t, lab, streams, index, 42000);
  const show = (packets: CapturedPacket[]) =>
    packets.filter((p) => (p.sport === 41000 || p.dport === 41000) && p.sport !== REAL_PORT && p.tcpFlags?.includes("RST")).map((p) => `${p.src}:${p.sport}>${p.dst}:${p.dport}`).join(" ") || "none";
  const realEnd = streams[index]!.tool.events.find((e) => e.event === "closed" && e["peerPort"] === 41000);
  t.log(
    `${mode}${kernelFastPath ? " (fast path)" : ""}: ${dead.ip} marked down at ${bytesAtDown} of ${STREAM_BYTES} bytes; ${summary}; ` +
      `counters ${JSON.stringify(counted)}; the stream's RSTs at the client: ${show(clientResets)}, on the backend link: ${show(realResets)}; ` +
      `real's end: ${realEnd ? String(realEnd["reason"]) : "still open"}; segments from ${dead.ip}:${STREAM_REAL_PORT} that reached the client un-rewritten: ${unrewritten.length}`,
  );
  await client.stop();
  for (const s of streams) await s.stop();
}

// ---------------------------------------------------------------------------------------------------
// 5. UDP: a client that keeps talking on one socket.

for (const variant of ["health check, default (drop)", "health check, keep", "natlb real remove, default (drop)"] as const) {
  const keep = variant.includes("keep");
  const title = keep
    ? `UDP, deadRealFlows keep: datagrams on one socket keep going to their real after it is marked down`
    : `UDP, ${variant}: the next datagrams on the same socket are answered by another real once theirs is ${variant.startsWith("natlb") ? "removed" : "marked down"}`;
  test.serial(title, async (t) => {
    const extra = { scheduler: "rr", ...(variant.startsWith("health") ? { healthCheck: HEALTH_CHECK } : {}), ...(keep ? { deadRealFlows: "keep" } : {}) };
    await withNatLab(t, { offloads: true, prefix: PREFIX, config: (lab) => ({ services: [udpService(lab, extra)] }) }, async ({ lab, servers: healthListeners, natlb }) => {
      const echoes = await startUdpEchoes(lab);
      const talker = startUdpTalker(lab, { host: lab.vip, port: UDP_SERVICE_PORT, localPort: 40700, count: 60, intervalMs: 100 });
      await waitUntil("5 replies", () => talker.replies().length >= 5, 5000, 20);
      const first = talker.replies()[0]!.real;
      const index = lab.reals.findIndex((r) => r.ip === first);
      t.true(index >= 0, `replies name a real: ${first}`);
      t.true(talker.replies().every((r) => r.real === first), "one flow, one real");
      const before = (await natlb!.status()).counters;
      let deadAt: number;
      const changeStartedAt = Date.now();
      if (variant.startsWith("natlb")) {
        const removed = await natlb!.cli(["real", "remove", `${lab.vip}:${UDP_SERVICE_PORT}/udp`, `${first}:${UDP_REAL_PORT}`]);
        t.is(removed.code, 0, removed.stderr);
        deadAt = Date.now();
      } else {
        await healthListeners[index]!.stop();  // the echo server keeps running
        deadAt = await downMarkTime(natlb!, first, 5000);
      }
      await talker.finished(20_000);
      const replies = talker.replies();
      const after = replies.filter((r) => r.t > deadAt + 300);
      const afterReals = [...new Set(after.map((r) => r.real))];
      const wrongSource = replies.filter((r) => r.from !== `${lab.vip}:${UDP_SERVICE_PORT}`);
      const lost = talker.sentCount() - new Set(replies.map((r) => r.seq)).size;
      const counted = deltas((await natlb!.status()).counters, before, ["deadRealFlowsEnded", "newFlows"]);
      t.log(
        `${variant}: first real ${first}; ${talker.sentCount()} sent, ${replies.length} replies, lost ${lost}; after the change: ${after.length} replies from ${afterReals.join(", ")}; ` +
          `replies not from the VIP: ${JSON.stringify(wrongSource)}; counters ${JSON.stringify(counted)}`,
      );
      t.true(after.length >= 15, `the client kept talking after the change: ${after.length} replies`);
      if (keep) {
        t.deepEqual(afterReals, [first], "with keep, the dead real still answers");
        t.is(counted["deadRealFlowsEnded"], 0);
        t.is(counted["newFlows"], 0);
      } else {
        t.is(afterReals.length, 1, `one new flow, one new real: ${afterReals.join(", ")}`);
        t.not(afterReals[0], first, "another real answers the next datagrams");
        t.is(counted["deadRealFlowsEnded"], 1, "the dead real's flow was ended");
        t.is(counted["newFlows"], 1, "the next datagram made a new flow");
        const firstDead = echoes[index]!.echoes().filter((e) => e.peerPort === 40700).length;
        t.true(firstDead < talker.sentCount(), "the dead real stopped receiving");
      }
      t.is(lost, 0, "no datagram went unanswered");
      // A reply already in flight when its flow is dropped is no longer natlb's: it takes the kernel's
      // path as the real's own traffic (README, "Flows of dead reals"). At most that one, right then.
      const inFlight = keep ? [] : wrongSource.filter((r) => r.real === first && r.t >= changeStartedAt && r.t < deadAt + 100);
      t.true(inFlight.length <= 1, `at most one reply in flight at the drop: ${JSON.stringify(inFlight)}`);
      t.deepEqual(wrongSource.filter((r) => !inFlight.includes(r)), [], "every other reply came from VIP:53");
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// 6. Removing a real applies the same policy; weight 0 only drains.

test.serial("reset: weight 0 drains a real's TCP stream (no reset); `natlb real remove` then resets it at both ends within 2 s", async (t) => {
  await withNatLab(
    t,
    { offloads: true, prefix: PREFIX, config: (lab) => ({ services: [streamService(lab, { deadRealFlows: "reset" })] }) },
    async ({ lab, natlb }) => {
      // A longer stream (20 s): it must still run after the drain phase; the reset ends it early.
      const streams = await startStreamServers(lab, 200 * CHUNK);
      const { client, index } = await startLongStream(lab, streams, 41000, () => natlb!.status(), false);
      const real = lab.reals[index]!;
      const before = (await natlb!.status()).counters;

      const weighted = await natlb!.cli(["real", "weight", `${lab.vip}:${STREAM_PORT}`, `${real.ip}:${STREAM_REAL_PORT}`, "0"]);
      t.is(weighted.code, 0, weighted.stderr);
      const drainingFrom = client.bytes();
      await sleep(1000);
      t.true(client.bytes() > drainingFrom + 4 * CHUNK, `the drained stream goes on: ${drainingFrom} -> ${client.bytes()} bytes`);
      t.is(client.failure(), undefined);
      await assertNewConnectionsAvoid(t, lab, streams, index, 42000);
      const drained = (await natlb!.status()).counters;
      t.deepEqual(deltas(drained, before, ["deadRealFlowsEnded", "tcpResetsSent"]), { deadRealFlowsEnded: 0, tcpResetsSent: 0 }, "weight 0 ends nothing");

      const commandAt = Date.now();
      const removed = await natlb!.cli(["real", "remove", `${lab.vip}:${STREAM_PORT}`, `${real.ip}:${STREAM_REAL_PORT}`]);
      t.is(removed.code, 0, removed.stderr);
      // The daemon logs when the removal is applied and the flows are to end (the command's own start-up
      // time is not natlb's).
      const removedAt = await endingFlowsTime(natlb!, real.ip, 5000);
      t.log(`natlb real remove: the command took ${Date.now() - commandAt} ms, the daemon applied it ${removedAt - commandAt} ms after the start`);
      t.true(client.bytesAt(removedAt) < 200 * CHUNK, "the real was removed in the middle of the stream");
      const end = await client.ended(PROMPT_MS + 3000);
      t.is(end["reason"], "ECONNRESET", JSON.stringify(end));
      const clientLag = Number(end["t"]) - removedAt;
      t.true(clientLag <= PROMPT_MS, `the client was reset ${clientLag} ms after the removal`);
      t.true(Number(end["t"]) >= commandAt, "not before the removal");
      const closed = await streams[index]!.event("closed", 41000, PROMPT_MS + 3000);
      t.is(closed["reason"], "ECONNRESET", "the real's server saw its connection reset");
      const after = (await natlb!.status()).counters;
      const counted = deltas(after, drained, ["deadRealFlowsEnded", "tcpResetsSent"]);
      t.deepEqual(counted, { deadRealFlowsEnded: 1, tcpResetsSent: 2 });
      t.false((await natlb!.status()).services[0]!.reals.some((r) => r.ip === real.ip), "the real is gone");
      await assertNewConnectionsAvoid(t, lab, streams, index, 42100);
      t.log(`${real.ip}: drained ${client.bytesAt(removedAt) - drainingFrom} bytes at weight 0; removed: client reset after ${clientLag} ms, real after ${Number(closed["t"]) - removedAt} ms; counters ${JSON.stringify(counted)}`);
      await client.stop();
      for (const s of streams) await s.stop();
    },
  );
});

test.serial("default (keep) for TCP: a real removed with the typed API (lb.removeReal) drains its stream to the end; new connections go to the others", async (t) => {
  await withNatLab(t, { offloads: true, prefix: PREFIX, startNatlb: false }, async ({ lab }) => {
    const api = startApiDriver(lab);
    try {
      const started = await api.call({ op: "start", config: { services: [streamService(lab)] } });
      t.true(started.ok, JSON.stringify(started));
      const status = async () => (await api.call({ op: "status" })).result as BalancerStatus;
      const streams = await startStreamServers(lab);
      const { client, index } = await startLongStream(lab, streams, 41000, status, false);
      const real = lab.reals[index]!;
      const before = (await status()).counters;
      const removedAt = Date.now();
      const removed = await api.call({ op: "removeReal", vip: lab.vip, port: STREAM_PORT, ip: real.ip });
      t.true(removed.ok, JSON.stringify(removed));
      const bytesAtRemoval = client.bytes();
      t.true(bytesAtRemoval < STREAM_BYTES);
      await assertNewConnectionsAvoid(t, lab, streams, index, 42000);
      const end = await client.ended(20_000);
      t.is(end.event, "done", JSON.stringify(end));
      t.is(end["bytes"], STREAM_BYTES);
      const sent = await streams[index]!.event("sent", 41000, 5000);
      t.is(end["sha256"], sent["sha256"], "the stream arrived intact from the removed real");
      const counted = deltas((await status()).counters, before, ["deadRealFlowsEnded", "tcpResetsSent"]);
      t.deepEqual(counted, { deadRealFlowsEnded: 0, tcpResetsSent: 0 });
      t.log(`${real.ip} removed at ${bytesAtRemoval} bytes; the stream went on for ${Number(end["t"]) - removedAt} ms to ${end["bytes"]} bytes; counters ${JSON.stringify(counted)}`);
      await client.stop();
      for (const s of streams) await s.stop();
    } finally {
      await api.close();
    }
  });
});
