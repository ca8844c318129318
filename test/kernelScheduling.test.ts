// Which services the kernel fast path schedules new connections for, and with what
// (native/engine/kernel_scheduled_flows.h, kernelServiceOf): the program's table must pick exactly as the
// worker's would (the same slots in the same order), and every service whose pick needs more than the
// slots (persistence, limits, a fallback real, connection counts, hashing, another forwarding mode) must
// stay with user space.
import test from "ava";
import { loadNative, type NativeService } from "../src/native";
import { schedulerFor, type SchedulerName } from "../src/schedulers";

const REALS = ["198.18.1.11", "198.18.1.12", "198.18.1.13"];

function serviceOf(scheduler: SchedulerName, weights: number[], extra: Partial<NativeService> = {}): NativeService {
  const reals = weights.map((weight, i) => ({ ip: REALS[i] ?? `198.18.2.${i}`, port: 8080, weight, up: true }));
  const table = schedulerFor(scheduler).build({ reals });
  return {
    vip: "198.18.0.100", port: 80, protocol: "tcp", mode: table.mode, slots: table.slots, ...(table.weights ? { weights: table.weights } : {}),
    reals: reals.map((r, i) => ({ ip: r.ip, port: r.port, id: 10 + i })),
    ...extra,
  } as NativeService;
}

const kernelServiceOf = (service: NativeService) => new (loadNative().ServiceForTests)(service).kernelService();

test("wrr and rr: the kernel's slots are the worker's, in order, and its reals keep their ids", (t) => {
  const cases: Array<[SchedulerName, number[]]> = [["wrr", [3, 1, 2]], ["rr", [1, 1, 1]], ["wrr", [0, 2, 1]]];
  for (const [scheduler, weights] of cases) {
    const service = serviceOf(scheduler, weights);
    const published = kernelServiceOf(service);
    t.truthy(published, `${scheduler} ${weights.join(":")}`);
    if (!published) continue;
    t.is(published.pick, "cursor");
    t.deepEqual(published.slots, [...service.slots].map((i) => service.reals[i]!.ip), "slot by slot, the worker's order");
    for (const real of published.reals) {
      const original = service.reals.find((r) => r.ip === real.ip)!;
      t.deepEqual(real, { ip: original.ip, port: original.port, id: original.id });
    }
    const counts = REALS.map((ip) => published.slots.filter((s) => s === ip).length);
    const total = counts.reduce((a, b) => a + b, 0);
    const weightSum = weights.reduce((a, b) => a + b, 0);
    t.deepEqual(counts, weights.map((w) => (w * total) / weightSum), "shares as the weights");
  }
});

test("random: published with a random pick over the same slots", (t) => {
  const published = kernelServiceOf(serviceOf("random", [1, 1, 1]));
  t.is(published?.pick, "random");
  t.deepEqual(new Set(published?.slots), new Set(REALS));
});

test("services whose pick needs more than the slots stay with user space", (t) => {
  const refused: Array<[string, NativeService]> = [
    ["udp", serviceOf("wrr", [1, 1], { protocol: "udp" })],
    ["wlc", serviceOf("wlc", [1, 1])],
    ["lc", serviceOf("lc", [1, 1])],
    ["sh (hash)", serviceOf("sh", [1, 1])],
    ["mh (hash)", serviceOf("mh", [1, 1])],
    ["persistence", serviceOf("wrr", [1, 1], { persistence: { timeoutS: 300, netmask: "255.255.255.255", keepingRealIds: [] } } as Partial<NativeService>)],
    ["a fallback real", serviceOf("wrr", [1, 1], { fallback: { ip: "198.18.1.30", port: 8080, id: 99 } })],
    ["a connection limit", { ...serviceOf("wrr", [1, 1]), reals: serviceOf("wrr", [1, 1]).reals.map((r) => ({ ...r, maxConns: 100 })) }],
    ["direct routing", serviceOf("wrr", [1, 1], { directRouting: true, reals: [{ ip: REALS[0]!, port: 80, id: 1 }, { ip: REALS[1]!, port: 80, id: 2 }] } as Partial<NativeService>)],
    ["no real up", serviceOf("wrr", [0, 0])],
  ];
  for (const [why, service] of refused) t.is(kernelServiceOf(service), null, why);
});

test("more reals or slots than the program's table holds stay with user space", (t) => {
  const many = (count: number) => Array.from({ length: count }, () => 1);
  t.truthy(kernelServiceOf(serviceOf("rr", many(64))), "64 reals fit");
  t.is(kernelServiceOf(serviceOf("rr", many(65))), null, "65 reals do not");
  // wrr's table for weights 1..n has a slot per weight unit.
  t.is(kernelServiceOf(serviceOf("wrr", [200, 57])), null, "257 slots do not fit");
  t.truthy(kernelServiceOf(serviceOf("wrr", [201, 55])), "256 slots fit");
});
