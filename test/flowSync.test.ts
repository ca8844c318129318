// The flow sync between two engines on loopback, without a lab (no packets forwarded: flows are put
// into A's map directly, datagrams crafted with the addon's encoder): snapshot to a late peer, real ids
// mapped by address, and every bad datagram counted and applied to nothing.
import test from "ava";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { FlowMap } from "../src/flows/flowMap";
import { loadNative, type NativeEngine, type NativeService, type SyncCounters, type SyncFlowRecord } from "../src/native";

const native = loadNative();
const sync = native.syncMessage;
const key = new Uint8Array(randomBytes(32));
const VIP = "198.18.0.100";

async function freePort(): Promise<number> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(resolve));
  return port;
}

function engineWith(map: FlowMap, realIds: [number, number]): NativeEngine {
  const engine = new native.Engine({
    flowTable: map.bytes,
    interfaces: [{ name: "lo", ifindex: 1, mac: "00:00:00:00:00:00", role: "client", addresses: [], receivePath: "af_packet" }],
  });
  const service: NativeService = {
    vip: VIP, port: 80, protocol: "tcp", mode: "cursor", slots: Uint16Array.of(0, 1),
    reals: [{ ip: "198.18.1.11", port: 8080, id: realIds[0] }, { ip: "198.18.1.12", port: 8080, id: realIds[1] }],
  };
  engine.setServices([service]);
  return engine;
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const counter = (engine: NativeEngine, name: string): number => (engine.syncCounters() as SyncCounters)[name] ?? -1;

/** Starts the sync of A and B over loopback and waits until B has A's snapshot. */
async function startSyncPair(a: NativeEngine, b: NativeEngine): Promise<void> {
  const [portA, portB] = [await freePort(), await freePort()];
  // The same peer list on both may name the instance itself: its own datagrams are ignored.
  const peers = [{ ip: "127.0.0.1", port: portA }, { ip: "127.0.0.1", port: portB }];
  a.startSync({ listen: { ip: "127.0.0.1", port: portA }, peers, key });
  b.startSync({ listen: { ip: "127.0.0.1", port: portB }, peers, key });
  await until("B's snapshot", () => counter(b, "snapshotsCompleted") >= 1);
}

test("a peer that starts late gets a snapshot of the live flows, each mapped to its own real id", async (t) => {
  const mapA = new FlowMap(256);
  const mapB = new FlowMap(256);
  const a = engineWith(mapA, [1, 2]);
  const b = engineWith(mapB, [7, 9]);  // B numbers the same reals differently
  const flowsA = new native.FlowTableForTests(mapA.bytes);
  const now = native.monotonicMs();
  for (let i = 0; i < 100; i++) {
    const second = i % 2 === 1;
    const ref = flowsA.insert({ protocol: "tcp", clientIp: "198.18.0.2", clientPort: 20000 + i, vip: VIP, vport: 80,
      realIp: second ? "198.18.1.12" : "198.18.1.11", realPort: 8080, realId: second ? 2 : 1 }, now);
    if (i < 60) flowsA.raiseState(ref, 2);  // ESTABLISHED
  }
  try {
    await startSyncPair(a, b);
    const conns = mapB.connections();
    t.is(conns.length, 100);
    t.is(counter(b, "appliedInserted"), 100);
    t.is(counter(b, "snapshotRecordsReceived"), 100);
    for (const c of conns) {
      const i = c.client.port - 20000;
      t.is(c.real.ip, i % 2 === 1 ? "198.18.1.12" : "198.18.1.11");
      t.is(c.real.id, i % 2 === 1 ? 9 : 7);
      t.is(c.state, i < 60 ? "ESTABLISHED" : "SYN_RECV");
    }
    t.deepEqual(mapB.realCounts(7), { ...mapB.realCounts(7), active: 30, inactive: 20 });
    // Applied flows are never sent on: B sent A nothing but its requests and its end-of-snapshot.
    t.is(counter(a, "appliedInserted"), 0);
    t.true(counter(a, "receivedDatagrams") > counter(a, "peersHeard"), "A heard itself");
    t.is(counter(a, "peersHeard"), 1, "only B");
    const rejected = Object.entries(a.syncCounters() as SyncCounters).filter(([name, value]) => name.startsWith("rejected") && value > 0);
    t.deepEqual(rejected, []);
  } finally {
    a.stopSync();
    b.stopSync();
  }
});

test("bad datagrams are counted by reason and change nothing; a good one is applied once", async (t) => {
  const map = new FlowMap(256);
  const b = engineWith(map, [3, 4]);
  const port = await freePort();
  const sender = createSocket("udp4");
  await new Promise<void>((resolve) => sender.bind(0, "127.0.0.1", resolve));
  const send = (datagram: Uint8Array) => new Promise<void>((resolve, reject) => sender.send(datagram, port, "127.0.0.1", (e) => (e ? reject(e) : resolve())));
  const flow = (clientPort: number, over: Partial<SyncFlowRecord> = {}): SyncFlowRecord => ({
    protocol: 6, state: 2, flags: 4, clientIp: "198.18.0.2", clientPort, vip: VIP, vport: 80, realIp: "198.18.1.12", realPort: 8080, ...over,
  });
  let sequence = 0;
  const datagram = (records: SyncFlowRecord[], over: { timestampMs?: number; senderId?: number } = {}, withKey = key) =>
    sync.encode({ type: sync.types.flows, senderId: over.senderId ?? 42, sequence: ++sequence, timestampMs: over.timestampMs ?? Date.now() }, records, withKey);
  try {
    // No peer answers: its snapshot requests go nowhere (127.0.0.1:9, discard).
    b.startSync({ listen: { ip: "127.0.0.1", port }, peers: [{ ip: "127.0.0.1", port: 9 }], key });
    await send(datagram([flow(1)], {}, new Uint8Array(randomBytes(32))));
    const good = datagram([flow(2)]);
    const otherVersion = Uint8Array.from(datagram([flow(3)]));
    otherVersion[4] = sync.version + 1;
    await send(otherVersion);
    await send(datagram([flow(4)]).subarray(0, 40));
    await send(datagram([flow(5)], { timestampMs: Date.now() - 120_000 }));
    await send(new Uint8Array(randomBytes(200)));
    await send(datagram([flow(6, { vport: 81 }), flow(7, { realIp: "198.18.1.13" }), flow(8, { state: 9 })]));
    await send(good);
    await send(good);  // replayed
    await until("every datagram", () => counter(b, "receivedDatagrams") >= 8).catch((e: Error) => { throw new Error(`${e.message}: ${JSON.stringify(b.syncCounters())}`); });
    const counts = b.syncCounters() as SyncCounters;
    t.like(counts, {
      rejectedBadMac: 1, rejectedWrongVersion: 1, rejectedTruncated: 1, rejectedStale: 1, rejectedNotSync: 1,
      rejectedUnknownService: 1, rejectedUnknownReal: 1, rejectedInvalidRecord: 1, rejectedReplayed: 1, appliedInserted: 1, peersHeard: 1,
    });
    const conns = map.connections();
    t.deepEqual(conns.map((c) => [c.client.port, c.real.id, c.state]), [[2, 4, "ESTABLISHED"]]);
    t.true(conns[0]!.synced, "synced (flags::kMidStreamStart, not kPickedUp): its TCP tracking starts mid-stream");
    t.is(conns[0]!.pickedUp, undefined, "synced is not picked up mid-stream here");
    // A later state from the same sender moves the flow on.
    await send(datagram([flow(2, { state: 3 })]));
    await until("the update", () => counter(b, "appliedUpdated") >= 1);
    t.is(map.connections()[0]!.state, "FIN_WAIT");
    // An earlier state never moves a flow back; but a new connection on the ports of a closing one
    // (the peer reused its entry after TIME_WAIT) replaces it here too.
    await send(datagram([flow(2, { state: 2 })]));
    await send(datagram([flow(2, { state: 4 })]));
    await until("TIME_WAIT", () => map.connections()[0]?.state === "TIME_WAIT");
    await send(datagram([flow(2, { state: 1, flags: 0 })]));
    await until("the new connection", () => counter(b, "appliedInserted") === 2);
    t.deepEqual(map.connections().map((c) => [c.client.port, c.state]), [[2, "SYN_RECV"]]);
  } finally {
    b.stopSync();
    sender.close();
  }
});

test("the sync refuses a key that is too short and a port in use, saying so", async (t) => {
  const map = new FlowMap(64);
  const e = engineWith(map, [1, 2]);
  t.throws(() => e.startSync({ listen: { ip: "127.0.0.1", port: 1 }, peers: [{ ip: "127.0.0.1", port: 2 }], key: new Uint8Array(8) }), { message: /sync.key must be 32/ });
  t.throws(() => e.startSync({ listen: { ip: "127.0.0.1", port: 2 }, peers: [], key }), { message: /peers or a multicast group/ });
  const port = await freePort();
  const holder = createSocket("udp4");
  await new Promise<void>((resolve) => holder.bind(port, "127.0.0.1", resolve));
  try {
    t.throws(() => e.startSync({ listen: { ip: "127.0.0.1", port }, peers: [{ ip: "127.0.0.1", port: 9 }], key }), { message: /bind 127.0.0.1:\d+.*in use/ });
  } finally {
    holder.close();
  }
  t.is(e.syncCounters(), null);
});

// Persistence templates (native/flow/persistence_templates.h) go with the flows, as IPVS syncs its
// template connections: three reals in rr, clients kept by /24.
const REALS = ["198.18.1.11", "198.18.1.12", "198.18.1.13"];
const NETMASK = "255.255.255.0";

function persistentService(realIds: number[], netmask = NETMASK): NativeService {
  return {
    vip: VIP, port: 80, protocol: "tcp", mode: "cursor", slots: Uint16Array.of(0, 1, 2),
    reals: REALS.map((ip, i) => ({ ip, port: 8080, id: realIds[i]! })),
    persistence: { timeoutS: 600, netmask, keepingRealIds: [...realIds] },
  };
}

function persistentEngine(map: FlowMap, realIds: number[], netmask = NETMASK): NativeEngine {
  const engine = new native.Engine({
    flowTable: map.bytes,
    interfaces: [{ name: "lo", ifindex: 1, mac: "00:00:00:00:00:00", role: "client", addresses: [], receivePath: "af_packet" }],
  });
  engine.setServices([persistentService(realIds, netmask)]);
  return engine;
}

const templatesOf = (map: FlowMap) =>
  map.page({ templates: true }, 0, 1000).connections.filter((c) => c.template !== undefined)
    .map((c) => ({ client: c.client.ip, real: c.real.ip, realId: c.real.id, controlledFlows: c.template!.controlledFlows, timeoutS: c.template!.timeoutS }))
    .sort((x, y) => x.client.localeCompare(y.client));

test("persistence templates reach a late peer with their real and key, its synced flows controlled by them; there the client's new connections keep to that real", async (t) => {
  const mapA = new FlowMap(256);
  const mapB = new FlowMap(256);
  const a = persistentEngine(mapA, [1, 2, 3]);
  const b = persistentEngine(mapB, [7, 8, 9]);
  const flowsA = new native.FlowTableForTests(mapA.bytes);
  const flowsB = new native.FlowTableForTests(mapB.bytes);
  const now = native.monotonicMs();
  const template = (flows: typeof flowsA, clientIp: string, real: number, realId: number) =>
    flows.bindTemplate({ protocol: "tcp", clientIp, netmask: NETMASK, vip: VIP, vport: 80, realIp: REALS[real]!, realPort: 8080, realId }, 600, now);
  // On A: 198.18.0.2 is held on the third real with three established flows; 198.18.7.9 on the second,
  // with none left (a template outlives its flows by its timeout).
  const held = template(flowsA, "198.18.0.2", 2, 3);
  for (let i = 0; i < 3; i++) {
    const ref = flowsA.insert({ protocol: "tcp", clientIp: "198.18.0.2", clientPort: 30000 + i, vip: VIP, vport: 80, realIp: REALS[2]!, realPort: 8080, realId: 3 }, now, { templateRef: held });
    flowsA.raiseState(ref, 2);
  }
  t.not(template(flowsA, "198.18.7.9", 1, 2), 0);
  // A client B holds already, on another real than A's: B's binding stays (counted as a conflict).
  t.not(template(flowsA, "198.18.9.5", 1, 2), 0);
  t.not(template(flowsB, "198.18.9.200", 0, 7), 0);
  try {
    await startSyncPair(a, b);
    t.deepEqual(templatesOf(mapB), [
      { client: "198.18.0.0", real: REALS[2], realId: 9, controlledFlows: 3, timeoutS: 600 },
      { client: "198.18.7.0", real: REALS[1], realId: 8, controlledFlows: 0, timeoutS: 600 },
      { client: "198.18.9.0", real: REALS[0], realId: 7, controlledFlows: 0, timeoutS: 600 },
    ]);
    t.like(b.syncCounters() as SyncCounters, { appliedInserted: 5, rejectedConflict: 1, snapshotRecordsReceived: 6, rejectedInvalidRecord: 0 });
    t.deepEqual(mapB.realCounts(9), { active: 3, inactive: 0, templates: 1 });
    // On B, new connections of that client's network (other addresses, other ports) all go to the third
    // real, where rr alone starts at the first and goes round.
    const service = new native.ServiceForTests(persistentService([7, 8, 9]));
    const picked = Array.from({ length: 10 }, (_, i) =>
      service.schedule(flowsB, { protocol: "tcp", ip: `198.18.0.${10 + i}`, port: 40000 + i }, now));
    t.deepEqual(picked.map((p) => p.real), Array(10).fill(REALS[2]));
    // Clients without a template: the scheduler's choice (rr over the three reals).
    const others = Array.from({ length: 6 }, (_, i) =>
      service.schedule(flowsB, { protocol: "tcp", ip: `198.18.${20 + i}.1`, port: 40000 }, now).real);
    t.deepEqual(new Set(others), new Set(REALS), "the scheduler alone spreads clients");
  } finally {
    a.stopSync();
    b.stopSync();
  }
});

test("a live template is sent again every refresh period; a template a peer's service cannot key is refused, counted", async (t) => {
  const mapA = new FlowMap(256);
  const mapB = new FlowMap(256);
  const mapC = new FlowMap(256);
  const a = persistentEngine(mapA, [1, 2, 3]);
  const b = persistentEngine(mapB, [4, 5, 6]);
  const c = persistentEngine(mapC, [7, 8, 9], "255.255.0.0");  // keys its templates by /16
  const flowsA = new native.FlowTableForTests(mapA.bytes);
  const [portA, portB, portC] = [await freePort(), await freePort(), await freePort()];
  try {
    const peers = [{ ip: "127.0.0.1", port: portA }, { ip: "127.0.0.1", port: portB }, { ip: "127.0.0.1", port: portC }];
    a.startSync({ listen: { ip: "127.0.0.1", port: portA }, peers, key, refreshSeconds: 1 });
    b.startSync({ listen: { ip: "127.0.0.1", port: portB }, peers, key, refreshSeconds: 1 });
    c.startSync({ listen: { ip: "127.0.0.1", port: portC }, peers, key, refreshSeconds: 1 });
    await until("the snapshots", () => counter(b, "snapshotsCompleted") >= 1 && counter(c, "snapshotsCompleted") >= 1);
    t.deepEqual(templatesOf(mapB), []);
    // Made after the snapshots, with a flow it controls: no worker event here, so the refresh sends it.
    const now = native.monotonicMs();
    const ref = flowsA.bindTemplate({ protocol: "tcp", clientIp: "198.18.0.2", netmask: NETMASK, vip: VIP, vport: 80, realIp: REALS[1]!, realPort: 8080, realId: 2 }, 600, now);
    flowsA.insert({ protocol: "tcp", clientIp: "198.18.0.2", clientPort: 30000, vip: VIP, vport: 80, realIp: REALS[1]!, realPort: 8080, realId: 2 }, now, { templateRef: ref });
    await until("B's copy", () => templatesOf(mapB).length === 1);
    t.like(templatesOf(mapB)[0], { client: "198.18.0.0", real: REALS[1], realId: 5 });
    const refreshes = counter(a, "refreshRecordsSent");
    t.true(refreshes >= 1);
    await until("another period's refresh", () => counter(b, "appliedUpdated") >= 1, 4000);
    t.true(counter(a, "refreshRecordsSent") > refreshes);
    t.deepEqual(templatesOf(mapC), [], "C's service keys by /16: A's /24 template is of no use there");
    t.true(counter(c, "rejectedUnknownService") >= 1);
  } finally {
    a.stopSync();
    b.stopSync();
    c.stopSync();
  }
});
