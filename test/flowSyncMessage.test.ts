// The flow sync's datagram (native/sync/sync_message.h): round trip (flows and persistence templates),
// and every kind of bad datagram or record refused with its reason, never accepted and never a crash.
import test from "ava";
import { randomBytes } from "node:crypto";
import { loadNative, type SyncFlowRecord } from "../src/native";

const native = loadNative();
const sync = native.syncMessage;
const key = new Uint8Array(randomBytes(32));

const record = (i: number): SyncFlowRecord => ({
  kind: sync.recordKinds.flow, protocol: 6, state: 2, flags: 4, clientIp: "198.18.0.2", clientPort: 40000 + i, vip: "198.18.0.100", vport: 80,
  realIp: "198.18.1.11", realPort: 8080, localIp: "0.0.0.0", localPort: 0, netmask: "0.0.0.0",
});
// A persistence template: the client's network under its service's netmask, no port, state or local address.
const template = (over: Partial<SyncFlowRecord> = {}): SyncFlowRecord => ({
  ...record(0), kind: sync.recordKinds.template, state: 0, clientIp: "198.18.0.0", clientPort: 0, netmask: "255.255.255.0", ...over,
});
const header = { type: sync.types.flows, senderId: 0xdeadbeef, sequence: 2 ** 40 + 7, timestampMs: Date.now() };

test("a datagram decodes to what was encoded, up to the records that fit one datagram", (t) => {
  const records = Array.from({ length: sync.maxRecordsPerDatagram }, (_, i) => record(i));
  const datagram = sync.encode(header, records, key);
  t.true(datagram.length <= sync.maxDatagramBytes);
  const decoded = sync.decode(datagram, key);
  if (decoded.error !== "none") return t.fail(decoded.error);
  t.deepEqual(decoded.header, header);
  t.deepEqual(decoded.records.map(({ valid, ...r }) => r), records);
  t.true(decoded.records.every((r) => r.valid));
  t.throws(() => sync.encode(header, [...records, record(99)], key), { message: /too many records/ });
});

test("template records round-trip with their kind and netmask, next to flows that name them persistent", (t) => {
  const records = [template(), { ...record(1), flags: 4 | 8 }, template({ protocol: 17, clientIp: "0.0.0.0", netmask: "0.0.0.0", flags: 0 }),
    template({ clientIp: "198.18.0.2", netmask: "255.255.255.255" })];
  const decoded = sync.decode(sync.encode(header, records, key), key);
  if (decoded.error !== "none") return t.fail(decoded.error);
  t.deepEqual(decoded.records.map(({ valid, ...r }) => r), records);
  t.deepEqual(decoded.records.map((r) => r.valid), [true, true, true, true]);
  t.is(sync.version, 2, "templates came with version 2: a version-1 peer refuses them whole, counted");
});

test("every flipped bit is refused (the MAC covers header and records)", (t) => {
  const datagram = sync.encode(header, [record(1), template(), record(2)], key);
  const errors = new Set<string>();
  for (let byte = 0; byte < datagram.length; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const altered = Uint8Array.from(datagram);
      altered[byte]! ^= 1 << bit;
      const decoded = sync.decode(altered, key);
      t.not(decoded.error, "none", `bit ${bit} of byte ${byte}`);
      errors.add(decoded.error);
    }
  }
  // The header's magic, version and count fields have reasons of their own; the rest is the MAC's.
  t.deepEqual([...errors].sort(), ["badMac", "notSync", "truncated", "wrongVersion"]);
});

test("another key, another version, a cut datagram and random bytes are refused with their reason", (t) => {
  const datagram = sync.encode(header, [record(1), template()], key);
  t.is(sync.decode(datagram, new Uint8Array(randomBytes(32))).error, "badMac");
  const otherVersion = Uint8Array.from(datagram);
  otherVersion[4] = sync.version + 1;
  t.is(sync.decode(otherVersion, key).error, "wrongVersion");
  for (let length = 0; length < datagram.length; length++) {
    t.is(sync.decode(datagram.subarray(0, length), key).error, "truncated", `${length} bytes`);
  }
  const longer = new Uint8Array(datagram.length + 1);
  longer.set(datagram);
  t.is(sync.decode(longer, key).error, "truncated");
  let accepted = 0;
  for (let i = 0; i < 3000; i++) {
    const junk = new Uint8Array(randomBytes(1 + (i % 1400)));
    if (i % 2 === 0) junk.set(datagram.subarray(0, Math.min(8, junk.length)));  // past the magic and version
    if (sync.decode(junk, key).error === "none") accepted++;
  }
  t.is(accepted, 0);
});

test("records that cannot be flows are marked invalid (the receiver counts and skips them)", (t) => {
  const bad: SyncFlowRecord[] = [
    { ...record(1), protocol: 1 },
    { ...record(1), protocol: 17, state: 2 },
    { ...record(1), state: 0 },
    { ...record(1), state: 6 },
    { ...record(1), flags: 64 },
    { ...record(1), flags: 3 },
    { ...record(1), clientIp: "0.0.0.0" },
    { ...record(1), realPort: 0 },
    { ...record(1), flags: 2 },  // full NAT without a local address
  ];
  const decoded = sync.decode(sync.encode(header, [...bad, { ...record(1), protocol: 17, state: 6 }], key), key);
  if (decoded.error !== "none") return t.fail(decoded.error);
  t.deepEqual(decoded.records.map((r) => r.valid), [...bad.map(() => false), true]);
});

test("records that cannot be templates, and unknown kinds, are marked invalid", (t) => {
  const bad: SyncFlowRecord[] = [
    { ...record(1), kind: 2 },
    { ...record(1), kind: 255 },
    { ...record(1), netmask: "255.255.255.0" },  // a flow has no netmask
    template({ clientIp: "198.18.0.2" }),       // not the network under its netmask
    template({ netmask: "255.0.255.0", clientIp: "198.0.0.0" }),  // not contiguous
    template({ clientPort: 1 }),
    template({ state: 2 }),
    template({ flags: 8 }),
    template({ flags: 1 }),
    template({ localIp: "198.18.0.9" }),
    template({ protocol: 1 }),
    template({ realIp: "0.0.0.0" }),
    template({ vport: 0 }),
  ];
  const decoded = sync.decode(sync.encode(header, [...bad, template()], key), key);
  if (decoded.error !== "none") return t.fail(decoded.error);
  t.deepEqual(decoded.records.map((r) => r.valid), [...bad.map(() => false), true]);
});
