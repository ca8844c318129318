// The few facts TypeScript repeats from native code at compile time (counter names, flow states) must
// match what the addon reports at run time.
import test from "ava";
import { FlowMap } from "../src/flows/flowMap";
import { COUNTER_NAMES, loadNative, type NativeInterface } from "../src/native";
import { TRAFFIC_COUNT_NAMES } from "../src/stats/trafficCounts";

test("the engine's counters are exactly COUNTER_NAMES, in order", (t) => {
  const native = loadNative();
  const flows = new FlowMap(16);
  const engine = new native.Engine({
    flowTable: flows.bytes,
    interfaces: [{ name: "lo", ifindex: 1, mac: "00:00:00:00:00:00", role: "client", addresses: [], receivePath: "af_packet" }],
  });
  t.deepEqual(Object.keys(engine.counters()), [...COUNTER_NAMES]);
});

test("the engine's per-real traffic is exactly TRAFFIC_COUNT_NAMES, in order, one entry per id asked", (t) => {
  const native = loadNative();
  const flows = new FlowMap(16);
  const engine = new native.Engine({
    flowTable: flows.bytes,
    interfaces: [{ name: "lo", ifindex: 1, mac: "00:00:00:00:00:00", role: "client", addresses: [], receivePath: "af_packet" }],
  });
  const traffic = engine.realTraffic([0, 65535, 7]);
  t.is(traffic.length, 3);
  for (const real of traffic) t.deepEqual(Object.keys(real), [...TRAFFIC_COUNT_NAMES]);
  t.throws(() => engine.realTraffic([65536]), { message: /realIds\[i\]/ });
});

test("the flow states and a fresh flow map read as the layout says", (t) => {
  const native = loadNative();
  t.deepEqual(native.flowLayout().states, ["NONE", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "TIME_WAIT", "CLOSE", "UDP"]);
  const flows = new FlowMap(1000);
  t.deepEqual(flows.stats(), {
    capacity: 1000, live: 0, inserted: 0, expired: 0, fullDrops: 0, unassured: { halfOpenTcp: 0, udp: 0 },
    evicted: { halfOpenTcpShare: 0, udpShare: 0, halfOpenTcpRoom: 0, udpRoom: 0 }, expiredUnderPressure: 0,
  });
  t.deepEqual(flows.connections(), []);
  t.throws(() => new FlowMap(8), { message: /capacity must be an integer 16\.\./ });
});

test("bad engine options are refused with the field named", (t) => {
  const native = loadNative();
  const flows = new FlowMap(16);
  t.throws(() => new native.Engine({ flowTable: flows.bytes, interfaces: [] }), { message: /interfaces must not be empty/ });
  t.throws(
    () => new native.Engine({ flowTable: flows.bytes, interfaces: [{ name: "x", ifindex: 1, mac: "nope", role: "client", addresses: [], receivePath: "af_packet" }] }),
    { message: /interfaces\[0\]\.mac must be a MAC address/ },
  );
  const badPath = { name: "lo", ifindex: 1, mac: "00:00:00:00:00:00", role: "client", addresses: [], receivePath: "xdp" };
  t.throws(() => new native.Engine({ flowTable: flows.bytes, interfaces: [badPath as unknown as NativeInterface] }), {
    message: /interfaces\[0\]\.receivePath must be "af_packet" or "af_xdp"/,
  });
  const lo: NativeInterface = { name: "lo", ifindex: 1, mac: "00:00:00:00:00:00", role: "client", addresses: [], receivePath: "af_packet" };
  for (const kernelFastPath of ["yes", "true", 1, null]) {
    t.throws(() => new native.Engine({ flowTable: flows.bytes, interfaces: [lo], kernelFastPath: kernelFastPath as unknown as boolean }), {
      message: /options\.kernelFastPath must be "auto", true or false/,
    }, JSON.stringify(kernelFastPath));
  }
  const engine = new native.Engine({ flowTable: flows.bytes, interfaces: [lo] });
  t.throws(
    () => engine.setServices([{ vip: "198.18.0.100", port: 80, protocol: "tcp", mode: "cursor", slots: Uint16Array.of(1), reals: [{ ip: "198.18.1.11", port: 80, id: 0 }] }]),
    { message: /slots holds an index past the end of reals/ },
  );
});

test("replaceServices swaps only the services it is given, each snapshot numbered; an unknown service is refused", (t) => {
  const native = loadNative();
  const flows = new FlowMap(16);
  const engine = new native.Engine({
    flowTable: flows.bytes,
    interfaces: [{ name: "lo", ifindex: 1, mac: "00:00:00:00:00:00", role: "client", addresses: [], receivePath: "af_packet" }],
  });
  const service = (port: number, slots: number[]) => ({
    vip: "198.18.0.100", port, protocol: "tcp" as const, mode: "cursor" as const, slots: Uint16Array.from(slots),
    reals: [{ ip: "198.18.1.11", port: 8080, id: 0 }, { ip: "198.18.1.12", port: 8080, id: 1 }],
  });
  t.is(engine.servicesGeneration(), 0);
  engine.setServices([service(80, [0, 1]), service(81, [0])]);
  t.is(engine.servicesGeneration(), 1);
  engine.replaceServices([service(81, [1])]);
  t.is(engine.servicesGeneration(), 2);
  t.throws(() => engine.replaceServices([service(82, [1])]), { message: /not in the data plane \(use setServices\)/ });
  t.is(engine.servicesGeneration(), 2, "a refused replacement publishes nothing");
  t.throws(() => engine.replaceServices([service(80, [2])]), { message: /slots holds an index past the end of reals/ });
});
