// Configuration: defaults, field-path error messages, semantic checks, file loading, diff; plus the
// IPv4 helpers and typed errors the config relies on.

import test from "ava";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  formatIPv4,
  inPrefix,
  isBenchmarkRange,
  isIPv4,
  parseIPv4,
} from "../src/addresses";
import {
  DEFAULT_TIMEOUTS,
  diffConfig,
  loadConfigFile,
  parseConfig,
  parseConfigText,
  type NatlbConfig,
} from "../src/config";
import { ApiError, ConfigError, KernelSetupError, NatlbError, PrivilegeError } from "../src/errors";

/** A minimal valid service, with overrides. */
function service(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { vip: "198.18.0.100", port: 80, reals: [{ ip: "198.18.1.11" }], ...overrides };
}

function expectConfigError(value: unknown): ConfigError {
  try {
    parseConfig(value);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw new Error(`expected a ConfigError, got ${String(error)}`);
  }
  throw new Error(`expected parseConfig to reject ${JSON.stringify(value)}`);
}

// ------------------------------------------------------------------------------------- addresses

test("parseIPv4 and formatIPv4 round-trip, host order", (t) => {
  t.is(parseIPv4("198.18.0.1"), 0xc6120001);
  t.is(parseIPv4("255.255.255.255"), 0xffffffff);
  t.is(parseIPv4("0.0.0.0"), 0);
  t.is(formatIPv4(0xc6120001), "198.18.0.1");
  for (const s of ["198.18.0.100", "10.0.0.1", "1.2.3.4", "255.0.255.0"]) t.is(formatIPv4(parseIPv4(s)), s);
});

test("parseIPv4 rejects malformed input", (t) => {
  for (const bad of ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", " 1.2.3.4", "a.b.c.d", "1..2.3", "1.2.3.4/32"]) {
    t.throws(() => parseIPv4(bad), { instanceOf: TypeError }, bad);
    t.false(isIPv4(bad), bad);
  }
  t.throws(() => formatIPv4(2 ** 32));
  t.throws(() => formatIPv4(-1));
});

test("inPrefix and isBenchmarkRange", (t) => {
  t.true(inPrefix("198.18.5.6", "198.18.0.0", 16));
  t.false(inPrefix("198.19.5.6", "198.18.0.0", 16));
  t.true(inPrefix("1.2.3.4", "0.0.0.0", 0));
  t.true(inPrefix(parseIPv4("10.1.2.3"), "10.1.2.3", 32));
  t.true(isBenchmarkRange("198.18.0.1"));
  t.true(isBenchmarkRange("198.19.255.255"));
  t.false(isBenchmarkRange("198.20.0.0"));
  t.false(isBenchmarkRange("198.17.255.255"));
  t.false(isBenchmarkRange("not an ip"));
  t.throws(() => inPrefix("1.2.3.4", "1.2.3.0", 33));
});

// ---------------------------------------------------------------------------------------- errors

test("typed errors carry codes and their fields", (t) => {
  const c = new ConfigError("services[0].port", "expected an integer 1..65535, got 0");
  t.true(c instanceof NatlbError);
  t.is(c.code, "E_CONFIG");
  t.is(c.name, "ConfigError");
  t.is(c.path, "services[0].port");
  t.is(c.message, "config: services[0].port: expected an integer 1..65535, got 0");
  const a = new ApiError("unknown service 198.18.0.1:80/tcp", { status: 404, code: "E_UNKNOWN_SERVICE" });
  t.is(a.status, 404);
  t.is(a.code, "E_UNKNOWN_SERVICE");
  t.is(new ApiError("x").status, 400);
  t.is(new PrivilegeError("need CAP_NET_RAW", { capability: "CAP_NET_RAW" }).code, "E_PRIVILEGE");
  const k = new KernelSetupError("failed", { command: "ip route add blackhole 198.18.0.100/32" });
  t.is(k.code, "E_KERNEL_SETUP");
  t.is(k.command, "ip route add blackhole 198.18.0.100/32");
});

// -------------------------------------------------------------------------------------- defaults

test("defaults fill a minimal config", (t) => {
  const config = parseConfig({ services: [service({ reals: [{ ip: "198.18.1.11" }, { ip: "198.18.1.12", port: 8080, weight: 0 }] })] });
  const s = config.services[0]!;
  t.is(s.protocol, "tcp");
  t.is(s.scheduler, "wrr");
  t.deepEqual(s.reals, [
    { ip: "198.18.1.11", port: 80, weight: 1 },
    { ip: "198.18.1.12", port: 8080, weight: 0 },
  ]);
  t.deepEqual(s.healthCheck, { type: "none" });
  t.is(config.flowCapacity, 262144);
  t.deepEqual(config.timeouts, DEFAULT_TIMEOUTS);
  t.is(config.interfaces, undefined);
  t.is(config.socket, undefined);
});

test("the documented example parses as written", (t) => {
  const config = parseConfig({
    services: [
      {
        vip: "198.18.0.100",
        port: 80,
        protocol: "tcp",
        scheduler: "wrr",
        reals: [{ ip: "198.18.1.11", port: 8080, weight: 3 }],
        healthCheck: { type: "tcp", intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 2 },
      },
    ],
    interfaces: { client: ["eth0"], backend: ["eth1"] },
    flowCapacity: 65536,
    timeouts: { tcpEstablished: 900, tcpSynRecv: 60, tcpFinWait: 120, tcpTimeWait: 120, tcpClose: 10, udp: 300 },
    socket: "/run/natlb/natlb.sock",
  });
  t.deepEqual(config.services[0]!.healthCheck, { type: "tcp", intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 2, port: undefined, flapDamping: undefined });
  t.deepEqual(config.interfaces, { client: ["eth0"], backend: ["eth1"] });
  t.is(config.flowCapacity, 65536);
  t.is(config.socket, "/run/natlb/natlb.sock");
});

test("partial timeouts and health check take defaults for the rest", (t) => {
  const config = parseConfig({
    services: [service({ protocol: "udp", scheduler: "mh", healthCheck: { intervalMs: 250 } })],
    timeouts: { udp: 30 },
  });
  t.deepEqual(config.timeouts, { ...DEFAULT_TIMEOUTS, udp: 30 });
  // A check without a type follows the service's protocol: a UDP service is never checked by TCP connect unless asked.
  t.deepEqual(config.services[0]!.healthCheck, {
    type: "udp", intervalMs: 250, timeoutMs: 500, rise: 2, fall: 2, port: undefined, flapDamping: undefined, expect: undefined, payloadHex: "",
  });
  t.is(config.services[0]!.protocol, "udp");
  t.is(config.services[0]!.scheduler, "mh");
  t.deepEqual(parseConfig({ services: [service({ healthCheck: { type: "none" } })] }).services[0]!.healthCheck, { type: "none" });
});

test("health checks: each type's defaults, and the resolved config parses back to itself", (t) => {
  const checks = [
    { type: "http", path: "/healthz", expectStatus: "200,204", bodyMatch: "^ok" },
    { type: "https", host: "www.example.com", verifyTls: true },
    { type: "udp", payload: "ping", expect: "pong" },
    { type: "udp", payloadHex: "00FF" },
    { type: "exec", command: ["/usr/local/bin/check", "--quick"], flapDamping: { flaps: 3 } },
    { type: "tcp", port: 9000 },
  ];
  const config = parseConfig({ services: checks.map((healthCheck, i) => service({ port: 80 + i, healthCheck })) });
  const [http, https, udpText, udpHex, exec, tcp] = config.services.map((s) => s.healthCheck);
  t.like(http, { type: "http", path: "/healthz", expectStatus: "200,204", bodyMatch: "^ok", verifyTls: false, host: undefined });
  t.like(https, { type: "https", path: "/", expectStatus: "200-399", host: "www.example.com", verifyTls: true });
  t.like(udpText, { type: "udp", payloadHex: Buffer.from("ping").toString("hex"), expect: "pong" });
  t.like(udpHex, { type: "udp", payloadHex: "00ff", expect: undefined });
  t.like(exec, { type: "exec", command: ["/usr/local/bin/check", "--quick"], flapDamping: { flaps: 3, windowS: 60, holdDownS: 30, maxHoldDownS: 600 } });
  t.like(tcp, { type: "tcp", port: 9000, intervalMs: 1000 });
  // The balancer edits a JSON copy of the resolved config and parses it again.
  t.deepEqual(parseConfig(JSON.parse(JSON.stringify(config))), config);
  t.deepEqual(parseConfig(config), config);
});

const healthCheckErrors = [
  { name: "http field on a tcp check", healthCheck: { type: "tcp", path: "/x" }, path: "services[0].healthCheck.path", includes: ['"http"', '"https"'] },
  { name: "http field without a type", healthCheck: { expectStatus: "200" }, path: "services[0].healthCheck.expectStatus", includes: ["type"] },
  { name: "exec without command", healthCheck: { type: "exec" }, path: "services[0].healthCheck.command", includes: ["missing"] },
  { name: "exec relative program", healthCheck: { type: "exec", command: ["check.sh"] }, path: "services[0].healthCheck.command", includes: ["absolute"] },
  { name: "bad status range", healthCheck: { type: "http", expectStatus: "200-99" }, path: "services[0].healthCheck.expectStatus", includes: ['"200-99"'] },
  { name: "bad body regex", healthCheck: { type: "http", bodyMatch: "(" }, path: "services[0].healthCheck.bodyMatch", includes: ["regular expression"] },
  { name: "path without slash", healthCheck: { type: "http", path: "healthz" }, path: "services[0].healthCheck.path", includes: ['"/"'] },
  { name: "payload and payloadHex", healthCheck: { type: "udp", payload: "a", payloadHex: "61" }, path: "services[0].healthCheck.payloadHex", includes: ["not both"] },
  { name: "odd hex payload", healthCheck: { type: "udp", payloadHex: "abc" }, path: "services[0].healthCheck.payloadHex", includes: ["hex"] },
  { name: "hold-down above its maximum", healthCheck: { flapDamping: { holdDownS: 60, maxHoldDownS: 30 } }, path: "services[0].healthCheck.flapDamping.maxHoldDownS", includes: ["holdDownS"] },
];

for (const c of healthCheckErrors) {
  test(`health check error: ${c.name}`, (t) => {
    const e = expectConfigError({ services: [service({ healthCheck: c.healthCheck })] });
    t.is(e.path, c.path, e.message);
    for (const part of c.includes) t.true(e.message.includes(part), `${JSON.stringify(part)} not in: ${e.message}`);
  });
}

test("persistence: the netmask defaults to /32, and a change shows in the diff", (t) => {
  const parsed = parseConfig({ services: [service({ persistence: { timeoutS: 300 } })] }).services[0]!;
  t.deepEqual(parsed.persistence, { timeoutS: 300, netmask: "255.255.255.255" });
  t.is(parseConfig({ services: [service()] }).services[0]!.persistence, undefined);
  const wider = parseConfig({ services: [service({ persistence: { timeoutS: 300, netmask: "255.255.255.0" } })] });
  t.deepEqual(diffConfig(parseConfig({ services: [service({ persistence: { timeoutS: 300 } })] }), wider).changed[0]!.fields, ["persistence"]);
});

const persistenceErrors = [
  { name: "netmask not contiguous", persistence: { timeoutS: 300, netmask: "255.0.255.0" }, path: "services[0].persistence.netmask", includes: ["255.0.255.0 is not a contiguous netmask", "255.255.255.0"] },
  { name: "netmask not an address", persistence: { timeoutS: 300, netmask: "/24" }, path: "services[0].persistence.netmask", includes: ["netmask like 255.255.255.0", '"/24"'] },
  { name: "timeout 0", persistence: { timeoutS: 0 }, path: "services[0].persistence.timeoutS", includes: ["an integer 1..2678400"] },
  { name: "timeout missing", persistence: { netmask: "255.255.255.0" }, path: "services[0].persistence.timeoutS", includes: ["missing"] },
  { name: "not an object", persistence: 300, path: "services[0].persistence", includes: ['{ "timeoutS": 300'] },
];

for (const c of persistenceErrors) {
  test(`persistence error: ${c.name}`, (t) => {
    const e = expectConfigError({ services: [service({ persistence: c.persistence })] });
    t.is(e.path, c.path, e.message);
    for (const part of c.includes) t.true(e.message.includes(part), `${JSON.stringify(part)} not in: ${e.message}`);
  });
}

test("an empty service list is valid (services can come with a reload)", (t) => {
  t.deepEqual(parseConfig({ services: [] }).services, []);
});

// -------------------------------------------------------------------------------- error messages

test("the weight example message, exactly", (t) => {
  const e = expectConfigError({ services: [service({ reals: [{ ip: "198.18.1.11" }, { ip: "198.18.1.12", weight: "abc" }] })] });
  t.is(e.path, "services[0].reals[1].weight");
  t.is(e.message, 'config: services[0].reals[1].weight: expected an integer 0..65535, got "abc"');
});

const fieldCases: ReadonlyArray<{ name: string; value: unknown; path: string; includes: string[] }> = [
  { name: "weight too big", value: { services: [service({ reals: [{ ip: "198.18.1.11", weight: 65536 }] })] }, path: "services[0].reals[0].weight", includes: ["0..65535", "65536"] },
  { name: "fractional weight", value: { services: [service({ reals: [{ ip: "198.18.1.11", weight: 1.5 }] })] }, path: "services[0].reals[0].weight", includes: ["integer", "1.5"] },
  { name: "port 0", value: { services: [service({ port: 0 })] }, path: "services[0].port", includes: ["1..65535", "got 0"] },
  { name: "port 65536 on a real", value: { services: [service({ reals: [{ ip: "198.18.1.11", port: 65536 }] })] }, path: "services[0].reals[0].port", includes: ["1..65535"] },
  { name: "bad vip", value: { services: [service({ vip: "198.18.0" })] }, path: "services[0].vip", includes: ["IPv4", '"198.18.0"'] },
  { name: "vip as number", value: { services: [service({ vip: 3323068417 })] }, path: "services[0].vip", includes: ["IPv4", "3323068417"] },
  { name: "loopback real", value: { services: [service({ reals: [{ ip: "127.0.0.1" }] })] }, path: "services[0].reals[0].ip", includes: ["loopback", "unicast"] },
  { name: "multicast vip", value: { services: [service({ vip: "239.1.1.1" })] }, path: "services[0].vip", includes: ["multicast"] },
  { name: "missing vip", value: { services: [{ port: 80, reals: [] }] }, path: "services[0].vip", includes: ["missing", "IPv4"] },
  { name: "missing services", value: {}, path: "services", includes: ["missing"] },
  { name: "unknown scheduler", value: { services: [service({ scheduler: "lblc" })] }, path: "services[0].scheduler", includes: ['"wrr"', '"mh"', '"lblc"'] },
  { name: "unknown protocol", value: { services: [service({ protocol: "sctp" })] }, path: "services[0].protocol", includes: ['"tcp"', '"udp"', '"sctp"'] },
  { name: "typo in field name", value: { services: [service({ healthcheck: { type: "tcp" } })] }, path: "services[0].healthcheck", includes: ["unknown field", "spelling"] },
  { name: "unknown health check type", value: { services: [service({ healthCheck: { type: "grpc" } })] }, path: "services[0].healthCheck.type", includes: ['"tcp"', '"http"', '"udp"', '"exec"', '"none"', '"grpc"'] },
  { name: "rise 0", value: { services: [service({ healthCheck: { rise: 0 } })] }, path: "services[0].healthCheck.rise", includes: ["1..100"] },
  { name: "flowCapacity too small", value: { services: [], flowCapacity: 15 }, path: "flowCapacity", includes: ["16..16777216", "15"] },
  { name: "flowCapacity too big", value: { services: [], flowCapacity: 16777217 }, path: "flowCapacity", includes: ["16..16777216"] },
  { name: "zero timeout", value: { services: [], timeouts: { tcpFinWait: 0 } }, path: "timeouts.tcpFinWait", includes: ["integer 1.."] },
  { name: "string timeout", value: { services: [], timeouts: { udp: "300" } }, path: "timeouts.udp", includes: ['"300"'] },
  { name: "unknown timeout", value: { services: [], timeouts: { tcpSynSent: 5 } }, path: "timeouts.tcpSynSent", includes: ["unknown field"] },
  { name: "empty interface list", value: { services: [], interfaces: { client: [], backend: ["eth1"] } }, path: "interfaces.client", includes: ["at least one"] },
  { name: "bad interface name", value: { services: [], interfaces: { client: ["eth0/1"], backend: ["eth1"] } }, path: "interfaces.client[0]", includes: ["interface name"] },
  { name: "relative socket path", value: { services: [], socket: "natlb.sock" }, path: "socket", includes: ["absolute"] },
  { name: "services not a list", value: { services: { vip: "198.18.0.1" } }, path: "services", includes: ["list", "an object"] },
  { name: "not an object", value: [], path: "", includes: ["JSON object", "a list"] },
];

for (const c of fieldCases) {
  test(`field error: ${c.name}`, (t) => {
    const e = expectConfigError(c.value);
    t.is(e.path, c.path);
    t.true(e.message.startsWith(c.path === "" ? "config: " : `config: ${c.path}: `), e.message);
    for (const part of c.includes) t.true(e.message.includes(part), `${JSON.stringify(part)} not in: ${e.message}`);
  });
}

test("every problem is reported, one line each", (t) => {
  const e = expectConfigError({ services: [service({ port: 0, vip: "x" })], flowCapacity: 1 });
  t.deepEqual(e.issues.map((i) => i.path).sort(), ["flowCapacity", "services[0].port", "services[0].vip"]);
  t.is(e.message.split("\n").length, 3);
});

// ------------------------------------------------------------------------------- semantic checks

test("duplicate (vip, port, protocol) is rejected, other protocol or port is fine", (t) => {
  const e = expectConfigError({ services: [service(), service({ reals: [{ ip: "198.18.1.20" }] })] });
  t.is(e.path, "services[1]");
  t.true(e.message.includes("duplicate service 198.18.0.100:80/tcp"), e.message);
  t.true(e.message.includes("services[0]"), e.message);
  t.notThrows(() => parseConfig({ services: [service(), service({ protocol: "udp" }), service({ port: 443 })] }));
});

test("duplicate real ip:port within a service is rejected; the default port counts", (t) => {
  const e = expectConfigError({
    services: [service({ reals: [{ ip: "198.18.1.11" }, { ip: "198.18.1.12" }, { ip: "198.18.1.11", port: 80 }] })],
  });
  t.is(e.path, "services[0].reals[2]");
  t.true(e.message.includes("198.18.1.11:80"), e.message);
  t.notThrows(() => parseConfig({ services: [service({ reals: [{ ip: "198.18.1.11" }, { ip: "198.18.1.11", port: 81 }] })] }));
});

test("a VIP may not be a real server's address, in any service", (t) => {
  const same = expectConfigError({ services: [service({ reals: [{ ip: "198.18.0.100" }] })] });
  t.is(same.path, "services[0].reals[0].ip");
  const other = expectConfigError({
    services: [service(), service({ vip: "198.18.0.101", reals: [{ ip: "198.18.0.100", port: 8080 }] })],
  });
  t.is(other.path, "services[1].reals[0].ip");
  t.true(other.message.includes("services[0]"), other.message);
});

test("at most 256 reals per service and 1024 services", (t) => {
  const reals = (n: number) => Array.from({ length: n }, (_, i) => ({ ip: formatIPv4(parseIPv4("198.18.16.0") + i) }));
  t.notThrows(() => parseConfig({ services: [service({ reals: reals(256) })] }));
  const e = expectConfigError({ services: [service({ reals: reals(257) })] });
  t.is(e.path, "services[0].reals");
  t.true(e.message.includes("257") && e.message.includes("256"), e.message);

  const services = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ vip: "198.18.0.100", port: 1 + i, reals: [{ ip: "198.18.1.1" }] }));
  t.notThrows(() => parseConfig({ services: services(1024) }));
  const e2 = expectConfigError({ services: services(1025) });
  t.is(e2.path, "services");
  t.true(e2.message.includes("1024"), e2.message);
});

// ------------------------------------------------------------------------------------ file input

test("loadConfigFile reads a file; syntax errors name file, line and column", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "natlb-config-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const good = join(dir, "good.json");
  await writeFile(good, "\uFEFF" + JSON.stringify({ services: [service()] }, null, 2));
  t.is((await loadConfigFile(good)).services[0]!.vip, "198.18.0.100");

  const bad = join(dir, "bad.json");
  await writeFile(bad, '{\n  "services": [\n    { "vip": "198.18.0.100", "port": 80, }\n  ]\n}\n');
  const e = await t.throwsAsync(loadConfigFile(bad), { instanceOf: ConfigError });
  // The trailing comma sits at line 3, column 40; the parser trips on the "}" right after it.
  t.true(e.message.includes(`${bad}:3:42`), e.message);
  t.true(e.message.includes("line 3, column 42"), e.message);

  const invalid = join(dir, "invalid.json");
  await writeFile(invalid, JSON.stringify({ services: [service({ port: "http" })] }));
  const e2 = await t.throwsAsync(loadConfigFile(invalid), { instanceOf: ConfigError });
  t.is(e2.path, "services[0].port");
  t.is(e2.file, invalid);
  t.true(e2.message.endsWith(`(in ${invalid})`), e2.message);

  const missing = await t.throwsAsync(loadConfigFile(join(dir, "absent.json")), { instanceOf: ConfigError });
  t.true(missing.message.includes("ENOENT") && missing.message.includes("--config"), missing.message);
});

test("JSON syntax errors at various places are located", (t) => {
  const at = (text: string) => {
    const e = t.throws(() => parseConfigText(text, "f.json"), { instanceOf: ConfigError });
    return /f\.json:(\d+):(\d+)/.exec(e.message)?.slice(1).map(Number);
  };
  t.deepEqual(at(""), [1, 1]);
  t.deepEqual(at('{"services": ['), [1, 15]);
  t.deepEqual(at('{"services": []} x'), [1, 18]);
  t.deepEqual(at('{\n"services": [1,\n,]}'), [3, 1]);
  t.deepEqual(at("{'services': []}"), [1, 2]);
});

// ------------------------------------------------------------------------------------------ diff

function cfg(services: unknown[], extra: Record<string, unknown> = {}): NatlbConfig {
  return parseConfig({ services, ...extra });
}

test("diffConfig: added, removed, changed, unchanged services", (t) => {
  const a = service({ vip: "198.18.0.1" });
  const b = service({ vip: "198.18.0.2" });
  const c = service({ vip: "198.18.0.3" });
  const d = service({ vip: "198.18.0.4" });
  const old = cfg([a, b, c]);
  const next = cfg([a, { ...b, scheduler: "mh" }, d]);
  const diff = diffConfig(old, next);
  t.deepEqual(diff.added.map((s) => s.vip), ["198.18.0.4"]);
  t.deepEqual(diff.removed.map((s) => s.vip), ["198.18.0.3"]);
  t.deepEqual(diff.unchanged, ["198.18.0.1:80/tcp"]);
  t.is(diff.changed.length, 1);
  t.is(diff.changed[0]!.key, "198.18.0.2:80/tcp");
  t.deepEqual(diff.changed[0]!.fields, ["scheduler"]);
  t.deepEqual(diff.settings, []);
});

test("diffConfig: reals added, removed, re-weighted; protocol change is a different service", (t) => {
  const old = cfg([
    service({ reals: [{ ip: "198.18.1.1" }, { ip: "198.18.1.2", weight: 2 }, { ip: "198.18.1.3" }], healthCheck: { type: "tcp" } }),
  ]);
  const next = cfg([
    service({ reals: [{ ip: "198.18.1.1" }, { ip: "198.18.1.2", weight: 5 }, { ip: "198.18.1.4" }], healthCheck: { type: "tcp", rise: 3 } }),
  ]);
  const change = diffConfig(old, next).changed[0]!;
  t.deepEqual(change.fields, ["healthCheck"]);
  t.deepEqual(change.reals.added.map((r) => r.ip), ["198.18.1.4"]);
  t.deepEqual(change.reals.removed.map((r) => r.ip), ["198.18.1.3"]);
  t.deepEqual(
    change.reals.updated.map((u) => [u.key, u.old.weight, u.next.weight]),
    [["198.18.1.2:80", 2, 5]],
  );

  const udp = diffConfig(cfg([service()]), cfg([service({ protocol: "udp" })]));
  t.deepEqual(udp.removed.map((s) => s.protocol), ["tcp"]);
  t.deepEqual(udp.added.map((s) => s.protocol), ["udp"]);
});

test("diffConfig: identical configs have no changes; global settings are listed", (t) => {
  const base = { services: [service()], interfaces: { client: ["eth0"], backend: ["eth1"] } };
  const same = diffConfig(parseConfig(base), parseConfig(JSON.parse(JSON.stringify(base))));
  t.deepEqual([same.added, same.removed, same.changed, same.settings], [[], [], [], []]);
  t.deepEqual(same.unchanged, ["198.18.0.100:80/tcp"]);

  const changed = diffConfig(
    parseConfig(base),
    parseConfig({ ...base, flowCapacity: 4096, timeouts: { udp: 10 }, interfaces: { client: ["eth0"], backend: ["eth2"] } }),
  );
  t.deepEqual([...changed.settings].sort(), ["flowCapacity", "interfaces", "timeouts"]);
});

test("diffConfig: reordering reals is a change (tables index the list)", (t) => {
  const diff = diffConfig(
    cfg([service({ reals: [{ ip: "198.18.1.1" }, { ip: "198.18.1.2" }] })]),
    cfg([service({ reals: [{ ip: "198.18.1.2" }, { ip: "198.18.1.1" }] })]),
  );
  t.is(diff.changed.length, 1);
  t.true(diff.changed[0]!.reals.reordered);
});
