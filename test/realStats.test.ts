// Per-real traffic counts (native/engine/real_stats.h) and their rates (src/stats/rateEstimator.ts),
// without an engine: the sum of the workers' blocks, workers that stop (their counts stay), the
// kernel fast path's per-flow counts folded into their real's totals once each however often they are
// read back, and the estimator on a driven clock.
import test from "ava";
import { FlowMap } from "../src/flows/flowMap";
import { loadNative } from "../src/native";
import { RateEstimator } from "../src/stats/rateEstimator";
import { TrafficStats } from "../src/stats/trafficStats";
import { zeroCounts, type TrafficCounts } from "../src/stats/trafficCounts";

const native = loadNative();

test("a real's totals are the sum of every worker's block, the kernel's, and those of stopped workers", (t) => {
  const stats = new native.RealStatsForTests();
  const a = stats.addWorker();
  const b = stats.addWorker();
  stats.count(a, 7, "bytesOut", 1500);
  stats.count(b, 7, "bytesOut", 40);
  stats.count(b, 7, "connections", 1);
  stats.count(a, 8, "packetsIn", 3);  // another real: not in 7's
  stats.count(a, 65535, "packetsIn", 2);  // the last id has its slot
  stats.countKernel(7, "bytesOut", 1_000_000);
  t.deepEqual(stats.read(7), { connections: 1, packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 1_001_540 });
  t.deepEqual(stats.read(8), { connections: 0, packetsIn: 3, packetsOut: 0, bytesIn: 0, bytesOut: 0 });
  t.is(stats.read(65535).packetsIn, 2);
  // The engine stops and starts again with new workers: nothing goes back.
  stats.retireWorkers();
  t.deepEqual(stats.read(7), { connections: 1, packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 1_001_540 });
  const c = stats.addWorker();
  stats.count(c, 7, "bytesOut", 60);
  stats.count(c, 7, "connections", 2);
  t.deepEqual(stats.read(7), { connections: 3, packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 1_001_600 });
  t.deepEqual(stats.read(9), zeroCounts(), "an id nobody counted reads 0");
  t.throws(() => stats.count(c, 7, "bogus" as "bytesIn", 1), { message: /stat must be/ });
});

function offloadedTable() {
  const map = new FlowMap(64);
  const flows = new native.FlowTableForTests(map.bytes);
  let port = 1000;
  const add = (realId: number, nowMs: number) => {
    const ref = flows.insert(
      { protocol: "tcp", clientIp: "198.19.0.1", clientPort: port++, vip: "198.18.0.100", vport: 80, realIp: "198.18.1.11", realPort: 8080, realId },
      nowMs,
    );
    flows.assure(ref);
    flows.offload(ref);
    return ref;
  };
  return { map, flows, add };
}

const kernel = (packetsIn: number, bytesIn: number, packetsOut: number, bytesOut: number) => ({ packetsIn, bytesIn, packetsOut, bytesOut });
const HOUR = 3600;

test("the kernel's counts reach their real's totals once each, however often a flow is read back", (t) => {
  const { flows, add } = offloadedTable();
  const ref = add(7, 1000);
  const other = add(8, 1000);
  flows.setKernelCounts(ref, kernel(10, 1000, 20, 30_000));
  flows.setKernelCounts(other, kernel(1, 100, 1, 100));
  flows.sweep(2000, HOUR);  // a read-back (each flow at most once a second)
  t.deepEqual(flows.kernelTrafficOf(7), { connections: 0, packetsIn: 10, packetsOut: 20, bytesIn: 1000, bytesOut: 30_000 });
  flows.sweep(3100, HOUR);  // read again, nothing new: nothing added
  flows.sweep(4200, HOUR);
  t.deepEqual(flows.kernelTrafficOf(7), { connections: 0, packetsIn: 10, packetsOut: 20, bytesIn: 1000, bytesOut: 30_000 });
  flows.setKernelCounts(ref, kernel(12, 1100, 50, 75_000));
  flows.sweep(5300, HOUR);
  t.deepEqual(flows.kernelTrafficOf(7), { connections: 0, packetsIn: 12, packetsOut: 50, bytesIn: 1100, bytesOut: 75_000 });
  t.deepEqual(flows.kernelTrafficOf(8), { connections: 0, packetsIn: 1, packetsOut: 1, bytesIn: 100, bytesOut: 100 }, "each flow to its own real");
  // Between read-backs the kernel forwards more, then the flow goes: the removal reads the last counts.
  flows.setKernelCounts(ref, kernel(13, 1200, 60, 90_000));
  flows.remove(ref);
  t.deepEqual(flows.kernelTrafficOf(7), { connections: 0, packetsIn: 13, packetsOut: 60, bytesIn: 1200, bytesOut: 90_000 });
  // Taken back from the kernel (the engine stops): its last counts too, and no more afterwards.
  flows.setKernelCounts(other, kernel(2, 300, 4, 700));
  t.is(flows.withdrawOffloaded(), 1);
  t.deepEqual(flows.kernelTrafficOf(8), { connections: 0, packetsIn: 2, packetsOut: 4, bytesIn: 300, bytesOut: 700 });
  flows.sweep(9000, HOUR);
  t.deepEqual(flows.kernelTrafficOf(8), { connections: 0, packetsIn: 2, packetsOut: 4, bytesIn: 300, bytesOut: 700 });
});

test("an offloaded flow that expires has its last kernel counts read first", (t) => {
  const { flows, add } = offloadedTable();
  const ref = add(3, 1000);
  flows.setKernelCounts(ref, kernel(5, 500, 5, 5000));
  t.is(flows.sweep(1000 + 11_000, 10), 1, "expired after 10 s idle");
  t.deepEqual(flows.kernelTrafficOf(3), { connections: 0, packetsIn: 5, packetsOut: 5, bytesIn: 500, bytesOut: 5000 });
});

const counts = (c: Partial<TrafficCounts>): TrafficCounts => ({ ...zeroCounts(), ...c });

test("rates: IPVS's estimator, a quarter of the way to each sample's rate; back towards 0 when traffic stops", (t) => {
  const estimator = new RateEstimator<string>();
  estimator.sample(0, [["r", counts({})]]);
  t.deepEqual(estimator.ratesOf("r"), { connectionsPerSecond: 0, packetsInPerSecond: 0, packetsOutPerSecond: 0, bytesInPerSecond: 0, bytesOutPerSecond: 0 });
  // 2 s later: 8000 bytes out (4000/s), 20 connections (10/s): the average moves a quarter of the way.
  estimator.sample(2000, [["r", counts({ bytesOut: 8000, connections: 20 })]]);
  t.is(estimator.ratesOf("r").bytesOutPerSecond, 1000);
  t.is(estimator.ratesOf("r").connectionsPerSecond, 2.5);
  estimator.sample(4000, [["r", counts({ bytesOut: 16_000, connections: 40 })]]);
  t.is(estimator.ratesOf("r").bytesOutPerSecond, 1750);
  // A steady rate: the average converges to it.
  let bytes = 16_000;
  for (let ms = 6000; ms <= 60_000; ms += 2000) estimator.sample(ms, [["r", counts({ bytesOut: (bytes += 8000), connections: 40 })]]);
  t.true(Math.abs(estimator.ratesOf("r").bytesOutPerSecond - 4000) < 1, String(estimator.ratesOf("r").bytesOutPerSecond));
  // The elapsed time counts, not the number of samples: a late sample sees the same rate.
  estimator.sample(65_000, [["r", counts({ bytesOut: bytes + 20_000, connections: 40 })]]);
  t.true(Math.abs(estimator.ratesOf("r").bytesOutPerSecond - 4000) < 1);
  // Traffic stops: a quarter less per sample, under 10% after 9 ((3/4)^9 = 7.5%).
  const stopped = bytes + 20_000;
  for (let i = 1; i <= 9; i++) estimator.sample(65_000 + i * 2000, [["r", counts({ bytesOut: stopped, connections: 40 })]]);
  t.true(estimator.ratesOf("r").bytesOutPerSecond < 400 && estimator.ratesOf("r").bytesOutPerSecond > 0, String(estimator.ratesOf("r").bytesOutPerSecond));
  t.true(estimator.ratesOf("r").connectionsPerSecond < 1);
  // A key no longer sampled is forgotten; counts that went back start it again at 0.
  estimator.sample(90_000, [["s", counts({ bytesOut: 5 })]]);
  t.is(estimator.ratesOf("r").bytesOutPerSecond, 0);
  estimator.sample(92_000, [["s", counts({ bytesOut: 1 })]]);
  t.is(estimator.ratesOf("s").bytesOutPerSecond, 0);
  t.throws(() => new RateEstimator({ weight: 0 }), { instanceOf: RangeError });
});

test("service totals are the sum over every real the service has had; rates per service and real", (t) => {
  let now = 0;
  const byId = new Map<number, TrafficCounts>([
    [0, counts({ connections: 3, bytesOut: 300 })],
    [1, counts({ connections: 5, bytesOut: 500 })],
    [2, counts({ connections: 7, bytesOut: 700 })],  // removed from the service: still in its totals
    [3, counts({ connections: 100, bytesOut: 100_000 })],  // another service's
  ]);
  const traffic = new TrafficStats(
    {
      services: () => [
        { key: "a", vip: "198.18.0.100", port: 80, protocol: "tcp", reals: [{ ip: "198.18.1.11", port: 8080, id: 0 }, { ip: "198.18.1.12", port: 8080, id: 1 }], everyRealId: [0, 1, 2] },
        { key: "b", vip: "198.18.0.101", port: 80, protocol: "tcp", reals: [{ ip: "198.18.1.11", port: 8080, id: 3 }], everyRealId: [3] },
      ],
      realTraffic: (ids) => ids.map((id) => ({ ...byId.get(id)! })),
    },
    { now: () => now },
  );
  traffic.sample();
  const first = traffic.stats();
  t.deepEqual(first.services[0]!.counts, counts({ connections: 15, bytesOut: 1500 }));
  t.deepEqual(first.services[0]!.reals.map((r) => r.counts.connections), [3, 5]);
  t.deepEqual(first.services[1]!.counts, counts({ connections: 100, bytesOut: 100_000 }));
  t.is(first.rateSampleSeconds, 2);
  now = 2000;
  byId.set(1, counts({ connections: 9, bytesOut: 8500 }));  // 4000 bytes/s more
  traffic.sample();
  const second = traffic.stats();
  t.is(second.services[0]!.reals[1]!.rates.bytesOutPerSecond, 1000);
  t.is(second.services[0]!.rates.bytesOutPerSecond, 1000);
  t.is(second.services[0]!.reals[0]!.rates.bytesOutPerSecond, 0);
  t.is(second.services[1]!.rates.bytesOutPerSecond, 0);
});
