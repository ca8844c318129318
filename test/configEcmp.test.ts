// The config of scale-out behind ECMP: `bgp` (BIRD's control socket and the routes file), and the
// service fields `mhSeed` and `midStreamPickUp` ("mh" only; pick-up not with "fullnat"; on by default
// for "mh" services when bgp is set); the reload diff names them.

import test from "ava";
import { diffConfig, midStreamPickUpOf, parseConfig } from "../src/config";
import { configRefusal } from "./support/configField";

const service = (extra: Record<string, unknown> = {}) => ({
  vip: "198.18.0.100",
  port: 80,
  scheduler: "mh",
  reals: [{ ip: "198.18.1.11" }, { ip: "198.18.1.12" }],
  ...extra,
});
const BGP = { routesFile: "/etc/bird/natlb-vips.conf" };


test("bgp: the socket defaults to Debian's, the routes file is required and absolute", (t) => {
  const config = parseConfig({ services: [service()], bgp: BGP });
  t.deepEqual(config.bgp, { birdSocket: "/run/bird/bird.ctl", routesFile: "/etc/bird/natlb-vips.conf", withdrawGraceMs: 1000 });
  t.regex(configRefusal({ services: [service()], bgp: { ...BGP, withdrawGraceMs: 60_000 } }).message, /bgp\.withdrawGraceMs/);
  t.is(parseConfig({ services: [service()] }).bgp, undefined);
  t.regex(configRefusal({ services: [service()], bgp: { routesFile: "vips.conf" } }).message, /bgp\.routesFile.*absolute path/);
  t.regex(configRefusal({ services: [service()], bgp: {} }).message, /bgp\.routesFile/);
  t.regex(configRefusal({ services: [service()], bgp: { ...BGP, socket: "/x" } }).message, /socket/);
});

test("mhSeed and midStreamPickUp need scheduler mh, with the field named", (t) => {
  t.regex(configRefusal({ services: [service({ scheduler: "wrr", mhSeed: 1 })] }).message, /services\[0\]\.mhSeed.*needs scheduler "mh"/);
  t.regex(configRefusal({ services: [service({ scheduler: "sh", midStreamPickUp: true })] }).message, /services\[0\]\.midStreamPickUp.*needs scheduler "mh"/);
  t.regex(configRefusal({ services: [service({ mhSeed: -1 })] }).message, /mhSeed/);
  t.regex(configRefusal({ services: [service({ mhSeed: 2 ** 32 })] }).message, /mhSeed/);
  // false says "off", which any scheduler may say.
  t.is(parseConfig({ services: [service({ scheduler: "wrr", midStreamPickUp: false })] }).services[0]!.midStreamPickUp, false);
  t.is(parseConfig({ services: [service({ mhSeed: 4_000_000_000 })] }).services[0]!.mhSeed, 4_000_000_000);
});

test("midStreamPickUp is refused with fullnat: the real knows the flow by the first instance's local address", (t) => {
  const fullnat = service({ forwarding: "fullnat", fullnat: { localAddresses: ["198.18.1.3"] }, midStreamPickUp: true });
  t.regex(configRefusal({ services: [fullnat] }).message, /services\[0\]\.midStreamPickUp.*"fullnat"/);
  const fullNatReal = service({ fullnat: { localAddresses: ["198.18.1.3"] }, reals: [{ ip: "198.18.1.11" }, { ip: "198.18.1.12", forwarding: "fullnat" }] });
  t.regex(configRefusal({ services: [{ ...fullNatReal, midStreamPickUp: true }] }).message, /services\[0\]\.midStreamPickUp.*"fullnat"/);
  const config = parseConfig({ services: [fullNatReal], bgp: BGP });
  t.false(midStreamPickUpOf(config.services[0]!, config.bgp), "not by default either");
});

test("midStreamPickUp left out: on for TCP mh services when bgp is set, off otherwise; as set when set", (t) => {
  const withBgp = parseConfig({ services: [service(), service({ port: 81, scheduler: "wrr" }), service({ port: 82, midStreamPickUp: false }), service({ port: 83, protocol: "udp" })], bgp: BGP });
  t.deepEqual(withBgp.services.map((s) => midStreamPickUpOf(s, withBgp.bgp)), [true, false, false, false]);
  const without = parseConfig({ services: [service(), service({ port: 81, midStreamPickUp: true })] });
  t.deepEqual(without.services.map((s) => midStreamPickUpOf(s, without.bgp)), [false, true]);
  const fullnat = parseConfig({ services: [service({ forwarding: "fullnat", fullnat: { localAddresses: ["198.18.1.3"] } })], bgp: BGP });
  t.false(midStreamPickUpOf(fullnat.services[0]!, fullnat.bgp));
});

test("the reload diff names mhSeed, midStreamPickUp and bgp", (t) => {
  const before = parseConfig({ services: [service()] });
  const after = parseConfig({ services: [service({ mhSeed: 7, midStreamPickUp: true })], bgp: BGP });
  const diff = diffConfig(before, after);
  t.deepEqual(diff.changed[0]!.fields, ["mhSeed", "midStreamPickUp"]);
  t.deepEqual(diff.settings, ["bgp"]);
});
