// The transmit path's merge of MTU TCP segments into one GSO super-frame, checked the strict way: the
// kernel's GSO must be able to cut the super-frame back into exactly the segments that went in. The
// segmentation is emulated here from scratch (what tcp_gso_segment does) and compared byte for byte.
import test from "ava";
import { loadNative } from "../src/native";
import { IPPROTO_TCP, ipv4HeaderChecksum, pseudoHeaderSum } from "./support/checksum";
import { buildFrame, get16, put16, put32 } from "./support/frames";

const packet = loadNative().packet;
const SRC = "198.18.1.11";
const DST = "198.18.0.2";
const MSS = 1448;
const TIMESTAMPS = Uint8Array.of(1, 1, 8, 10, 0, 0, 0x10, 0, 0, 0, 0x20, 0);
const ETH = 14;
const IP = 20;

function get32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

interface SegmentSpec {
  seq: number;
  id: number;
  length: number;
  flags?: number;
  ttl?: number;
  options?: Uint8Array;
}

function segment(spec: SegmentSpec, fill: number): Uint8Array {
  const payload = new Uint8Array(spec.length).map((_, i) => (fill * 31 + i * 7) & 0xff);
  const frame = buildFrame({
    src: SRC, dst: DST, sport: 8080, dport: 41000, identification: spec.id, ttl: spec.ttl ?? 63,
    tcpOptions: spec.options ?? TIMESTAMPS, payload, checksum: "partial",
  });
  put32(frame, ETH + IP + 4, spec.seq);
  frame[ETH + IP + 13] = spec.flags ?? 0x10;
  return frame;
}

function stream(count: number, lastLength = MSS, firstSeq = 0xfffff000): Uint8Array[] {
  return Array.from({ length: count }, (_, i) =>
    segment({ seq: (firstSeq + i * MSS) >>> 0, id: (0xfffe + i) & 0xffff, length: i === count - 1 ? lastLength : MSS,
      flags: i === count - 1 ? 0x18 : 0x10 }, i));
}

/** What the kernel's GSO makes of a TCPv4 super-frame with CHECKSUM_PARTIAL (tcp_gso_segment). */
function segmentLikeGso(frame: Uint8Array, mss: number, headerLength: number): Uint8Array[] {
  const payload = frame.subarray(headerLength);
  const out: Uint8Array[] = [];
  for (let offset = 0, i = 0; offset < payload.length; offset += mss, i++) {
    const chunk = payload.subarray(offset, offset + mss);
    const seg = new Uint8Array(headerLength + chunk.length);
    seg.set(frame.subarray(0, headerLength));
    seg.set(chunk, headerLength);
    const last = offset + mss >= payload.length;
    put16(seg, ETH + 2, seg.length - ETH);
    put16(seg, ETH + 4, (get16(frame, ETH + 4) + i) & 0xffff);
    put16(seg, ETH + 10, 0);
    put16(seg, ETH + 10, ipv4HeaderChecksum(seg, ETH, IP));
    put32(seg, ETH + IP + 4, (get32(frame, ETH + IP + 4) + offset) >>> 0);
    if (!last) seg[ETH + IP + 13] = seg[ETH + IP + 13]! & ~0x09; // GSO clears PSH and FIN but on the last
    put16(seg, ETH + IP + 16, pseudoHeaderSum(SRC, DST, IPPROTO_TCP, seg.length - ETH - IP));
    out.push(seg);
  }
  return out;
}

test("a run of segments becomes one super-frame that GSO cuts back into exactly the same segments", (t) => {
  for (const [count, lastLength] of [[2, MSS], [5, 1000], [45, MSS], [7, 1]] as const) {
    const segments = stream(count, lastLength);
    const result = packet.coalesceSegments(segments, "partial");
    if (!result.ok) return t.fail(result.reason);
    const headerLength = ETH + IP + 20 + TIMESTAMPS.length;
    t.is(result.headerLength, headerLength);
    t.is(result.gsoSize, MSS);
    t.is(result.gsoType, 1, "VIRTIO_NET_HDR_GSO_TCPV4");
    t.true(result.needsChecksum);
    t.is(result.checksumStart, ETH + IP);
    t.is(result.checksumOffset, 16);
    const frame = result.frame;
    t.is(get16(frame, ETH + 2), frame.length - ETH, "IP total length covers every payload");
    t.is(get16(frame, ETH + 10), ipv4HeaderChecksum(frame, ETH, IP));
    t.is(get16(frame, ETH + IP + 16), pseudoHeaderSum(SRC, DST, IPPROTO_TCP, frame.length - ETH - IP), "seed over the whole length");
    const rebuilt = segmentLikeGso(frame, result.gsoSize, result.headerLength);
    t.is(rebuilt.length, count);
    rebuilt.forEach((seg, i) => t.deepEqual(Buffer.from(seg), Buffer.from(segments[i]!), `segment ${i} of ${count}`));
  }
});

test("segments GSO could not rebuild exactly are never merged", (t) => {
  const refuse = (frames: Uint8Array[], what: string, mode: "partial" | "complete" = "partial") => {
    const result = packet.coalesceSegments(frames, mode);
    t.false(result.ok, what);
  };
  const base = { seq: 1000, id: 7, length: MSS };
  refuse([segment(base, 0), segment({ ...base, seq: 1000 + MSS + 1, id: 8 }, 1)], "a sequence gap");
  refuse([segment(base, 0), segment({ ...base, seq: 1000 + MSS, id: 9 }, 1)], "an IP id gap");
  refuse([segment({ ...base, flags: 0x18 }, 0), segment({ ...base, seq: 1000 + MSS, id: 8 }, 1)], "PSH before the end");
  refuse([segment({ ...base, length: 1000 }, 0), segment({ ...base, seq: 2000, id: 8 }, 1), segment({ ...base, seq: 2000 + MSS, id: 9 }, 2)], "a short segment before the end");
  refuse([segment(base, 0), segment({ ...base, seq: 1000 + MSS, id: 8, length: MSS + 1 }, 1)], "a segment longer than the first");
  refuse([segment(base, 0), segment({ ...base, seq: 1000 + MSS, id: 8, ttl: 62 }, 1)], "another TTL");
  const otherTimestamps = TIMESTAMPS.slice();
  otherTimestamps[7] = 1;
  refuse([segment(base, 0), segment({ ...base, seq: 1000 + MSS, id: 8, options: otherTimestamps }, 1)], "other TCP options");
  refuse([segment(base, 0), segment({ ...base, seq: 1000 + MSS, id: 8, flags: 0x11 }, 1)], "a FIN");
  refuse(stream(3), "complete checksums are never re-computed", "complete");
  const toAnotherNextHop = segment({ ...base, seq: 1000 + MSS, id: 8 }, 1);
  toAnotherNextHop[5] = 0x77; // the next hop's MAC changed between two segments (found by fuzz/harnesses/tcp_coalesce.cc)
  refuse([segment(base, 0), toAnotherNextHop], "another Ethernet destination");
  t.true(packet.coalesceSegments([segment(base, 0), segment({ ...base, seq: 1000 + MSS, id: 8 }, 1)], "partial").ok, "the control case merges");
});
