// The flow sync's datagram (native/sync/sync_message.h): round trip, and every kind of bad datagram
// refused with its reason, never accepted and never a crash.
import test from "ava";
import { randomBytes } from "node:crypto";
import { loadNative, type SyncFlowRecord } from "../src/native";

const native = loadNative();
const sync = native.syncMessage;
const key = new Uint8Array(randomBytes(32));

const record = (i: number): SyncFlowRecord => ({
  protocol: 6, state: 2, flags: 4, clientIp: "198.18.0.2", clientPort: 40000 + i, vip: "198.18.0.100", vport: 80,
  realIp: "198.18.1.11", realPort: 8080, localIp: "0.0.0.0", localPort: 0,
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

test("every flipped bit is refused (the MAC covers header and records)", (t) => {
  const datagram = sync.encode(header, [record(1), record(2)], key);
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
  const datagram = sync.encode(header, [record(1)], key);
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
