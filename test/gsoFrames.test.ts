// GSO/GRO super-frames (up to IP total length 65535, e.g. 45 x 1448 B) through the native rewrites:
// nothing truncated, payload untouched, checksums exact. See docs/architecture.md, "Checksums".

import test from "ava";
import { IPPROTO_TCP, IPPROTO_UDP } from "./support/checksum";
import { ETH_HEADER_LEN, buildFrame, readFrame, routerAlertOptions, type FrameSpec } from "./support/frames";
import { runParse, runRewrite, timestampOption } from "./support/harness";
import { loadPacketFunctions } from "./support/nativePacket";
import type { Checksum, Endpoint, PacketFunctions, Side } from "./support/packetContract";
import { SeededRandom } from "./support/random";
import { describeCase, rewriteProblems } from "./support/rewriteCheck";

const SIDES: readonly Side[] = ["destination", "source"];
const MSS = 1448;

let loaded: PacketFunctions | undefined;
function packet(): PacketFunctions {
  loaded ??= loadPacketFunctions();
  return loaded;
}

function problemsOf(before: Uint8Array, side: Side, target: Endpoint, mode: Checksum): string[] {
  const run = runRewrite(packet(), before, side, target, mode);
  // Hex of a 64 KB frame is useless in a message: name the shape instead.
  const v = readFrame(before);
  const head = `${side}/${mode} ${v.src}:${v.sport} > ${v.dst}:${v.dport} proto ${v.protocol} IHL ${v.ihlBytes / 4} total ${v.totalLength} frame ${before.length} B -> ${target.ip}:${target.port}`;
  if (run.thrown !== undefined) return [`${head}: threw ${String(run.thrown)}`];
  if (!run.guardsIntact) return [`${head}: wrote outside the frame`];
  if (run.result?.ok !== true) return [`${head}: refused: ${JSON.stringify(run.result)}`];
  return rewriteProblems(before, run.after, side, target, mode).map((p) => `${head}: ${p}`);
}

/** A TCP super-frame as GRO/TSO hand it over: timestamps option, `segments` x MSS bytes of payload. */
function tcpSuperFrame(rng: SeededRandom, payloadLength: number, mode: Checksum, extra: Partial<FrameSpec> = {}): Uint8Array {
  return buildFrame({
    src: "198.18.0.10",
    dst: "198.18.100.1",
    protocol: IPPROTO_TCP,
    sport: 43210,
    dport: 80,
    ttl: 64,
    tcpOptions: timestampOption(rng),
    payload: rng.bytes(payloadLength),
    checksum: mode,
    ...extra,
  });
}

test("45 x 1448 B TCP super-frame, partial: both rewrites exact, nothing truncated, payload untouched", (t) => {
  const rng = new SeededRandom(1);
  const before = tcpSuperFrame(rng, 45 * MSS, "partial");
  t.is(readFrame(before).totalLength, 20 + 32 + 45 * MSS);
  for (const side of SIDES) {
    t.deepEqual(problemsOf(before, side, { ip: "198.18.200.3", port: 8080 }, "partial"), []);
  }
});

test("largest IPv4 packet (total length 65535) as TCP and UDP, partial and complete, both directions", (t) => {
  const rng = new SeededRandom(2);
  for (const protocol of [IPPROTO_TCP, IPPROTO_UDP]) {
    for (const mode of ["partial", "complete"] as const) {
      const payload = rng.bytes(65535 - 20 - (protocol === IPPROTO_TCP ? 20 : 8));
      const before = buildFrame({ src: "198.18.7.7", dst: "198.19.8.8", protocol, sport: 65535, dport: 1, payload, checksum: mode });
      t.is(readFrame(before).totalLength, 65535);
      t.is(before.length, ETH_HEADER_LEN + 65535);
      for (const side of SIDES) {
        t.deepEqual(problemsOf(before, side, { ip: "198.18.255.254", port: 32768 }, mode), []);
      }
    }
  }
});

test("super-frame with maximal IP options (IHL 15) and TCP options", (t) => {
  const rng = new SeededRandom(3);
  const payloadLength = 65535 - 60 - 32;
  for (const mode of ["partial", "complete"] as const) {
    const before = tcpSuperFrame(rng, payloadLength, mode, { ipOptions: routerAlertOptions(10) });
    t.is(readFrame(before).totalLength, 65535);
    for (const side of SIDES) t.deepEqual(problemsOf(before, side, { ip: "198.18.1.2", port: 443 }, mode), []);
  }
});

test("parse reports the full L4 length of a super-frame (no 16-bit or MTU truncation)", (t) => {
  const rng = new SeededRandom(4);
  const before = tcpSuperFrame(rng, 45 * MSS, "partial");
  t.like(runParse(packet(), before).result, { ok: true, l4Offset: ETH_HEADER_LEN + 20, l4Length: 32 + 45 * MSS, sport: 43210, dport: 80 });
  const max = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol: IPPROTO_UDP, payload: new Uint8Array(65535 - 28) });
  t.like(runParse(packet(), max).result, { ok: true, l4Length: 65515 });
});

test("a super-frame in a larger ring slot: bytes past the IP total length are ignored and untouched", (t) => {
  const rng = new SeededRandom(5);
  const packetOnly = tcpSuperFrame(rng, 44 * MSS + 17, "partial");
  const slot = new Uint8Array(68 * 1024);
  slot.set(packetOnly, 0);
  slot.fill(0xc3, packetOnly.length); // leftovers from a previous, longer frame
  for (const mode of ["partial", "complete"] as const) {
    const before = slot.slice();
    if (mode === "complete") before.set(tcpSuperFrame(new SeededRandom(5), 44 * MSS + 17, "complete"), 0);
    for (const side of SIDES) t.deepEqual(problemsOf(before, side, { ip: "198.18.9.9", port: 9 }, mode), []);
  }
  t.like(runParse(packet(), slot).result, { ok: true, l4Length: 32 + 44 * MSS + 17 });
});

test("UDP GRO super-frame (64 KB), partial and with checksum 0", (t) => {
  const rng = new SeededRandom(6);
  for (const checksum of ["partial", "none"] as const) {
    const before = buildFrame({ src: "198.18.3.3", dst: "198.18.4.4", protocol: IPPROTO_UDP, sport: 4433, dport: 443, payload: rng.bytes(45 * 1400), checksum });
    for (const side of SIDES) t.deepEqual(problemsOf(before, side, { ip: "198.19.1.1", port: 1443 }, "partial"), []);
  }
});

test("property: 40 random super-frame sizes between one MSS and 65535, random addresses and ports", (t) => {
  const seed = 7;
  const rng = new SeededRandom(seed);
  for (let i = 0; i < 40; i++) {
    const mode = rng.pick(["partial", "complete"] as const);
    const protocol = rng.pick([IPPROTO_TCP, IPPROTO_UDP]);
    const headers = 20 + (protocol === IPPROTO_TCP ? 32 : 8);
    const spec: FrameSpec = {
      src: rng.ipv4(), dst: rng.ipv4(), protocol, sport: rng.port(), dport: rng.port(), ttl: rng.int(2, 255),
      payload: rng.bytes(rng.int(MSS + 1, 65535 - headers)), checksum: mode,
    };
    if (protocol === IPPROTO_TCP) spec.tcpOptions = timestampOption(rng);
    const before = buildFrame(spec);
    const side = rng.pick(SIDES);
    const target = { ip: rng.ipv4(), port: rng.port() };
    const problems = problemsOf(before, side, target, mode);
    if (problems.length > 0) return t.fail(`seed ${seed} case ${i}: ${problems.join("; ")}`);
  }
  t.pass();
});

test("a truncated super-frame (one byte short of its total length) is refused untouched", (t) => {
  const rng = new SeededRandom(8);
  const full = tcpSuperFrame(rng, 45 * MSS, "partial");
  const cut = full.slice(0, full.length - 1);
  for (const side of SIDES) {
    const run = runRewrite(packet(), cut, side, { ip: "198.18.1.1", port: 1 }, "partial");
    t.like(run.result, { ok: false }, describeCase(cut.subarray(0, 80), side, { ip: "198.18.1.1", port: 1 }, "partial"));
    t.true(Buffer.compare(run.after, cut) === 0 && run.guardsIntact);
  }
});
