// A real's own `forwarding` (issue #11: "a service (or a single real) gets forwarding"): it overrides
// the service's, under the same rules (a "dr" real on the service port and on a link natlb works on, a
// "fullnat" real needs the service's source pool, "reset" with any mode); the reload diff and its
// summary name the change; the derived backend interfaces and the on-link check go by each real's mode.

import test from "ava";
import { diffConfig, parseConfig, realForwarding } from "../src/config";
import { ConfigError } from "../src/errors";
import { summarizeDiff } from "../src/events";
import { checkDirectRealsOnLink } from "../src/gateway/interfaces";
import type { NativeInterface } from "../src/native";
import { configRefusal } from "./support/configField";

const POOL = { localAddresses: ["198.18.1.2"] };

const service = (reals: unknown[], extra: Record<string, unknown> = {}) => ({ vip: "198.18.0.100", port: 80, reals, ...extra });


test("a real's forwarding overrides the service's; one equal to the service's is not kept", (t) => {
  const s = parseConfig({
    services: [service([{ ip: "198.18.1.11", port: 8080 }, { ip: "198.18.1.12", forwarding: "dr" }, { ip: "198.18.1.13", forwarding: "nat" }])],
  }).services[0]!;
  t.is(s.forwarding, "nat");
  t.deepEqual(s.reals.map((r) => r.forwarding), [undefined, "dr", undefined]);
  t.deepEqual(s.reals.map((r) => realForwarding(s, r)), ["nat", "dr", "nat"]);
  t.deepEqual(s.reals.map((r) => r.port), [8080, 80, 80], "a dr real gets the service port");
  const dr = parseConfig({ services: [service([{ ip: "198.18.1.11" }, { ip: "198.18.1.12", port: 8080, forwarding: "nat" }], { forwarding: "dr" })] }).services[0]!;
  t.deepEqual(dr.reals.map((r) => realForwarding(dr, r)), ["dr", "nat"]);
});

test("an unknown mode on a real is refused at its path", (t) => {
  const error = configRefusal({ services: [service([{ ip: "198.18.1.11", forwarding: "tun" }])] });
  t.is(error.path, "services[0].reals[0].forwarding");
  t.regex(error.message, /"fullnat"/);
});

test('a "dr" real on another port than the service\'s is refused at its port, in a "nat" service too', (t) => {
  const error = configRefusal({ services: [service([{ ip: "198.18.1.11", port: 8080 }, { ip: "198.18.1.12", port: 8080, forwarding: "dr" }])] });
  t.is(error.path, "services[0].reals[1].port");
  t.regex(error.message, /service port 80/);
  // A "nat" real in a "dr" service may have its own port.
  t.notThrows(() => parseConfig({ services: [service([{ ip: "198.18.1.12", port: 8080, forwarding: "nat" }], { forwarding: "dr" })] }));
});

test('a "fullnat" real needs the service\'s pool; the pool is taken for it in a "nat" or "dr" service', (t) => {
  const missing = configRefusal({ services: [service([{ ip: "198.18.1.11" }, { ip: "198.18.1.12", forwarding: "fullnat" }])] });
  t.is(missing.path, "services[0].fullnat");
  t.regex(missing.message, /"fullnat" real \(reals\[1\]\)/);
  for (const forwarding of ["nat", "dr"]) {
    const s = parseConfig({ services: [service([{ ip: "198.18.1.11" }, { ip: "198.18.1.12", forwarding: "fullnat" }], { forwarding, fullnat: POOL })] }).services[0]!;
    t.deepEqual(s.fullnat, { localAddresses: ["198.18.1.2"], localPorts: { first: 1024, last: 32767 } }, forwarding);
  }
  // With no "fullnat" real left, the pool is refused as before.
  t.is(configRefusal({ services: [service([{ ip: "198.18.1.11", forwarding: "dr" }], { fullnat: POOL })] }).path, "services[0].fullnat");
});

test('deadRealFlows "reset" is taken with "dr" and "fullnat" reals', (t) => {
  // A "dr" flow's resets carry the client's sequence end and its latest acknowledgement (README "Flows of dead reals").
  t.is(parseConfig({ services: [service([{ ip: "198.18.1.11" }, { ip: "198.18.1.12", forwarding: "dr" }], { deadRealFlows: "reset" })] }).services[0]!.deadRealFlows, "reset");
  t.notThrows(() => parseConfig({ services: [service([{ ip: "198.18.1.11", forwarding: "fullnat" }], { fullnat: POOL, deadRealFlows: "reset" })] }));
  t.notThrows(() => parseConfig({ services: [service([{ ip: "198.18.1.11", forwarding: "nat" }], { forwarding: "dr", deadRealFlows: "drop" })] }));
});

test("a real's new forwarding is a real update, and the change summary says which way it went", (t) => {
  const before = parseConfig({ services: [service([{ ip: "198.18.1.11" }, { ip: "198.18.1.12" }])] });
  const after = parseConfig({ services: [service([{ ip: "198.18.1.11" }, { ip: "198.18.1.12", forwarding: "dr" }])] });
  const diff = diffConfig(before, after);
  t.deepEqual(diff.changed[0]!.fields, []);
  t.deepEqual(diff.changed[0]!.reals.updated.map((u) => u.key), ["198.18.1.12:80"]);
  const summary = summarizeDiff(diff) as { servicesChanged: Array<Record<string, unknown>> };
  t.deepEqual(summary.servicesChanged[0]!["realsForwarding"], ["198.18.1.12:80 nat->dr"]);
  // The service's mode changing under a real that keeps its own is a field change, not the real's.
  const serviceDr = parseConfig({ services: [service([{ ip: "198.18.1.11" }, { ip: "198.18.1.12", forwarding: "nat" }], { forwarding: "dr" })] });
  const s2 = summarizeDiff(diffConfig(before, serviceDr)) as { servicesChanged: Array<Record<string, unknown>> };
  t.deepEqual(s2.servicesChanged[0]!["fields"], ["forwarding"]);
  t.is(s2.servicesChanged[0]!["realsForwarding"], undefined, "198.18.1.12 stays nat, under its own forwarding now");
});

test("the on-link check takes each real's mode: a dr real off natlb's links is refused at its ip, a nat real there is not", (t) => {
  const interfaces: NativeInterface[] = [
    { name: "eth0", ifindex: 2, mac: "02:00:00:00:00:01", role: "client", addresses: [{ ip: "198.18.0.1", prefixLength: 24 }], receivePath: "af_packet" },
    { name: "eth1", ifindex: 3, mac: "02:00:00:00:00:02", role: "backend", addresses: [{ ip: "198.18.1.1", prefixLength: 24 }], receivePath: "af_packet" },
  ];
  const offLinkNat = parseConfig({ services: [service([{ ip: "198.18.1.11", forwarding: "dr" }, { ip: "198.18.5.20" }])] });
  t.notThrows(() => checkDirectRealsOnLink(offLinkNat, interfaces), "a nat real may be behind a router");
  const offLinkDr = parseConfig({ services: [service([{ ip: "198.18.1.11" }, { ip: "198.18.5.20", forwarding: "dr" }])] });
  const error = t.throws(() => checkDirectRealsOnLink(offLinkDr, interfaces), { instanceOf: ConfigError });
  t.is(error!.path, "services[0].reals[1].ip");
  t.regex(error!.message, /is not on a link natlb works on/);
});
