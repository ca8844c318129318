// The AF_XDP path's classification of a received frame's L4 checksum (native/packet/checksum_state.cc,
// exposed as packet.checksumStateOf): "partial" when the field holds the folded pseudo-header sum (the
// seed a CHECKSUM_PARTIAL sender leaves), with where the transmit side must finish it; "complete"
// otherwise. Frames are crafted by test/support/frames.ts, seeds computed by test/support/checksum.ts.

import test from "ava";
import { loadNative } from "../src/native";
import { IPPROTO_TCP, IPPROTO_UDP, checksumFieldOffset, pseudoHeaderSum } from "./support/checksum";
import {
  ETH_HEADER_LEN,
  GuardedFrame,
  buildFrame,
  get16,
  put16,
  readFrame,
  refreshIpChecksum,
  routerAlertOptions,
  toHex,
  type FrameSpec,
} from "./support/frames";
import { randomFrameSpec } from "./support/harness";
import { SeededRandom } from "./support/random";

type State = ReturnType<ReturnType<typeof loadNative>["packet"]["checksumStateOf"]>;

const CLIENT = "198.18.0.2";
const VIP = "198.18.0.100";
const PAYLOAD = Uint8Array.from({ length: 333 }, (_, i) => (i * 7 + 3) & 0xff);

/** Runs the classification on a guarded copy, checking that it neither writes nor throws. */
function stateOf(frame: Uint8Array): State {
  const guarded = new GuardedFrame(frame);
  const state = loadNative().packet.checksumStateOf(guarded.view);
  if (Buffer.compare(guarded.view, frame) !== 0 || !guarded.guardsIntact()) {
    throw new Error(`checksumStateOf wrote to memory: ${toHex(frame)}`);
  }
  return state;
}

function frame(spec: Partial<FrameSpec>): Uint8Array {
  return buildFrame({ src: CLIENT, dst: VIP, payload: PAYLOAD, ...spec });
}

/** The L4 checksum field and the seed a partial sender would put there, read back independently. */
function fieldAndSeed(f: Uint8Array): { field: number; seed: number; l4Offset: number; protocol: number } {
  const v = readFrame(f);
  return { field: v.l4Checksum, seed: pseudoHeaderSum(v.src, v.dst, v.protocol, v.l4Length), l4Offset: v.l4Offset, protocol: v.protocol };
}

for (const [name, protocol, offset] of [["TCP", IPPROTO_TCP, 16], ["UDP", IPPROTO_UDP, 6]] as const) {
  test(`${name}: a seeded frame is partial, finished at the L4 header (start 34) and field offset ${offset}`, (t) => {
    const f = frame({ protocol, checksum: "partial" });
    t.is(fieldAndSeed(f).field, fieldAndSeed(f).seed, "the crafted frame carries the seed");
    t.deepEqual(stateOf(f), { ok: true, checksum: "partial", start: ETH_HEADER_LEN + 20, offset });
  });

  test(`${name}: a complete checksum is complete, with no start or offset`, (t) => {
    const f = frame({ protocol, checksum: "complete" });
    t.not(fieldAndSeed(f).field, fieldAndSeed(f).seed);
    t.deepEqual(stateOf(f), { ok: true, checksum: "complete" });
  });

  test(`${name}: IP options move start past them (14 + IP header length)`, (t) => {
    for (const words of [1, 2, 5, 10]) {
      const f = frame({ protocol, checksum: "partial", ipOptions: routerAlertOptions(words) });
      t.deepEqual(stateOf(f), { ok: true, checksum: "partial", start: ETH_HEADER_LEN + 20 + 4 * words, offset }, `${words} option words`);
      t.deepEqual(stateOf(frame({ protocol, checksum: "complete", ipOptions: routerAlertOptions(words) })), { ok: true, checksum: "complete" });
    }
  });

  test(`${name}: a first fragment (MF set) is complete even when its field equals the seed`, (t) => {
    for (const flags of [0b001, 0b011]) {
      const f = frame({ protocol, checksum: "partial", flags });
      t.is(fieldAndSeed(f).field, fieldAndSeed(f).seed);
      t.deepEqual(stateOf(f), { ok: true, checksum: "complete" }, `flags ${flags}`);
    }
    // The same frame without MF (DF or no flags) is a whole datagram: partial.
    for (const flags of [0b000, 0b010]) {
      const state = stateOf(frame({ protocol, checksum: "partial", flags }));
      t.true(state.ok && state.checksum === "partial", `flags ${flags}: ${JSON.stringify(state)}`);
    }
  });

  test(`${name}: the seed is taken over the IP total length, not the frame length (Ethernet padding)`, (t) => {
    const small = frame({ protocol, checksum: "partial", payload: Uint8Array.of(1, 2), padTo: 60 });
    t.true(small.length === 60 && readFrame(small).totalLength < 46, "the frame carries padding");
    t.deepEqual(stateOf(small), { ok: true, checksum: "partial", start: 34, offset });
    // A field holding the seed of the padded length is not a seed of this frame.
    const wrong = small.slice();
    const v = readFrame(wrong);
    put16(wrong, v.l4Offset + checksumFieldOffset(protocol), pseudoHeaderSum(v.src, v.dst, protocol, 60 - ETH_HEADER_LEN - v.ihlBytes));
    t.deepEqual(stateOf(wrong), { ok: true, checksum: "complete" });
  });

  test(`${name}: a field one off the seed, or the seed of another protocol, is complete`, (t) => {
    const f = frame({ protocol, checksum: "partial" });
    const { seed, l4Offset } = fieldAndSeed(f);
    const at = l4Offset + checksumFieldOffset(protocol);
    for (const value of [(seed + 1) & 0xffff, (seed - 1) & 0xffff, seed ^ 0x8000, (~seed) & 0xffff]) {
      if (value === 0 && protocol === IPPROTO_UDP) continue; // 0 is "no checksum": tested below
      const g = f.slice();
      put16(g, at, value);
      t.deepEqual(stateOf(g), { ok: true, checksum: "complete" }, `field 0x${value.toString(16)} vs seed 0x${seed.toString(16)}`);
    }
    const other = f.slice();
    const v = readFrame(other);
    put16(other, at, pseudoHeaderSum(v.src, v.dst, protocol === IPPROTO_TCP ? IPPROTO_UDP : IPPROTO_TCP, v.l4Length));
    t.deepEqual(stateOf(other), { ok: true, checksum: "complete" });
  });

  test(`${name}: a seed that folds to 0xffff is recognised`, (t) => {
    // src 255.X.0.0, dst 0.0.0.0: the pseudo-header sum is 0xFFXX + protocol + L4 length; pick X so it
    // is exactly 0xffff, the ones' complement "negative zero" that a sloppy fold turns into 0.
    const l4Length = (protocol === IPPROTO_TCP ? 20 : 8) + 16;
    const low = 0xffff - protocol - l4Length - 0xff00;
    const src = `255.${low}.0.0`;
    const f = buildFrame({ src, dst: "0.0.0.0", protocol, payload: new Uint8Array(16).fill(0x5a), checksum: "partial" });
    t.is(pseudoHeaderSum(src, "0.0.0.0", protocol, l4Length), 0xffff);
    t.is(fieldAndSeed(f).field, 0xffff);
    t.deepEqual(stateOf(f), { ok: true, checksum: "partial", start: 34, offset });
  });
}

test("UDP: checksum 0 (none, RFC 768) is complete", (t) => {
  const f = frame({ protocol: IPPROTO_UDP, checksum: "none" });
  t.is(fieldAndSeed(f).field, 0);
  t.deepEqual(stateOf(f), { ok: true, checksum: "complete" });
  t.deepEqual(stateOf(frame({ protocol: IPPROTO_UDP, checksum: "none", ipOptions: routerAlertOptions(3) })), { ok: true, checksum: "complete" });
});

test("TCP: checksum field 0 is an ordinary value, complete unless it is the seed", (t) => {
  const f = frame({ protocol: IPPROTO_TCP, checksum: "complete" });
  put16(f, readFrame(f).l4Offset + 16, 0);
  t.deepEqual(stateOf(f), { ok: true, checksum: "complete" });
});

test("later fragments carry no L4 header: refused with a reason", (t) => {
  for (const [flags, fragmentOffset] of [[0b001, 185], [0b000, 185], [0b010, 1]] as const) {
    const state = stateOf(frame({ protocol: IPPROTO_UDP, checksum: "partial", flags, fragmentOffset }));
    t.false(state.ok, JSON.stringify(state));
    if (!state.ok) t.regex(state.reason, /fragment/);
  }
});

test("frames that are not IPv4 TCP/UDP are refused with a reason, not classified", (t) => {
  const base = frame({ protocol: IPPROTO_TCP, checksum: "partial" });
  const cases: Array<[string, Uint8Array, RegExp]> = [];
  for (const [label, ethertype] of [["IPv6", 0x86dd], ["ARP", 0x0806], ["VLAN-tagged", 0x8100]] as const) {
    const f = base.slice();
    put16(f, 12, ethertype);
    cases.push([label, f, /not an IPv4 frame/]);
  }
  const version6 = base.slice();
  version6[ETH_HEADER_LEN] = 0x65;
  cases.push(["IP version 6 under the IPv4 ethertype", version6, /not an IPv4 frame/]);
  cases.push(["ICMP", frame({ protocol: 1, payload: new Uint8Array(16) }), /neither TCP nor UDP/]);
  cases.push(["GRE", frame({ protocol: 47, payload: new Uint8Array(16) }), /neither TCP nor UDP/]);
  cases.push(["truncated Ethernet", base.slice(0, 20), /truncated/]);
  cases.push(["truncated TCP header", base.slice(0, ETH_HEADER_LEN + 20 + 10), /total length|truncated/]);
  cases.push(["empty", new Uint8Array(0), /truncated/]);
  const shortHeader = base.slice();
  shortHeader[ETH_HEADER_LEN] = 0x44;
  cases.push(["IHL 4", shortHeader, /header length/]);
  for (const [label, f, reason] of cases) {
    const state = stateOf(f);
    t.false(state.ok, `${label}: ${JSON.stringify(state)}`);
    if (!state.ok) t.regex(state.reason, reason, label);
  }
});

test("a non-Uint8Array argument throws a TypeError", (t) => {
  const packet = loadNative().packet as unknown as { checksumStateOf(frame: unknown): unknown };
  for (const bad of [undefined, "frame", 42, [0x45], new ArrayBuffer(64)]) {
    t.throws(() => packet.checksumStateOf(bad), { instanceOf: TypeError }, String(bad));
  }
});

test("random frames: every seeded frame is partial at its L4 header; every complete one is complete unless it equals the seed", (t) => {
  const seed = 0x5eed_c5a1;
  const rng = new SeededRandom(seed);
  const counts = { partial: 0, complete: 0, coincidences: 0, fragments: 0, noChecksum: 0 };
  const failures: string[] = [];
  for (let i = 0; i < 2000 && failures.length < 5; i++) {
    const crafted = rng.pick(["complete", "partial", "partial", "none"] as const);
    const spec = randomFrameSpec(rng, crafted, 1400);
    if (rng.chance(0.05)) spec.flags = 0b001; // a first fragment
    if (rng.chance(0.1)) spec.padTo = 60;
    const f = buildFrame(spec);
    const { field, seed: pseudo, l4Offset, protocol } = fieldAndSeed(f);
    const firstFragment = (spec.flags ?? 0b010) & 0b001;
    let expected: State;
    if (firstFragment || (protocol === IPPROTO_UDP && field === 0)) {
      expected = { ok: true, checksum: "complete" };
      if (firstFragment) counts.fragments++;
      else counts.noChecksum++;
    } else if (crafted === "partial" || field === pseudo) {
      // A complete checksum equal to the seed (1 in 65536) is read as partial: finishing it again from
      // the seed gives the same checksum, so that is harmless (checksum_state.h).
      expected = { ok: true, checksum: "partial", start: l4Offset, offset: checksumFieldOffset(protocol) };
      if (crafted === "partial") counts.partial++;
      else counts.coincidences++;
    } else {
      expected = { ok: true, checksum: "complete" };
      counts.complete++;
    }
    const actual = stateOf(f);
    if (JSON.stringify(actual) !== JSON.stringify(expected)) {
      failures.push(`case ${i} (seed 0x${seed.toString(16)}, ${crafted}): got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}; frame ${toHex(f)}`);
    }
  }
  t.deepEqual(failures, []);
  t.log(JSON.stringify(counts));
  // The generator really exercised every branch.
  t.true(counts.partial > 500 && counts.complete > 200 && counts.fragments > 20 && counts.noChecksum > 100, JSON.stringify(counts));
});

test("random seeds of random frames: the seed check is exact over the whole address range", (t) => {
  // The seeded field is the only thing checked: alter the frame's addresses after crafting and the
  // (now stale) seed must no longer count, unless the new addresses happen to have the same sum.
  const rng = new SeededRandom(0xc0ffee);
  let stale = 0;
  for (let i = 0; i < 500; i++) {
    const f = buildFrame(randomFrameSpec(rng, "partial", 200));
    const v = readFrame(f);
    const newSrc = rng.ipv4();
    f.set(newSrc.split(".").map(Number), ETH_HEADER_LEN + 12);
    refreshIpChecksum(f);
    const same = pseudoHeaderSum(newSrc, v.dst, v.protocol, v.l4Length) === get16(f, v.l4Offset + checksumFieldOffset(v.protocol));
    const state = stateOf(f);
    t.is(state.ok && state.checksum, same ? "partial" : "complete", `case ${i}: ${toHex(f)}`);
    if (!same) stale++;
  }
  t.true(stale > 450);
});
