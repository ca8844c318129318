// The per-real connection counts the flow map keeps (native/flow/flow_layout.h, real counters): after
// any sequence of inserts, state changes, removals, expiries and flood-defence evictions they equal a
// full scan of the map, as `status`, metrics and draining now read them instead of scanning.

import test from "ava";
import { FlowMap, type RealCounts } from "../src/flows/flowMap";
import { loadNative } from "../src/native";

const native = loadNative();
const STATE = Object.fromEntries(native.flowLayout().states.map((name, index) => [name, index])) as Record<string, number>;
const REALS = 12;

/** A small deterministic generator (mulberry32), so a failure can be replayed from its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function scan(map: FlowMap): Map<number, RealCounts> {
  const counts = new Map<number, RealCounts>();
  for (let id = 0; id < REALS; id++) counts.set(id, { active: 0, inactive: 0, templates: 0 });
  map.forEachLive((c) => {
    const count = counts.get(c.real.id)!;
    if (c.template) count.templates += 1;
    else if (c.state === "ESTABLISHED") count.active += 1;
    else count.inactive += 1;
    return true;
  }, { filter: { templates: true } });
  return counts;
}

function counted(map: FlowMap): Map<number, RealCounts> {
  return new Map(Array.from({ length: REALS }, (_, id) => [id, map.realCounts(id)]));
}

for (const seed of [1, 2, 3]) {
  test(`seed ${seed}: counts equal a full scan after random inserts, state changes, removals, expiries and evictions`, (t) => {
    const next = random(seed);
    const map = new FlowMap(512);
    const flows = new native.FlowTableForTests(map.bytes);
    // Small shares and an early pressure point, so the defences evict and expire early too.
    flows.setFloodProtection({ halfOpenSharePermille: 300, udpSharePermille: 200, pressureAtPermille: 400, pressureTimeoutSeconds: 2 });
    const refs: number[] = [];
    let nowMs = 1000;
    let port = 1;
    const done = { inserted: 0, raised: 0, removed: 0, expired: 0 };
    for (let step = 0; step < 20_000; step++) {
      flows.leaveBatch(); // a batch per step, as a worker's frames come: freed entries become reusable
      flows.enterBatch();
      const roll = next();
      if (roll < 0.6) {
        const realId = Math.floor(next() * REALS);
        const protocol = next() < 0.7 ? "tcp" : "udp";
        const real = { realIp: `198.18.1.${10 + realId}`, realPort: 8080, realId };
        // Some flows come through a persistence template (counted apart, per real).
        const templateRef = next() < 0.3
          ? flows.bindTemplate({ protocol, clientIp: `198.19.1.${Math.floor(next() * 16)}`, netmask: "255.255.255.255", vip: "198.18.0.100", vport: 80, ...real }, 5, nowMs)
          : 0;
        const ref = flows.insert(
          { protocol, clientIp: "198.19.0.1", clientPort: (port++ % 65535) + 1, vip: "198.18.0.100", vport: 80, ...real },
          nowMs,
          { templateRef },
        );
        if (ref !== 0) {
          refs.push(ref);
          done.inserted += 1;
        }
      } else if (roll < 0.85 && refs.length > 0) {
        // Any ref, live or not: a worker may still hold the ref of a flow the table has let go.
        const ref = refs[Math.floor(next() * refs.length)]!;
        flows.raiseState(ref, 1 + Math.floor(next() * 5));
        done.raised += 1;
      } else if (roll < 0.92 && refs.length > 0) {
        const ref = refs.splice(Math.floor(next() * refs.length), 1)[0]!;
        flows.remove(ref);
        done.removed += 1;
      } else if (roll < 0.97 && refs.length > 0) {
        flows.assure(refs[Math.floor(next() * refs.length)]!); // also raises a TCP flow to ESTABLISHED
      } else {
        nowMs += Math.floor(next() * 1000);
        done.expired += flows.sweep(nowMs, 10 + Math.floor(next() * 50));
      }
      if (step % 500 === 0) t.deepEqual(counted(map), scan(map), `step ${step}`);
    }
    flows.leaveBatch();
    t.deepEqual(counted(map), scan(map), "at the end");
    const stats = map.stats();
    const evicted = stats.evicted.halfOpenTcpShare + stats.evicted.udpShare + stats.evicted.halfOpenTcpRoom + stats.evicted.udpRoom;
    t.log(`${JSON.stringify(done)}, evicted ${evicted}, expired early ${stats.expiredUnderPressure}, live ${stats.live}`);
    // The sequence must have exercised every path the counts follow.
    t.true(done.inserted > 1000 && done.raised > 1000 && done.removed > 100 && done.expired > 100, JSON.stringify(done));
    t.true(evicted > 0, "the flood defences evicted flows");
    const total = [...counted(map).values()].reduce((sum, c) => sum + c.active + c.inactive + c.templates, 0);
    t.is(total, stats.live, "every live flow and template counted once");
    t.true([...counted(map).values()].some((c) => c.templates > 0), "templates were made");
  });
}

test("a state change moves a flow between its real's active and inactive counts; removal and expiry take it off", (t) => {
  const map = new FlowMap(64);
  const flows = new native.FlowTableForTests(map.bytes);
  const flow = (clientPort: number, realId: number) =>
    flows.insert({ protocol: "tcp", clientIp: "198.19.0.1", clientPort, vip: "198.18.0.100", vport: 80, realIp: "198.18.1.11", realPort: 8080, realId }, 1000);
  const a = flow(1, 7);
  const b = flow(2, 7);
  flow(3, 9);
  t.deepEqual(map.realCounts(7), { active: 0, inactive: 2, templates: 0 });
  flows.raiseState(a, STATE.ESTABLISHED!);
  t.deepEqual(map.realCounts(7), { active: 1, inactive: 1, templates: 0 });
  flows.raiseState(a, STATE.SYN_RECV!); // states never move back
  t.deepEqual(map.realCounts(7), { active: 1, inactive: 1, templates: 0 });
  flows.raiseState(a, STATE.FIN_WAIT!);
  t.deepEqual(map.realCounts(7), { active: 0, inactive: 2, templates: 0 });
  flows.remove(b);
  flows.raiseState(b, STATE.ESTABLISHED!); // a worker still holding a removed flow's ref changes nothing
  t.deepEqual(map.realCounts(7), { active: 0, inactive: 1, templates: 0 });
  t.deepEqual(map.realCounts(9), { active: 0, inactive: 1, templates: 0 });
  t.is(flows.sweep(1000 + 10_000, 5), 2);
  t.deepEqual(map.realCounts(7), { active: 0, inactive: 0, templates: 0 });
  t.deepEqual(map.realCounts(9), { active: 0, inactive: 0, templates: 0 });
  t.throws(() => map.realCounts(65536), { instanceOf: RangeError });
});
