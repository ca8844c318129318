// The flow map's defences against floods (native/flow/flow_table.h), driven without an engine: class
// shares, room kept free, the short timeout under pressure, assured flows never evicted, refusals
// counted, and the reuse of freed entries only once no reader can hold them.

import test from "ava";
import { FlowMap } from "../src/flows/flowMap";
import { loadNative, type NativeFloodProtection } from "../src/native";

const native = loadNative();
const DEFAULTS: NativeFloodProtection = { halfOpenSharePermille: 500, udpSharePermille: 500, pressureAtPermille: 500, pressureTimeoutSeconds: 5 };

function table(capacity: number, defences: Partial<NativeFloodProtection> = {}) {
  const map = new FlowMap(capacity);
  const flows = new native.FlowTableForTests(map.bytes);
  flows.setFloodProtection({ ...DEFAULTS, ...defences });
  let port = 1;
  const add = (protocol: "tcp" | "udp", nowMs = 1000) =>
    flows.insert({ protocol, clientIp: "198.19.0.1", clientPort: port++, vip: "198.18.0.100", vport: 80, realIp: "198.18.1.11", realPort: 8080 }, nowMs);
  return { map, flows, add };
}

test("a class at its share evicts one of its own: a UDP flood cannot take the map from TCP", (t) => {
  const { map, add } = table(1000, { udpSharePermille: 250 });
  for (let i = 0; i < 2000; i++) t.not(add("udp"), 0);
  const stats = map.stats();
  t.is(stats.unassured.udp, 250, "at most a quarter of the map");
  t.is(stats.evicted.udpShare, 1750);
  t.is(stats.live, 250);
  for (let i = 0; i < 500; i++) t.not(add("tcp"), 0, "TCP flows still get entries");
  t.is(map.stats().unassured.halfOpenTcp, 500);
});

test("a nearly full map evicts unassured flows for new ones; assured flows are never evicted", (t) => {
  const { map, flows, add } = table(128, { halfOpenSharePermille: 1000, udpSharePermille: 1000 });
  const assured: number[] = [];
  for (let i = 0; i < 100; i++) {
    const ref = add("tcp");
    flows.assure(ref);
    assured.push(ref);
  }
  t.deepEqual(map.stats().unassured, { halfOpenTcp: 0, udp: 0 });
  let refused = 0;
  for (let i = 0; i < 1000; i++) {
    flows.leaveBatch(); // each insert in a batch of its own, as a worker's frames come
    flows.enterBatch();
    if (add("udp") === 0) refused += 1;
  }
  flows.leaveBatch();
  const stats = map.stats();
  t.true(stats.live <= 128);
  t.is(refused, 0, "room kept free: every new flow got an entry");
  t.true(stats.evicted.udpRoom >= 1000 - 28, JSON.stringify(stats.evicted));
  const live = new Set(map.connections().map((c) => `${c.client.port}/${c.protocol}`));
  t.is(assured.filter((_, i) => live.has(`${i + 1}/tcp`)).length, 100, "all 100 established flows are still there");
});

test("a map of assured flows refuses new ones and counts them", (t) => {
  const { map, flows, add } = table(64, { halfOpenSharePermille: 1000 });
  for (let i = 0; i < 64; i++) {
    const ref = add("tcp");
    t.not(ref, 0, `flow ${i}`);
    flows.assure(ref);
  }
  t.is(add("tcp"), 0);
  t.is(add("udp"), 0);
  t.is(map.stats().fullDrops, 2);
  t.is(map.stats().live, 64);
});

test("under pressure unassured flows expire after the short timeout; below it, after their state's", (t) => {
  const calm = table(100);
  for (let i = 0; i < 40; i++) calm.add("udp", 1000); // 40 % of the map: no pressure
  t.is(calm.flows.sweep(1000 + 6000, 300), 0);
  const pressed = table(100, { udpSharePermille: 1000 });
  const early: number[] = [];
  for (let i = 0; i < 60; i++) early.push(pressed.add("udp", 1000)); // 60 %: under pressure
  pressed.flows.assure(early[0]!);
  t.is(pressed.flows.sweep(1000 + 4000, 300), 0, "not idle for 5 s yet");
  t.is(pressed.flows.sweep(1000 + 6000, 300), 59, "every unassured flow idle for more than 5 s; the assured one stays");
  t.is(pressed.map.stats().expiredUnderPressure, 59);
  t.is(pressed.map.stats().live, 1);
});

test("a freed entry is not reused while a reader that entered its batch before the free is still in it", (t) => {
  const { map, flows, add } = table(16, { halfOpenSharePermille: 1000, udpSharePermille: 1000 });
  const refs = Array.from({ length: 16 }, () => {
    const ref = add("tcp");
    flows.assure(ref);  // at once: an unassured flow would give way to the last ones
    return ref;
  });
  t.is(map.stats().live, 16);
  flows.enterBatch();
  flows.remove(refs[3]!);
  t.is(add("tcp"), 0, "the only free entry may still be held by the reader");
  flows.leaveBatch();
  const reused = add("tcp");
  t.is(reused, refs[3], "reused once the reader left its batch");
  t.is(map.stats().live, 16);
});
