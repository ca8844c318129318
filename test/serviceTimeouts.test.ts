// Per-service timeouts: the config (a state a service leaves out follows the global value), the flow
// map's sweep by timeout profile (native/flow/timeout_profiles.h, driven clock), and the engine moving
// a service's flows to its profile when its timeouts change or it goes.
import test from "ava";
import { diffConfig, differsFromGlobal, effectiveTimeouts, parseConfig, DEFAULT_TIMEOUTS, type Timeouts } from "../src/config";
import { FlowMap } from "../src/flows/flowMap";
import { loadNative, type NativeService } from "../src/native";
import { formatStatus, STATUS_SECTIONS } from "../src/statusText";
import type { BalancerStatus } from "../src/balancer";

const native = loadNative();

function service(port: number, extra: Record<string, unknown> = {}) {
  return { vip: "198.18.0.100", port, protocol: "udp", reals: [{ ip: "198.18.1.11" }], ...extra };
}

test("a service's own timeouts override the global ones; the states it leaves out follow the global value", (t) => {
  const config = parseConfig({
    timeouts: { udp: 60, tcpSynRecv: 30 },
    services: [service(53, { timeouts: { udp: 2, tcpEstablished: 3 } }), service(54)],
  });
  const [short, plain] = config.services;
  t.deepEqual(short!.timeouts, { udp: 2, tcpEstablished: 3 });
  t.is(plain!.timeouts, undefined);
  const expected: Timeouts = { ...DEFAULT_TIMEOUTS, udp: 2, tcpEstablished: 3, tcpSynRecv: 30 };
  t.deepEqual(effectiveTimeouts(short!, config.timeouts), expected);
  t.deepEqual(effectiveTimeouts(plain!, config.timeouts), config.timeouts);
  // A new global value reaches the states the service left out.
  const reloaded = parseConfig({ timeouts: { udp: 60, tcpSynRecv: 45 }, services: [service(53, { timeouts: { udp: 2, tcpEstablished: 3 } })] });
  t.is(effectiveTimeouts(reloaded.services[0]!, reloaded.timeouts).tcpSynRecv, 45);
  t.is(effectiveTimeouts(reloaded.services[0]!, reloaded.timeouts).udp, 2);
  t.true(differsFromGlobal(short!, config.timeouts));
  t.false(differsFromGlobal(parseConfig({ timeouts: { udp: 2 }, services: [service(53, { timeouts: { udp: 2 } })] }).services[0]!, { ...DEFAULT_TIMEOUTS, udp: 2 }));
  // An empty object is no timeouts of its own.
  t.is(parseConfig({ services: [service(53, { timeouts: {} })] }).services[0]!.timeouts, undefined);
});

test("bad service timeouts are refused with the field named; a change shows in the reload's diff", (t) => {
  const refuse = (timeouts: unknown, message: RegExp) =>
    t.throws(() => parseConfig({ services: [service(53, { timeouts })] }), { message }, JSON.stringify(timeouts));
  refuse({ udp: 0 }, /services\[0\]\.timeouts\.udp/);
  refuse({ udp: 2147484 }, /services\[0\]\.timeouts\.udp/);
  refuse({ udp: 1.5 }, /services\[0\]\.timeouts\.udp/);
  refuse({ tcpEstablishd: 3 }, /tcpEstablishd/);
  refuse("short", /services\[0\]\.timeouts/);
  const many = Array.from({ length: 256 }, (_, i) => service(1000 + i, { timeouts: { udp: i + 1 } }));
  t.throws(() => parseConfig({ services: many }), { message: /256 different sets of service timeouts: at most 255/ });
  // 256 services, 255 sets: fine.
  t.notThrows(() => parseConfig({ services: many.map((s, i) => (i === 255 ? { ...s, timeouts: { udp: 1 } } : s)) }));

  const before = parseConfig({ services: [service(53, { timeouts: { udp: 2, tcpEstablished: 3 } })] });
  const reordered = parseConfig({ services: [service(53, { timeouts: { tcpEstablished: 3, udp: 2 } })] });
  const changed = parseConfig({ services: [service(53, { timeouts: { udp: 5 } })] });
  t.deepEqual(diffConfig(before, reordered).changed, []);
  t.deepEqual(diffConfig(before, changed).changed[0]!.fields, ["timeouts"]);
});

test("status shows a service's timeouts only where they differ from the global ones", (t) => {
  const serviceStatus = (timeouts?: Timeouts) => ({ vip: "198.18.0.100", port: 53, protocol: "udp" as const, scheduler: "wrr" as const, reals: [], ...(timeouts ? { timeouts } : {}) });
  const servicesText = (services: ReturnType<typeof serviceStatus>[]) =>
    formatStatus({ services } as unknown as BalancerStatus, STATUS_SECTIONS.filter((section) => section.name === "servicesSection"));
  t.notRegex(servicesText([serviceStatus()]), /timeouts/);
  t.regex(
    servicesText([serviceStatus({ ...DEFAULT_TIMEOUTS, udp: 2 })]),
    /UDP  198\.18\.0\.100:53 +wrr\n  timeouts \(not all the global ones\): tcpEstablished 900 s, tcpSynRecv 60 s, tcpFinWait 120 s, tcpTimeWait 120 s, tcpClose 10 s, udp 2 s/,
  );
});

// ---- the flow map, driven clock ----

function table(capacity = 64) {
  const map = new FlowMap(capacity);
  const flows = new native.FlowTableForTests(map.bytes);
  flows.setFloodProtection({ halfOpenSharePermille: 1000, udpSharePermille: 1000, pressureAtPermille: 1000, pressureTimeoutSeconds: 5 });
  let port = 1;
  const add = (protocol: "tcp" | "udp", profile: number, nowMs = 1000) =>
    flows.insert({ protocol, clientIp: "198.19.0.1", clientPort: port++, vip: "198.18.0.100", vport: 80, realIp: "198.18.1.11", realPort: 8080 }, nowMs, { timeoutProfile: profile });
  const livePorts = () => map.connections().map((c) => c.client.port).sort((a, b) => a - b);
  return { map, flows, add, livePorts };
}

test("the sweep judges each flow by its own profile: a short service's idle flows go, the default ones stay", (t) => {
  const { flows, add, livePorts } = table();
  flows.setTimeoutProfile(0, {});  // the defaults: udp 300 s, established 900 s
  flows.setTimeoutProfile(1, { udp: 2, tcpEstablished: 3 });
  const udpShort = add("udp", 1);
  const udpDefault = add("udp", 0);
  const tcpShort = add("tcp", 1);
  const tcpDefault = add("tcp", 0);
  flows.assure(tcpShort);
  flows.assure(tcpDefault);
  t.deepEqual(livePorts(), [udpShort, udpDefault, tcpShort, tcpDefault].map((_, i) => i + 1));
  t.is(flows.sweep(1000 + 2000), 0, "2 s idle is not more than 2 s");
  t.is(flows.sweep(1000 + 2100), 1);
  t.deepEqual(livePorts(), [2, 3, 4], "the short service's UDP flow expired, after 2 s");
  t.is(flows.sweep(1000 + 3100), 1);
  t.deepEqual(livePorts(), [2, 4], "its established flow after 3 s");
  t.is(flows.sweep(1000 + 299_000), 0, "the default service's flows follow the global timeouts");
  t.is(flows.sweep(1000 + 300_100), 1);
  t.deepEqual(livePorts(), [4]);
  t.is(flows.sweep(1000 + 900_100), 1);
  t.deepEqual(livePorts(), []);
});

test("a state a profile leaves out follows the global value, also after it changes; a changed profile applies to the flows it has", (t) => {
  const { flows, add, livePorts } = table();
  flows.setTimeoutProfile(0, { tcpSynRecv: 60 });
  flows.setTimeoutProfile(1, { udp: 100 });  // no tcpSynRecv of its own
  add("tcp", 1);  // stays in SYN_RECV
  add("udp", 1);
  t.is(flows.sweep(1000 + 20_000), 0);
  flows.setTimeoutProfile(0, { tcpSynRecv: 10 });
  t.is(flows.sweep(1000 + 20_000), 1, "the half-open flow took the new global tcpSynRecv");
  t.deepEqual(livePorts(), [2]);
  flows.setTimeoutProfile(1, { udp: 15 });
  t.is(flows.sweep(1000 + 20_000), 1, "the UDP flow took its profile's new udp timeout");
  t.deepEqual(livePorts(), []);
});

test("under pressure an unassured flow of a long-timeout profile still gets the short pressure timeout", (t) => {
  const { flows, add, map } = table(16);
  flows.setFloodProtection({ halfOpenSharePermille: 1000, udpSharePermille: 1000, pressureAtPermille: 100, pressureTimeoutSeconds: 5 });
  flows.setTimeoutProfile(2, { udp: 1000 });
  for (let i = 0; i < 4; i++) add("udp", 2);
  t.is(flows.sweep(1000 + 5_500), 4);
  t.is(map.stats().expiredUnderPressure, 4);
});

// ---- the engine gives services profiles and moves their flows ----

test("the engine moves a service's flows to its profile when its timeouts change, and back to the global one when it goes", (t) => {
  const map = new FlowMap(64);
  const flows = new native.FlowTableForTests(map.bytes);
  const engine = new native.Engine({
    flowTable: map.bytes,
    interfaces: [{ name: "lo", ifindex: 1, mac: "00:00:00:00:00:00", role: "client", addresses: [], receivePath: "af_packet" }],
  });
  const layout = native.flowLayout();
  const entries = map.buffer.byteLength - map.capacity * layout.entryBytes;
  const profileOf = (ref: number) => map.bytes[entries + (ref - 1) * layout.entryBytes + layout.entry.timeoutProfile]!;
  const nativeService = (port: number, timeouts?: NativeService["timeouts"]): NativeService => ({
    vip: "198.18.0.100", port, protocol: "udp", mode: "cursor", slots: Uint16Array.of(0), reals: [{ ip: "198.18.1.11", port, id: 0 }],
    ...(timeouts ? { timeouts } : {}),
  });
  const add = (vport: number, clientPort: number) =>
    flows.insert({ protocol: "udp", clientIp: "198.19.0.1", clientPort, vip: "198.18.0.100", vport, realIp: "198.18.1.11", realPort: vport }, 1000);

  engine.setServices([nativeService(53), nativeService(54), nativeService(55)]);
  const a = add(53, 1), b = add(54, 2), c = add(55, 3);
  t.deepEqual([a, b, c].map(profileOf), [0, 0, 0]);

  engine.setServices([nativeService(53, { udp: 2, tcpEstablished: 3 }), nativeService(54), nativeService(55, { tcpEstablished: 3, udp: 2 })]);
  const shortProfile = profileOf(a);
  t.not(shortProfile, 0, "the service with its own timeouts has a profile of its own");
  t.is(profileOf(b), 0);
  t.is(profileOf(c), shortProfile, "services with the same timeouts share a profile");

  // A health change (replaceServices) with the same timeouts moves nothing; a new value does.
  engine.replaceServices([nativeService(53, { udp: 2, tcpEstablished: 3 })]);
  t.is(profileOf(a), shortProfile);
  engine.replaceServices([nativeService(53, { udp: 7 })]);
  t.not(profileOf(a), shortProfile);
  t.not(profileOf(a), 0);
  t.is(profileOf(c), shortProfile, "the other service keeps its profile");

  // Removed: its flows go back to the global timeouts; dropping its own timeouts does the same.
  engine.setServices([nativeService(54), nativeService(55, { tcpEstablished: 3, udp: 2 })]);
  t.is(profileOf(a), 0);
  t.is(profileOf(c), shortProfile);
  engine.setServices([nativeService(54), nativeService(55)]);
  t.is(profileOf(c), 0);

  t.throws(() => engine.setServices([nativeService(53, { udp: 0 })]), { message: /services\[0\]\.timeouts\.udp/ });
  const many = Array.from({ length: 256 }, (_, i) => nativeService(1000 + i, { udp: i + 1 }));
  t.throws(() => engine.setServices(many), { message: /256 different sets of service timeouts: at most 255/ });
  t.notThrows(() => engine.setServices(many.slice(0, 255)));
  t.notThrows(() => engine.setServices(many.slice(1)), "the profiles of timeouts no longer used are taken over");
});
