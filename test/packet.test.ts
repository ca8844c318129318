// Unit tests of natlb's native packet functions (parse, rewriteDestination, rewriteSource) against
// checksums computed independently from scratch (test/support/checksum.ts).

import test from "ava";
import {
  IPPROTO_TCP,
  IPPROTO_UDP,
  fold,
  internetChecksum,
  ipv4Bytes,
  ipv4HeaderChecksum,
  onesAdd,
  onesComplementSum,
  pseudoHeaderSum,
  transportChecksum,
  transportVerifies,
} from "./support/checksum";
import {
  ETHERNET_MIN_FRAME,
  ETH_HEADER_LEN,
  TCP_HEADER_LEN,
  UDP_HEADER_LEN,
  buildFrame,
  fromHex,
  get16,
  readFrame,
  refreshIpChecksum,
  routerAlertOptions,
  segmentOf,
  setTotalLength,
  toHex,
  type FrameSpec,
} from "./support/frames";
import {
  parseRefusalProblems,
  randomFrame,
  randomFrameSpec,
  refusalProblems,
  runParse,
  runRewrite,
  timestampOption,
} from "./support/harness";
import { KERNEL_TCP_SYN_PARTIAL, KERNEL_UDP_COMPLETE, KERNEL_UDP_PARTIAL } from "./support/kernelVectors";
import { loadPacketFunctions } from "./support/nativePacket";
import type { Checksum, Endpoint, PacketFunctions, Side } from "./support/packetContract";
import { SeededRandom } from "./support/random";
import { describeCase, referenceRewrite, rewriteProblems } from "./support/rewriteCheck";

const SIDES: readonly Side[] = ["destination", "source"];
const MODES: readonly Checksum[] = ["complete", "partial"];
const PROTOCOLS = [IPPROTO_TCP, IPPROTO_UDP] as const;
const protoName = (p: number): string => (p === IPPROTO_TCP ? "tcp" : "udp");

let loaded: PacketFunctions | undefined;
/** Loaded on first use so the reference self-tests run (and fail loudly) even without the addon. */
function packet(): PacketFunctions {
  loaded ??= loadPacketFunctions();
  return loaded;
}

/** Rewrites a copy of `before` natively and returns every problem found (empty = correct). */
function nativeRewriteProblems(before: Uint8Array, side: Side, target: Endpoint, mode: Checksum): string[] {
  const run = runRewrite(packet(), before, side, target, mode);
  const head = describeCase(before, side, target, mode);
  if (run.thrown !== undefined) return [`${head}: threw ${String(run.thrown)}`];
  if (!run.guardsIntact) return [`${head}: wrote outside the frame`];
  if (run.result === undefined || run.result.ok !== true) return [`${head}: refused: ${JSON.stringify(run.result)}`];
  return rewriteProblems(before, run.after, side, target, mode).map((p) => `${head}: ${p}`);
}

// ---------------------------------------------------------------------------------------------
// The reference code itself (no addon needed): if these fail, nothing else below means anything.

test("reference: RFC 1071 worked example sums to 0xddf2, odd lengths pad with a zero byte", (t) => {
  t.is(onesComplementSum(Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7)), 0xddf2);
  t.is(onesComplementSum(Uint8Array.of(0x12, 0x34, 0x56)), 0x1234 + 0x5600);
  t.is(onesComplementSum(Uint8Array.of(0xff, 0xff, 0x00, 0x01)), 0x0001); // end-around carry
  t.is(fold(0x1_fffe), 0xffff);
  t.is(onesAdd(0xffff, 0x0001), 0x0001);
  t.is(internetChecksum(new Uint8Array(4)), 0xffff);
});

test("reference: IPv4 header checksum of a textbook header is 0xb861", (t) => {
  const h = fromHex("450000730000400040110000c0a80001c0a800c7");
  t.is(ipv4HeaderChecksum(h, 0, 20), 0xb861);
});

test("reference: checksums agree with frames the Linux kernel produced", (t) => {
  const udp = fromHex(KERNEL_UDP_COMPLETE);
  const v = readFrame(udp);
  t.is(ipv4HeaderChecksum(udp, v.l3Offset, v.ihlBytes), v.ipChecksum);
  t.is(transportChecksum(v.src, v.dst, IPPROTO_UDP, segmentOf(udp)), 0xb48f);
  t.true(transportVerifies(v.src, v.dst, IPPROTO_UDP, segmentOf(udp)));

  for (const hex of [KERNEL_UDP_PARTIAL, KERNEL_TCP_SYN_PARTIAL]) {
    const f = fromHex(hex);
    const p = readFrame(f);
    t.is(pseudoHeaderSum(p.src, p.dst, p.protocol, p.l4Length), p.l4Checksum, `seed of ${hex}`);
    t.is(ipv4HeaderChecksum(f, p.l3Offset, p.ihlBytes), p.ipChecksum);
  }
  const syn = fromHex(KERNEL_TCP_SYN_PARTIAL);
  t.is(transportChecksum("198.18.50.1", "198.18.50.2", IPPROTO_TCP, segmentOf(syn)), 0x40eb); // tcpdump's "-> 0x40eb"
});

test("reference: ipv4Bytes parses dotted quads and rejects malformed text", (t) => {
  t.deepEqual([...ipv4Bytes("198.18.0.255")], [198, 18, 0, 255]);
  for (const bad of ["256.1.1.1", "1.2.3", "a.b.c.d", "", "1.2.3.4.5"]) t.throws(() => ipv4Bytes(bad));
});

test("reference: crafted frames carry valid checksums in every mode, with options and padding", (t) => {
  const rng = new SeededRandom(11);
  for (let i = 0; i < 300; i++) {
    const spec = randomFrameSpec(rng, rng.pick(["complete", "partial"] as const));
    if (rng.chance(0.3)) spec.padTo = ETHERNET_MIN_FRAME;
    const f = buildFrame(spec);
    const v = readFrame(f);
    if (ipv4HeaderChecksum(f, v.l3Offset, v.ihlBytes) !== v.ipChecksum) return t.fail(`bad IP checksum ${toHex(f)}`);
    const ok =
      spec.checksum === "complete"
        ? transportVerifies(v.src, v.dst, v.protocol, segmentOf(f)) && v.l4Checksum !== 0
        : v.l4Checksum === pseudoHeaderSum(v.src, v.dst, v.protocol, v.l4Length);
    if (!ok) return t.fail(`bad L4 checksum (${spec.checksum}) ${toHex(f)}`);
  }
  t.pass();
});

test("reference: the checker accepts a from-scratch rewrite and catches every kind of fault", (t) => {
  const rng = new SeededRandom(12);
  for (const protocol of PROTOCOLS) {
    for (const mode of MODES) {
      for (const side of SIDES) {
        const spec = randomFrameSpec(rng, mode, 200);
        spec.protocol = protocol;
        spec.ipOptions = routerAlertOptions(2);
        const before = buildFrame(spec);
        const target = { ip: "198.18.7.9", port: 0x1f90 };
        const good = referenceRewrite(before, side, target, mode);
        t.deepEqual(rewriteProblems(before, good, side, target, mode), [], `${protoName(protocol)}/${mode}/${side}`);

        const v = readFrame(good);
        const csumAt = v.l4Offset + (protocol === IPPROTO_TCP ? 16 : 6);
        const portAt = side === "destination" ? v.l4Offset + 2 : v.l4Offset;
        const faults: Record<string, (f: Uint8Array) => void> = {
          "ttl not decremented": (f) => void (f[v.l3Offset + 8] = f[v.l3Offset + 8]! + 1),
          "IP checksum off by one": (f) => void (f[v.l3Offset + 11] = f[v.l3Offset + 11]! ^ 1),
          "L4 checksum off by one": (f) => void (f[csumAt + 1] = f[csumAt + 1]! ^ 1),
          "port folded into the seed / port delta missing": (f) => {
            const delta = onesAdd(~get16(before, portAt) & 0xffff, get16(f, portAt));
            const c = get16(f, csumAt);
            const faulty = mode === "partial" ? onesAdd(c, delta) : ~onesAdd(~c & 0xffff, ~delta & 0xffff) & 0xffff;
            f[csumAt] = faulty >>> 8;
            f[csumAt + 1] = faulty & 0xff;
          },
          "wrong address": (f) => void (f[side === "destination" ? v.l3Offset + 19 : v.l3Offset + 15] ^= 0x10),
          "wrong port": (f) => void (f[portAt + 1] ^= 0x01),
          "payload byte changed": (f) => void (f[f.length - 1] ^= 0x80),
          "other side's port changed": (f) => void (f[side === "destination" ? v.l4Offset + 1 : v.l4Offset + 3] ^= 1),
        };
        for (const [name, fault] of Object.entries(faults)) {
          const bad = good.slice();
          fault(bad);
          if (Buffer.compare(bad, good) === 0) continue; // e.g. empty payload: nothing to change
          t.notDeepEqual(rewriteProblems(before, bad, side, target, mode), [], `${name} not caught (${protoName(protocol)}/${mode}/${side})`);
        }
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------
// parse

function expectedParse(f: Uint8Array): Record<string, unknown> {
  const v = readFrame(f);
  return {
    ok: true,
    protocol: v.protocol,
    src: v.src,
    dst: v.dst,
    sport: v.sport,
    dport: v.dport,
    ttl: v.ttl,
    l3Offset: v.l3Offset,
    l4Offset: v.l4Offset,
    l4Length: v.l4Length,
  };
}

test("parse returns the tuple, TTL and offsets of crafted TCP and UDP frames, with and without IP options", (t) => {
  for (const protocol of PROTOCOLS) {
    for (const words of [0, 1, 3, 10]) {
      const spec: FrameSpec = {
        src: "198.18.0.10",
        dst: "198.19.255.1",
        protocol,
        sport: 51234,
        dport: 443,
        ttl: 17,
        payload: new Uint8Array(37).fill(7),
      };
      if (words > 0) spec.ipOptions = routerAlertOptions(words);
      const f = buildFrame(spec);
      const run = runParse(packet(), f);
      t.is(run.thrown, undefined);
      t.true(run.unchanged && run.guardsIntact, "parse must not write");
      const header = protocol === IPPROTO_TCP ? TCP_HEADER_LEN : UDP_HEADER_LEN;
      t.like(run.result, {
        ok: true, protocol, src: "198.18.0.10", dst: "198.19.255.1", sport: 51234, dport: 443, ttl: 17,
        l3Offset: 14, l4Offset: 14 + 20 + 4 * words, l4Length: header + 37,
      }, `${protoName(protocol)} with ${words} option words: ${toHex(f)}`);
    }
  }
});

test("parse ignores Ethernet padding past the IP total length (60-byte minimum frame)", (t) => {
  for (const protocol of PROTOCOLS) {
    const f = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol, sport: 7, dport: 9, payload: Uint8Array.of(1, 2), padTo: ETHERNET_MIN_FRAME });
    f.fill(0xee, ETH_HEADER_LEN + readFrame(f).totalLength); // non-zero padding, as some NICs leave it
    t.is(f.length, ETHERNET_MIN_FRAME);
    const header = protocol === IPPROTO_TCP ? TCP_HEADER_LEN : UDP_HEADER_LEN;
    t.like(runParse(packet(), f).result, { ok: true, l4Length: header + 2, sport: 7, dport: 9 }, toHex(f));
  }
});

test("parse reads frames the Linux kernel produced", (t) => {
  for (const hex of [KERNEL_UDP_COMPLETE, KERNEL_UDP_PARTIAL, KERNEL_TCP_SYN_PARTIAL]) {
    const f = fromHex(hex);
    t.like(runParse(packet(), f).result, expectedParse(f), hex);
  }
});

test("parse reports TTL 0 and 1 as they are (refusing them is the rewrite's job)", (t) => {
  for (const ttl of [0, 1, 255]) {
    const f = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", ttl });
    t.like(runParse(packet(), f).result, { ok: true, ttl });
  }
});

test("parse of random frames matches an independent reading (seeded)", (t) => {
  const rng = new SeededRandom(21);
  for (let i = 0; i < 1000; i++) {
    const spec = randomFrameSpec(rng, rng.pick(["complete", "partial"] as const), 600);
    if (rng.chance(0.2)) spec.padTo = rng.int(0, 1600);
    const f = buildFrame(spec);
    const run = runParse(packet(), f);
    const want = expectedParse(f);
    const got = run.result as Record<string, unknown> | undefined;
    const mismatch = Object.keys(want).filter((k) => got?.[k] !== want[k]);
    if (run.thrown !== undefined || mismatch.length > 0 || !run.unchanged) {
      return t.fail(`case ${i} (seed 21): got ${JSON.stringify(got)} want ${JSON.stringify(want)} frame ${toHex(f)}`);
    }
  }
  t.pass();
});

// ---------------------------------------------------------------------------------------------
// rewrites: fixed cases

test("rewriteDestination sets dst ip/port, decrements TTL, keeps every checksum valid (tcp/udp x complete/partial)", (t) => {
  for (const protocol of PROTOCOLS) {
    for (const mode of MODES) {
      const before = buildFrame({
        src: "198.18.0.10", dst: "198.18.100.1", protocol, sport: 40321, dport: 80, ttl: 64,
        payload: new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), checksum: mode,
      });
      t.deepEqual(nativeRewriteProblems(before, "destination", { ip: "198.18.200.3", port: 8080 }, mode), []);
    }
  }
});

test("rewriteSource sets src ip/port, decrements TTL, keeps every checksum valid (tcp/udp x complete/partial)", (t) => {
  for (const protocol of PROTOCOLS) {
    for (const mode of MODES) {
      const before = buildFrame({
        src: "198.18.200.3", dst: "198.18.0.10", protocol, sport: 8080, dport: 40321, ttl: 63,
        payload: new TextEncoder().encode("HTTP/1.1 200 OK\r\n\r\nodd"), checksum: mode,
      });
      t.deepEqual(nativeRewriteProblems(before, "source", { ip: "198.18.100.1", port: 80 }, mode), []);
    }
  }
});

test("rewrites are correct with IP options, every IHL from 6 to 15", (t) => {
  for (let words = 1; words <= 10; words++) {
    for (const protocol of PROTOCOLS) {
      for (const mode of MODES) {
        for (const side of SIDES) {
          const before = buildFrame({
            src: "198.18.3.4", dst: "198.19.5.6", protocol, sport: 1234, dport: 5678, ttl: 30,
            ipOptions: routerAlertOptions(words), payload: new Uint8Array(101).fill(0x5a), checksum: mode,
          });
          t.deepEqual(nativeRewriteProblems(before, side, { ip: "198.18.250.251", port: 65535 }, mode), [], `IHL ${5 + words}`);
        }
      }
    }
  }
});

test("rewrites of frames the Linux kernel produced verify", (t) => {
  const cases: Array<[string, Checksum]> = [
    [KERNEL_UDP_COMPLETE, "complete"],
    [KERNEL_UDP_PARTIAL, "partial"],
    [KERNEL_TCP_SYN_PARTIAL, "partial"],
  ];
  for (const [hex, mode] of cases) {
    for (const side of SIDES) {
      t.deepEqual(nativeRewriteProblems(fromHex(hex), side, { ip: "198.18.60.70", port: 31337 }, mode), []);
    }
  }
});

test("TTL 2 becomes 1 and 255 becomes 254; TTL 1 and 0 are refused with a reason naming ttl, frame unchanged", (t) => {
  for (const protocol of PROTOCOLS) {
    for (const mode of MODES) {
      for (const side of SIDES) {
        for (const ttl of [2, 255]) {
          const before = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol, ttl, checksum: mode, payload: Uint8Array.of(1) });
          t.deepEqual(nativeRewriteProblems(before, side, { ip: "198.18.3.3", port: 99 }, mode), []);
        }
      }
    }
    for (const ttl of [0, 1]) {
      const f = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol, ttl, payload: Uint8Array.of(1) });
      t.deepEqual(refusalProblems(packet(), f, /ttl/i), [], `ttl ${ttl}`);
    }
  }
});

test("partial: only the address delta enters the seed; a port-only rewrite leaves the seed untouched", (t) => {
  for (const protocol of PROTOCOLS) {
    for (const side of SIDES) {
      const before = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol, sport: 1000, dport: 2000, checksum: "partial", payload: new Uint8Array(10) });
      const sameIp = side === "destination" ? "198.18.2.2" : "198.18.1.1";
      const run = runRewrite(packet(), before, side, { ip: sameIp, port: 0xfedc }, "partial");
      t.like(run.result, { ok: true });
      const v = readFrame(run.after);
      t.is(v.l4Checksum, readFrame(before).l4Checksum, `${protoName(protocol)}/${side}: seed changed on a port-only rewrite`);
      t.is(side === "destination" ? v.dport : v.sport, 0xfedc);
    }
  }
});

test("complete: a port-only rewrite and a no-op rewrite (same ip and port) still verify", (t) => {
  for (const protocol of PROTOCOLS) {
    for (const side of SIDES) {
      const before = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol, sport: 1000, dport: 2000, payload: new Uint8Array(10).fill(3) });
      const sameIp = side === "destination" ? "198.18.2.2" : "198.18.1.1";
      const samePort = side === "destination" ? 2000 : 1000;
      t.deepEqual(nativeRewriteProblems(before, side, { ip: sameIp, port: 0x0001 }, "complete"), []);
      t.deepEqual(nativeRewriteProblems(before, side, { ip: sameIp, port: samePort }, "complete"), []);
    }
  }
});

/** The low address word that makes `partialSum + hi + lo` fold to exactly 0xFFFF. */
function loWordCompleting(partialSum: number, hi: number): number {
  const s = onesAdd(partialSum, hi);
  return s === 0xffff ? 0 : 0xffff - s;
}

test("partial: a seed that must be exactly 0xFFFF comes out as 0xFFFF (Linux's representation), before and after", (t) => {
  for (const protocol of PROTOCOLS) {
    const src = "198.18.1.1";
    const l4Length = (protocol === IPPROTO_TCP ? TCP_HEADER_LEN : UDP_HEADER_LEN) + 6;
    // dst = 198.18.x.y with x.y chosen so that the pseudo-header sums to 0xFFFF.
    const partial = onesAdd(0xc612, 0x0101, protocol, l4Length);
    const lo = loWordCompleting(partial, 0xc612);
    const seedFfffDst = `198.18.${lo >>> 8}.${lo & 0xff}`;
    t.is(pseudoHeaderSum(src, seedFfffDst, protocol, l4Length), 0xffff);

    const toFfff = buildFrame({ src, dst: "198.18.9.9", protocol, checksum: "partial", payload: new Uint8Array(6) });
    t.deepEqual(nativeRewriteProblems(toFfff, "destination", { ip: seedFfffDst, port: 1 }, "partial"), []);
    const fromFfff = buildFrame({ src, dst: seedFfffDst, protocol, checksum: "partial", payload: new Uint8Array(6) });
    t.is(readFrame(fromFfff).l4Checksum, 0xffff);
    t.deepEqual(nativeRewriteProblems(fromFfff, "destination", { ip: "198.18.9.9", port: 1 }, "partial"), []);
    t.deepEqual(nativeRewriteProblems(fromFfff, "source", { ip: "198.19.0.0", port: 1 }, "partial"), []);
  }
});

test("an IPv4 header checksum that computes to 0x0000 after the rewrite is 0x0000, not -0 (RFC 1624 section 3)", (t) => {
  const rng = new SeededRandom(33);
  for (let i = 0; i < 16; i++) {
    const side = SIDES[i % 2]!;
    const mode = MODES[(i >> 1) % 2]!;
    const target = { ip: rng.ipv4(), port: rng.port() };
    const spec: FrameSpec = { src: rng.ipv4(), dst: rng.ipv4(), protocol: rng.pick(PROTOCOLS), ttl: rng.int(2, 255), identification: 0, checksum: mode, payload: rng.bytes(9) };
    // Pick the identification that makes the rewritten header sum to exactly 0xFFFF (checksum 0).
    const probe = referenceRewrite(buildFrame(spec), side, target, mode);
    probe[ETH_HEADER_LEN + 10] = probe[ETH_HEADER_LEN + 11] = 0;
    const s = onesComplementSum(probe, ETH_HEADER_LEN, ETH_HEADER_LEN + 20);
    spec.identification = s === 0xffff ? 0 : 0xffff - s;
    const before = buildFrame(spec);
    t.is(readFrame(referenceRewrite(before, side, target, mode)).ipChecksum, 0, "crafting failed");
    t.deepEqual(nativeRewriteProblems(before, side, target, mode), []);
  }
});

test("UDP checksum 0 (no checksum) stays 0 in both modes and both directions", (t) => {
  for (const mode of MODES) {
    for (const side of SIDES) {
      const before = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol: IPPROTO_UDP, checksum: "none", payload: new Uint8Array(33).fill(0x42) });
      t.is(readFrame(before).l4Checksum, 0);
      const problems = nativeRewriteProblems(before, side, { ip: "198.18.77.1", port: 5000 }, mode);
      t.deepEqual(problems, [], `${mode}/${side}`);
    }
  }
});

/** A UDP frame whose complete checksum, after `side` is rewritten to `target`, computes to exactly 0. */
function udpFrameWhoseRewriteSumsToZero(rng: SeededRandom, side: Side, target: Endpoint): Uint8Array {
  const payload = rng.bytes(2 * rng.int(1, 40)); // even, so the last word is a free variable
  const spec: FrameSpec = { src: rng.ipv4(), dst: rng.ipv4(), protocol: IPPROTO_UDP, sport: rng.port(), dport: rng.port(), ttl: 64, payload };
  const after: FrameSpec = side === "destination" ? { ...spec, dst: target.ip, dport: target.port } : { ...spec, src: target.ip, sport: target.port };
  payload[payload.length - 2] = payload[payload.length - 1] = 0;
  const zeroed = buildFrame({ ...after, checksum: "none" });
  const s = onesComplementSum(segmentOf(zeroed), 0, segmentOf(zeroed).length, pseudoHeaderSum(after.src, after.dst, IPPROTO_UDP, segmentOf(zeroed).length));
  const w = s === 0xffff ? 0 : 0xffff - s;
  payload[payload.length - 2] = w >>> 8;
  payload[payload.length - 1] = w & 0xff;
  return buildFrame({ ...spec, checksum: "complete" });
}

test("UDP complete: a checksum that recomputes to 0 after the rewrite is sent as 0xFFFF (RFC 768)", (t) => {
  const rng = new SeededRandom(31);
  for (let i = 0; i < 64; i++) {
    const side = SIDES[i % 2]!;
    const target = { ip: rng.ipv4(), port: rng.port() };
    const before = udpFrameWhoseRewriteSumsToZero(rng, side, target);
    const expectedAfter = referenceRewrite(before, side, target, "complete");
    const a = readFrame(expectedAfter);
    t.is(transportChecksum(a.src, a.dst, IPPROTO_UDP, segmentOf(expectedAfter)), 0, "crafting failed"); // the case is real
    const run = runRewrite(packet(), before, side, target, "complete");
    t.like(run.result, { ok: true });
    t.is(readFrame(run.after).l4Checksum, 0xffff, describeCase(before, side, target, "complete"));
    t.deepEqual(rewriteProblems(before, run.after, side, target, "complete"), []);
  }
});

test("UDP complete: a frame carrying 0xFFFF (computed zero) is treated as a real checksum, not as none", (t) => {
  const rng = new SeededRandom(32);
  for (let i = 0; i < 32; i++) {
    // Craft a frame whose own checksum computes to 0 (so it carries 0xFFFF), then move it elsewhere.
    const probe: Endpoint = { ip: rng.ipv4(), port: rng.port() };
    const seedFrame = udpFrameWhoseRewriteSumsToZero(rng, "destination", probe);
    const before = referenceRewrite(seedFrame, "destination", probe, "complete");
    before[ETH_HEADER_LEN + 8] = 64;
    refreshIpChecksum(before);
    t.is(readFrame(before).l4Checksum, 0xffff, "crafting failed");
    const side = SIDES[i % 2]!;
    t.deepEqual(nativeRewriteProblems(before, side, { ip: rng.ipv4(), port: rng.port() }, "complete"), []);
  }
});

test("padding past the IP total length is neither summed nor touched by a rewrite", (t) => {
  for (const protocol of PROTOCOLS) {
    for (const mode of MODES) {
      for (const side of SIDES) {
        const before = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol, sport: 7, dport: 9, payload: Uint8Array.of(0xab), padTo: ETHERNET_MIN_FRAME, checksum: mode });
        before.fill(0xee, ETH_HEADER_LEN + readFrame(before).totalLength);
        t.deepEqual(nativeRewriteProblems(before, side, { ip: "198.19.200.100", port: 65000 }, mode), []);
      }
    }
  }
});

test("a Node Buffer from the shared pool (non-zero byteOffset) is rewritten in place", (t) => {
  const frame = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", payload: new Uint8Array(20).fill(1) });
  const buf = Buffer.from(frame);
  const res = packet().rewriteDestination(buf, { ip: "198.18.4.4", port: 4444 }, "complete");
  t.like(res, { ok: true });
  t.deepEqual(rewriteProblems(frame, new Uint8Array(buf), "destination", { ip: "198.18.4.4", port: 4444 }, "complete"), []);
});

// ---------------------------------------------------------------------------------------------
// rewrites: property tests over random frames (seeded, bounded)

/** The problems of the smallest variant of a failing spec that still fails (fewer options, shorter payload). */
function shrink(spec: FrameSpec, side: Side, target: Endpoint, mode: Checksum): string[] {
  let best = spec;
  let bestProblems = nativeRewriteProblems(buildFrame(spec), side, target, mode);
  const attempt = (candidate: FrameSpec): void => {
    const problems = nativeRewriteProblems(buildFrame(candidate), side, target, mode);
    if (problems.length > 0) {
      best = candidate;
      bestProblems = problems;
    }
  };
  const { ipOptions: _ip, ...noIpOptions } = best;
  if (best.ipOptions) attempt(noIpOptions);
  const { tcpOptions: _tcp, ...noTcpOptions } = best;
  if (best.tcpOptions) attempt(noTcpOptions);
  const payload = best.payload ?? new Uint8Array(0);
  for (let len = 0; len < Math.min(payload.length, 64); len++) {
    const before = bestProblems;
    attempt({ ...best, payload: payload.subarray(0, len) });
    if (bestProblems !== before) break;
  }
  return bestProblems;
}

for (const side of SIDES) {
  for (const mode of MODES) {
    test(`property: ${side} rewrite, ${mode} checksums, 600 random frames (any addresses, ports, options, sizes)`, (t) => {
      const seed = (side === "destination" ? 100 : 200) + (mode === "complete" ? 1 : 2);
      const rng = new SeededRandom(seed);
      for (let i = 0; i < 600; i++) {
        const spec = randomFrameSpec(rng, rng.chance(0.05) && mode === "complete" ? "none" : mode);
        if (spec.checksum === "none") spec.protocol = IPPROTO_UDP;
        if (rng.chance(0.1)) spec.padTo = ETHERNET_MIN_FRAME;
        const before = buildFrame(spec);
        const target = { ip: rng.ipv4(), port: rng.port() };
        const problems = nativeRewriteProblems(before, side, target, mode);
        if (problems.length > 0) {
          const small = shrink(spec, side, target, mode);
          return t.fail(`seed ${seed} case ${i}: ${problems.join("; ")}\nsmallest failing variant: ${small.join("; ")}`);
        }
      }
      t.pass();
    });
  }
}

// ---------------------------------------------------------------------------------------------
// bad input: refused with a reason, never a crash, never a partial write

test("truncated frames are refused at every length from 0 to the end of the L4 header", (t) => {
  for (const protocol of PROTOCOLS) {
    for (const words of [0, 2]) {
      const spec: FrameSpec = { src: "198.18.1.1", dst: "198.18.2.2", protocol, payload: new Uint8Array(16).fill(9) };
      if (protocol === IPPROTO_TCP) spec.tcpOptions = timestampOption(new SeededRandom(1));
      if (words > 0) spec.ipOptions = routerAlertOptions(words);
      const full = buildFrame(spec);
      const v = readFrame(full);
      const headerEnd = v.l4Offset + (protocol === IPPROTO_TCP ? TCP_HEADER_LEN + 12 : UDP_HEADER_LEN);
      for (let len = 0; len <= headerEnd; len++) {
        const cut = full.slice(0, len);
        const problems = [...refusalProblems(packet(), cut), ...parseRefusalProblems(packet(), cut)];
        if (problems.length > 0) return t.fail(`length ${len}: ${problems.join("; ")} frame ${toHex(cut)}`);
      }
    }
  }
  t.pass();
});

test("an IP packet too short for its L4 header is refused even when the lengths agree", (t) => {
  for (const protocol of PROTOCOLS) {
    const header = protocol === IPPROTO_TCP ? TCP_HEADER_LEN : UDP_HEADER_LEN;
    for (let l4 = 0; l4 < header; l4++) {
      const f = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol, payload: new Uint8Array(0) }).slice(0, ETH_HEADER_LEN + 20 + l4);
      setTotalLength(f, 20 + l4);
      const problems = [...refusalProblems(packet(), f), ...parseRefusalProblems(packet(), f)];
      t.deepEqual(problems, [], `${protoName(protocol)} with ${l4} L4 bytes: ${toHex(f)}`);
    }
  }
});

test("non-IPv4 ethertypes are refused", (t) => {
  for (const ethertype of [0x86dd, 0x0806, 0x88cc, 0x8847, 0x0000, 0xffff]) {
    const f = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", ethertype, payload: new Uint8Array(8) });
    t.deepEqual([...refusalProblems(packet(), f), ...parseRefusalProblems(packet(), f)], [], `ethertype 0x${ethertype.toString(16)}`);
  }
});

test("an IP version other than 4 under the IPv4 ethertype is refused", (t) => {
  for (const version of [0, 5, 6, 15]) {
    const f = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", payload: new Uint8Array(8) });
    f[ETH_HEADER_LEN] = (version << 4) | 5;
    refreshIpChecksum(f);
    t.deepEqual([...refusalProblems(packet(), f), ...parseRefusalProblems(packet(), f)], [], `version ${version}`);
  }
});

test("IHL < 5 is refused", (t) => {
  for (const protocol of PROTOCOLS) {
    for (let ihl = 0; ihl < 5; ihl++) {
      const f = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol, payload: new Uint8Array(40).fill(1) });
      f[ETH_HEADER_LEN] = 0x40 | ihl;
      t.deepEqual([...refusalProblems(packet(), f), ...parseRefusalProblems(packet(), f)], [], `IHL ${ihl}`);
    }
  }
});

test("an IHL reaching past the total length or the frame is refused", (t) => {
  const f = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol: IPPROTO_UDP, payload: new Uint8Array(4) }); // total 32
  f[ETH_HEADER_LEN] = 0x40 | 15; // 60-byte header in a 32-byte packet (its checksum cannot even be computed)
  t.deepEqual([...refusalProblems(packet(), f), ...parseRefusalProblems(packet(), f)], []);
});

test("a total length beyond the frame, or shorter than the IP header, is refused", (t) => {
  for (const protocol of PROTOCOLS) {
    const base = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol, payload: new Uint8Array(30).fill(2) });
    const total = readFrame(base).totalLength;
    for (const bad of [total + 1, total + 100, 0xffff, 19, 0]) {
      const f = base.slice();
      setTotalLength(f, bad);
      t.deepEqual([...refusalProblems(packet(), f), ...parseRefusalProblems(packet(), f)], [], `${protoName(protocol)} total length ${bad} in a ${total}-byte packet`);
    }
  }
});

test("non-first fragments (offset != 0) are refused with a reason naming fragment", (t) => {
  for (const protocol of PROTOCOLS) {
    for (const [flags, offset] of [[0b001, 1], [0b000, 1], [0b001, 185], [0b000, 0x1fff], [0b011, 7]] as const) {
      const f = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol, flags, fragmentOffset: offset, payload: new Uint8Array(24).fill(4) });
      t.deepEqual(refusalProblems(packet(), f, /fragment/i), [], `${protoName(protocol)} flags ${flags} offset ${offset}`);
      t.deepEqual(parseRefusalProblems(packet(), f), [], `parse ${protoName(protocol)} offset ${offset}`);
    }
  }
});

// Complete mode only: the kernel never hands over a CHECKSUM_PARTIAL fragment, but a fragmented UDP
// datagram with a complete checksum is ordinary. The first fragment holds only part of the datagram,
// so the checksum must be updated incrementally, never recomputed over the fragment.
test("a first fragment (MF, offset 0), if accepted, gets a checksum that verifies over the reassembled datagram", (t) => {
  for (const side of SIDES) {
    const whole = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol: IPPROTO_UDP, payload: new SeededRandom(5).bytes(400) });
    const firstLen = 20 + 8 + 176; // fragment data is a multiple of 8
    const first = whole.slice(0, ETH_HEADER_LEN + firstLen);
    first[ETH_HEADER_LEN + 6] = 0x20; // MF, offset 0
    setTotalLength(first, firstLen);
    const target = { ip: "198.18.33.44", port: 5555 };
    const run = runRewrite(packet(), first, side, target, "complete");
    t.is(run.thrown, undefined);
    t.true(run.guardsIntact);
    if (run.result?.ok !== true) {
      t.deepEqual(run.after, first, "refused but modified");
      continue;
    }
    const reassembled = whole.slice();
    reassembled.set(run.after, 0);
    reassembled[ETH_HEADER_LEN + 6] = 0x40;
    setTotalLength(reassembled, readFrame(whole).totalLength);
    const v = readFrame(reassembled);
    t.is(v.ttl, 63);
    t.is(side === "destination" ? v.dst : v.src, target.ip);
    t.true(transportVerifies(v.src, v.dst, IPPROTO_UDP, segmentOf(reassembled)), `${side}: ${describeCase(first, side, target, "complete")}`);
  }
});

test("protocols other than TCP and UDP are refused", (t) => {
  for (const protocol of [0, 1, 2, 47, 50, 58, 132, 255]) {
    const f = buildFrame({ src: "198.18.1.1", dst: "198.18.2.2", protocol, payload: new Uint8Array(40).fill(8) });
    t.deepEqual([...refusalProblems(packet(), f), ...parseRefusalProblems(packet(), f)], [], `protocol ${protocol}`);
  }
});

test("an invalid target address or port is rejected (ok:false or a throw) without touching the frame", (t) => {
  const targets: Endpoint[] = [
    { ip: "256.0.0.1", port: 80 },
    { ip: "198.18.1", port: 80 },
    { ip: "", port: 80 },
    { ip: "::1", port: 80 },
    { ip: "198.18.1.1.1", port: 80 },
    { ip: "198.18.1.1", port: -1 },
    { ip: "198.18.1.1", port: 65536 },
    { ip: "198.18.1.1", port: 1.5 },
    { ip: "198.18.1.1", port: Number.NaN },
  ];
  const before = buildFrame({ src: "198.18.5.5", dst: "198.18.6.6", payload: new Uint8Array(10) });
  for (const target of targets) {
    for (const side of SIDES) {
      const run = runRewrite(packet(), before, side, target, "complete");
      t.false(run.thrown === undefined && run.result?.ok !== false, `${side} to ${JSON.stringify(target)} accepted: ${JSON.stringify(run.result)}`);
      t.deepEqual(run.after, before, `${side} to ${JSON.stringify(target)} modified the frame`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// fuzz: 10 000 mutated and random frames must never throw, crash, write out of bounds, or be
// accepted when malformed; accepted frames must be rewritten consistently.

/** Why the native code must not accept this frame, or undefined if it is acceptable. */
function whyUnacceptable(f: Uint8Array): string | undefined {
  if (f.length < ETH_HEADER_LEN + 20) return "shorter than Ethernet + IPv4 header";
  if (get16(f, 12) !== 0x0800) return "not the IPv4 ethertype";
  if (f[ETH_HEADER_LEN]! >> 4 !== 4) return "IP version is not 4";
  const ihlBytes = (f[ETH_HEADER_LEN]! & 0x0f) * 4;
  const total = get16(f, ETH_HEADER_LEN + 2);
  if (ihlBytes < 20) return "IHL < 5";
  if (total < ihlBytes) return "total length < IHL";
  if (ETH_HEADER_LEN + total > f.length) return "total length beyond the frame";
  if ((get16(f, ETH_HEADER_LEN + 6) & 0x1fff) !== 0) return "non-first fragment";
  const protocol = f[ETH_HEADER_LEN + 9]!;
  if (protocol !== IPPROTO_TCP && protocol !== IPPROTO_UDP) return "not TCP/UDP";
  if (total - ihlBytes < (protocol === IPPROTO_TCP ? TCP_HEADER_LEN : UDP_HEADER_LEN)) return "L4 header truncated";
  return undefined;
}

/** Which of the frame's checksums are valid for `mode`: a correct rewrite must keep those valid. */
function validChecksums(f: Uint8Array, mode: Checksum): { ip: boolean; l4: boolean } {
  const v = readFrame(f);
  const ip = ipv4HeaderChecksum(f, v.l3Offset, v.ihlBytes) === v.ipChecksum;
  if (v.protocol === IPPROTO_UDP && get16(f, v.l4Offset + 4) !== v.l4Length) return { ip, l4: false }; // UDP length disagrees
  if (v.protocol === IPPROTO_UDP && v.l4Checksum === 0) return { ip, l4: true };
  const l4 =
    mode === "complete"
      ? transportVerifies(v.src, v.dst, v.protocol, segmentOf(f))
      : v.l4Checksum === pseudoHeaderSum(v.src, v.dst, v.protocol, v.l4Length);
  return { ip, l4 };
}

function mutate(rng: SeededRandom, base: Uint8Array): Uint8Array {
  const f = base.slice();
  switch (rng.int(0, 7)) {
    case 0: // bit flips in the headers
      for (let n = rng.int(1, 8); n > 0; n--) {
        const at = rng.int(0, Math.min(f.length, 80) - 1);
        f[at] = f[at]! ^ (1 << rng.int(0, 7));
      }
      return f;
    case 1: // random bytes in the headers
      for (let n = rng.int(1, 4); n > 0; n--) f[rng.int(0, Math.min(f.length, 80) - 1)] = rng.int(0, 255);
      return f;
    case 2: // truncation anywhere
      return f.slice(0, rng.int(0, f.length));
    case 3: // trailing garbage
      return Uint8Array.from([...f, ...rng.bytes(rng.int(1, 64))]);
    case 4: // extreme IHL / total length / fragment / protocol, with a valid header checksum
      {
        const ip = ETH_HEADER_LEN;
        const field = rng.int(0, 3);
        if (field === 0) f[ip] = 0x40 | rng.int(0, 15);
        if (field === 1) { f[ip + 2] = rng.int(0, 255); f[ip + 3] = rng.int(0, 255); }
        if (field === 2) { f[ip + 6] = rng.int(0, 255); f[ip + 7] = rng.int(0, 255); }
        if (field === 3) f[ip + 9] = rng.pick([0, 1, 6, 17, 47, 132, 255]);
        if ((f[ip]! & 0x0f) >= 5 && f.length >= ip + (f[ip]! & 0x0f) * 4) refreshIpChecksum(f);
      }
      return f;
    case 5: // entirely random bytes
      return rng.bytes(rng.int(0, 160));
    case 6: // random bytes under a valid Ethernet + IPv4 prefix
      return Uint8Array.from([...f.subarray(0, Math.min(f.length, rng.int(14, 40))), ...rng.bytes(rng.int(0, 100))]);
    default: // unchanged valid frame (keeps the accepted path exercised)
      return f;
  }
}

test("fuzz: 10 000 random and mutated frames never throw, crash or write out of bounds; malformed ones are refused untouched", (t) => {
  const seed = 4242;
  const rng = new SeededRandom(seed);
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 10_000; i++) {
    const base = randomFrame(rng, rng.pick(["complete", "partial", "none"] as const), 200);
    const f = mutate(rng, base);
    const side = rng.pick(SIDES);
    const mode = rng.pick(MODES);
    const target = { ip: rng.ipv4(), port: rng.port() };
    const where = `seed ${seed} case ${i}: ${describeCase(f, side, target, mode)}`;
    const why = whyUnacceptable(f);

    const p = runParse(packet(), f);
    if (p.thrown !== undefined) return t.fail(`parse threw ${String(p.thrown)}; ${where}`);
    if (!p.unchanged || !p.guardsIntact) return t.fail(`parse wrote memory; ${where}`);
    if (p.result?.ok === true && why !== undefined) return t.fail(`parse accepted a frame with ${why}; ${where}`);
    if (p.result?.ok === false && (typeof p.result.reason !== "string" || p.result.reason === "")) return t.fail(`parse refused without reason; ${where}`);

    const r = runRewrite(packet(), f, side, target, mode);
    if (r.thrown !== undefined) return t.fail(`rewrite threw ${String(r.thrown)}; ${where}`);
    if (!r.guardsIntact) return t.fail(`rewrite wrote outside the frame; ${where}`);
    if (r.result === undefined || typeof r.result.ok !== "boolean") return t.fail(`rewrite returned ${JSON.stringify(r.result)}; ${where}`);
    if (!r.result.ok) {
      refused++;
      if (Buffer.compare(r.after, f) !== 0) return t.fail(`refused frame modified (${r.result.reason}); ${where}`);
      if (typeof r.result.reason !== "string" || r.result.reason === "") return t.fail(`refused without a reason; ${where}`);
      continue;
    }
    accepted++;
    if (why !== undefined) return t.fail(`rewrite accepted a frame with ${why}; ${where}`);
    if (f[ETH_HEADER_LEN + 8]! <= 1) return t.fail(`rewrite accepted TTL ${f[ETH_HEADER_LEN + 8]}; ${where}`);
    if (p.result?.ok !== true) return t.fail(`rewrite accepted what parse refused (${JSON.stringify(p.result)}); ${where}`);
    // A checksum that was already wrong on input cannot be right afterwards: check only the others.
    const valid = validChecksums(f, mode);
    const problems = rewriteProblems(f, r.after, side, target, mode).filter((msg) =>
      msg.startsWith("IPv4 header checksum") ? valid.ip : /L4|seed|UDP checksum/.test(msg) ? valid.l4 : true,
    );
    if (problems.length > 0) return t.fail(`${problems.join("; ")}; ${where}`);
  }
  t.log(`accepted ${accepted}, refused ${refused}`);
  t.true(accepted > 1000 && refused > 1000, `the fuzz must exercise both paths (accepted ${accepted}, refused ${refused})`);
});
