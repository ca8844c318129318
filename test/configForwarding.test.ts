// Service field `forwarding`: "nat" (the default) or "dr" (direct routing); a "dr" real on another
// port than the service's is refused at its own path; a backend interface list may be empty (one-armed
// direct routing); the reload diff names the field.

import test from "ava";
import { diffConfig, parseConfig } from "../src/config";
import { configRefusal } from "./support/configField";

const service = (extra: Record<string, unknown> = {}) => ({
  vip: "198.18.0.100",
  port: 80,
  reals: [{ ip: "198.18.1.11" }, { ip: "198.18.1.12", weight: 2 }],
  ...extra,
});


test('left out, forwarding is "nat"', (t) => {
  t.is(parseConfig({ services: [service()] }).services[0]!.forwarding, "nat");
});

test('"dr" is taken, and its reals get the service port', (t) => {
  const s = parseConfig({ services: [service({ forwarding: "dr" })] }).services[0]!;
  t.is(s.forwarding, "dr");
  t.deepEqual(s.reals.map((r) => r.port), [80, 80]);
});

test("an unknown mode is refused at services[0].forwarding, naming the modes", (t) => {
  const error = configRefusal({ services: [service({ forwarding: "tun" })] });
  t.is(error.path, "services[0].forwarding");
  t.regex(error.message, /"nat"/);
  t.regex(error.message, /"dr"/);
  t.regex(error.message, /"fullnat"/);
});

test('"fullnat" takes its source pool, with the default port range', (t) => {
  const s = parseConfig({ services: [service({ forwarding: "fullnat", fullnat: { localAddresses: ["198.18.1.2", "198.18.1.3"] } })] }).services[0]!;
  t.is(s.forwarding, "fullnat");
  t.deepEqual(s.fullnat, { localAddresses: ["198.18.1.2", "198.18.1.3"], localPorts: { first: 1024, last: 32767 } });
  const ranged = parseConfig({ services: [service({ forwarding: "fullnat", fullnat: { localAddresses: ["198.18.1.2"], localPorts: { first: 5000, last: 5003 } } })] });
  t.deepEqual(ranged.services[0]!.fullnat!.localPorts, { first: 5000, last: 5003 });
});

test('"fullnat" without a pool, a pool without "fullnat", and bad pools are refused at their fields', (t) => {
  const missing = configRefusal({ services: [service({ forwarding: "fullnat" })] });
  t.is(missing.path, "services[0].fullnat");
  t.regex(missing.message, /localAddresses/);
  t.is(configRefusal({ services: [service({ fullnat: { localAddresses: ["198.18.1.2"] } })] }).path, "services[0].fullnat");
  t.is(configRefusal({ services: [service({ forwarding: "fullnat", fullnat: { localAddresses: [] } })] }).path, "services[0].fullnat.localAddresses");
  t.is(configRefusal({ services: [service({ forwarding: "fullnat", fullnat: { localAddresses: ["198.18.1.2", "198.18.1.2"] } })] }).path, "services[0].fullnat.localAddresses");
  t.is(configRefusal({ services: [service({ forwarding: "fullnat", fullnat: { localAddresses: ["not-an-ip"] } })] }).path, "services[0].fullnat.localAddresses[0]");
  t.is(configRefusal({ services: [service({ forwarding: "fullnat", fullnat: { localAddresses: ["198.18.1.2"], localPorts: { first: 9, last: 8 } } })] }).path, "services[0].fullnat.localPorts");
  t.is(
    parseConfig({ services: [service({ forwarding: "fullnat", fullnat: { localAddresses: ["198.18.1.2"] }, deadRealFlows: "reset" })] }).services[0]!.deadRealFlows,
    "reset",
    "reset is taken with fullnat (the real's reset comes from the local address)",
  );
});

test("changing the source pool is a service change naming fullnat", (t) => {
  const pool = (a: string) => service({ forwarding: "fullnat", fullnat: { localAddresses: [a] } });
  const diff = diffConfig(parseConfig({ services: [pool("198.18.1.2")] }), parseConfig({ services: [pool("198.18.1.3")] }));
  t.deepEqual(diff.changed[0]!.fields, ["fullnat"]);
});

test('a "dr" real on another port is refused at its port, saying what to write', (t) => {
  const error = configRefusal({ services: [service({ forwarding: "dr", reals: [{ ip: "198.18.1.11", port: 80 }, { ip: "198.18.1.12", port: 8080 }] })] });
  t.is(error.path, "services[0].reals[1].port");
  t.regex(error.message, /service port 80/);
  // The same reals under NAT are fine.
  t.notThrows(() => parseConfig({ services: [service({ reals: [{ ip: "198.18.1.11", port: 8080 }] })] }));
});

test('a "dr" fallback real on another port is refused at fallback.port', (t) => {
  const error = configRefusal({ services: [service({ forwarding: "dr", fallback: { ip: "198.18.1.30", port: 81 } })] });
  t.is(error.path, "services[0].fallback.port");
});

test("an empty backend interface list is taken (one-armed), an empty client list is not", (t) => {
  const oneArmed = parseConfig({ services: [service({ forwarding: "dr" })], interfaces: { client: ["eth1"], backend: [] } });
  t.deepEqual(oneArmed.interfaces, { client: ["eth1"], backend: [] });
  t.is(configRefusal({ services: [service()], interfaces: { client: [], backend: ["eth1"] } }).path, "interfaces.client");
});

test("changing the mode is a service change naming forwarding", (t) => {
  const before = parseConfig({ services: [service()] });
  const after = parseConfig({ services: [service({ forwarding: "dr" })] });
  const diff = diffConfig(before, after);
  t.is(diff.changed.length, 1);
  t.deepEqual(diff.changed[0]!.fields, ["forwarding"]);
});

test('"dr" takes deadRealFlows "reset" and "drop"', (t) => {
  t.is(parseConfig({ services: [service({ forwarding: "dr", deadRealFlows: "reset" })] }).services[0]!.deadRealFlows, "reset");
  t.is(parseConfig({ services: [service({ forwarding: "dr", deadRealFlows: "drop" })] }).services[0]!.deadRealFlows, "drop");
});
