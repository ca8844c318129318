// Writes the fuzz harnesses' seed corpus (fuzz/corpus/<harness>/) from the frames the unit tests craft
// (test/support/frames.ts) and the frames Linux sent in the lab (test/support/kernelVectors.ts), each
// prefixed with the parameters its harness reads first (the input layout is in each harness's header
// comment, fuzz/harnesses/*.cc), and keeps the regression-* inputs. Regenerate after changing a
// harness's input layout:
//   npx tsc -p . && node dist/scripts/fuzz/generateCorpus.js
import { createHmac } from "node:crypto";
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { IPPROTO_UDP, internetChecksum, ipv4Bytes } from "../../test/support/checksum";
import { buildFrame, fromHex, put16, put32, routerAlertOptions, type FrameSpec } from "../../test/support/frames";
import { KERNEL_TCP_SYN_PARTIAL, KERNEL_UDP_COMPLETE, KERNEL_UDP_PARTIAL } from "../../test/support/kernelVectors";

const CORPUS = join(__dirname, "..", "..", "..", "fuzz", "corpus");
const CLIENT = "198.18.0.10";
const VIP = "198.18.0.100";
const REAL = "198.18.1.11";
const ETH = 14;
const IP = 20;
const MSS = 1448;
const WINDOW_SCALE_SYN_OPTIONS = Uint8Array.of(2, 4, 0x05, 0xb4, 1, 3, 3, 7); // MSS 1460, NOP, window scale 7
const TIMESTAMPS = Uint8Array.of(1, 1, 8, 10, 0, 0, 0x10, 0, 0, 0, 0x20, 0);

const bytes = (...parts: (Uint8Array | number[])[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
};
const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];
const u32 = (v: number): number[] => [...u16(v >>> 16), ...u16(v & 0xffff)];
const ip32 = (ip: string): number[] => [...ipv4Bytes(ip)];
const payloadOf = (length: number, fill: number): Uint8Array => new Uint8Array(length).map((_, i) => (fill * 31 + i * 7) & 0xff);

function tcp(spec: Partial<FrameSpec> & { flags?: number; seq?: number; tcpFlags?: number }): Uint8Array {
  const frame = buildFrame({ src: CLIENT, dst: VIP, sport: 40000, dport: 80, ...spec });
  if (spec.seq !== undefined) put32(frame, ETH + IP + (spec.ipOptions?.length ?? 0) + 4, spec.seq);
  if (spec.tcpFlags !== undefined) frame[ETH + IP + (spec.ipOptions?.length ?? 0) + 13] = spec.tcpFlags;
  return frame;
}

/** The frames the unit tests use, in kind: every one parses (or is refused) for a reason of its own. */
function transportFrames(): Record<string, Uint8Array> {
  return {
    "tcp-complete": tcp({ payload: payloadOf(100, 1) }),
    "tcp-partial": tcp({ payload: payloadOf(100, 2), checksum: "partial" }),
    "tcp-syn-window-scale": tcp({ tcpOptions: WINDOW_SCALE_SYN_OPTIONS, tcpFlags: 0x02 }),
    "tcp-timestamps-mss": tcp({ tcpOptions: TIMESTAMPS, payload: payloadOf(MSS, 3), checksum: "partial" }),
    "tcp-ip-options": tcp({ ipOptions: routerAlertOptions(2), payload: payloadOf(30, 4) }),
    "tcp-padded": tcp({ padTo: 60 }),
    "tcp-rst": tcp({ tcpFlags: 0x14, seq: 0x01020304 }),
    "tcp-fin": tcp({ tcpFlags: 0x11, payload: payloadOf(10, 5) }),
    "tcp-ttl-1": tcp({ ttl: 1 }),
    "tcp-gso-super-frame": tcp({ tcpOptions: TIMESTAMPS, payload: payloadOf(3 * MSS, 6), checksum: "partial" }),
    "udp-complete": buildFrame({ src: CLIENT, dst: VIP, protocol: IPPROTO_UDP, payload: payloadOf(40, 7) }),
    "udp-partial": buildFrame({ src: CLIENT, dst: VIP, protocol: IPPROTO_UDP, payload: payloadOf(40, 8), checksum: "partial" }),
    "udp-no-checksum": buildFrame({ src: CLIENT, dst: VIP, protocol: IPPROTO_UDP, payload: payloadOf(3, 9), checksum: "none" }),
    "udp-first-fragment": buildFrame({ src: CLIENT, dst: VIP, protocol: IPPROTO_UDP, flags: 0b011, payload: payloadOf(1472, 10) }),
    "udp-later-fragment": buildFrame({ src: CLIENT, dst: VIP, protocol: IPPROTO_UDP, flags: 0b001, fragmentOffset: 185, payload: payloadOf(100, 11) }),
    "kernel-udp-complete": fromHex(KERNEL_UDP_COMPLETE),
    "kernel-udp-partial": fromHex(KERNEL_UDP_PARTIAL),
    "kernel-tcp-syn-partial": fromHex(KERNEL_TCP_SYN_PARTIAL),
  };
}

function icmpFrame(src: string, dst: string, type: number, code: number, rest: number[], body: Uint8Array, ttl = 64): Uint8Array {
  const message = bytes([type, code, 0, 0], rest, body);
  put16(message, 2, internetChecksum(message));
  return buildFrame({ src, dst, protocol: 1, payload: message, ttl });
}

/** Echo requests and the ICMP errors natlb translates, quoting a flow's packet in full or in part. */
function icmpFrames(): Record<string, Uint8Array> {
  const toReal = buildFrame({ src: CLIENT, dst: REAL, sport: 40000, dport: 8080, payload: payloadOf(20, 12) }).subarray(ETH);
  const udpToReal = buildFrame({ src: CLIENT, dst: REAL, protocol: IPPROTO_UDP, sport: 40000, dport: 5353, payload: payloadOf(20, 13) }).subarray(ETH);
  const fromVip = buildFrame({ src: VIP, dst: CLIENT, sport: 80, dport: 40000, payload: payloadOf(20, 14) }).subarray(ETH);
  return {
    "echo-request": icmpFrame(CLIENT, VIP, 8, 0, [...u16(7), ...u16(1)], payloadOf(56, 15)),
    "frag-needed-tcp-full": icmpFrame("198.18.1.1", CLIENT, 3, 4, [0, 0, ...u16(1400)], toReal),
    "frag-needed-tcp-8-bytes": icmpFrame("198.18.1.1", CLIENT, 3, 4, [0, 0, ...u16(1400)], toReal.subarray(0, IP + 8)),
    "port-unreachable-udp": icmpFrame(REAL, CLIENT, 3, 3, [0, 0, 0, 0], udpToReal.subarray(0, IP + 8)),
    "time-exceeded-to-vip": icmpFrame("198.18.0.1", VIP, 11, 0, [0, 0, 0, 0], fromVip.subarray(0, IP + 8)),
    "parameter-problem-ttl-1": icmpFrame("198.18.0.1", VIP, 12, 0, [20, 0, 0, 0], fromVip, 1),
  };
}

function arpFrame(operation: number, senderIp: string, targetIp: string): Uint8Array {
  const mac = [0x02, 0, 0, 0, 0, 0x0a];
  return bytes(operation === 1 ? [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] : [0x02, 0, 0, 0, 0, 0x01], mac, u16(0x0806),
    u16(1), u16(0x0800), [6, 4], u16(operation), mac, ip32(senderIp), operation === 1 ? [0, 0, 0, 0, 0, 0] : [0x02, 0, 0, 0, 0, 1], ip32(targetIp),
    new Array(18).fill(0));
}

function coalesceStream(count: number, lastLength: number, firstSeq: number, firstId: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => {
    const frame = buildFrame({ src: REAL, dst: CLIENT, sport: 8080, dport: 41000, identification: (firstId + i) & 0xffff, ttl: 63,
      tcpOptions: TIMESTAMPS, payload: payloadOf(i === count - 1 ? lastLength : MSS, i), checksum: "partial" });
    put32(frame, ETH + IP + 4, (firstSeq + i * MSS) >>> 0);
    frame[ETH + IP + 13] = i === count - 1 ? 0x18 : 0x10;
    return frame;
  });
}

const coalesceInput = (frames: Uint8Array[], vnetFlags = 1): Uint8Array => bytes(...frames.map((f) => bytes(u16(f.length), [vnetFlags], f)));

function side(sequenceEnd: number, window: number, shift: number, seen: boolean): number[] {
  return [...u32(sequenceEnd), ...u32(window), shift, seen ? 1 : 0];
}

/** A flow sync datagram (native/sync/sync_message.h) with `records` 32-byte records, signed with `key`. */
function syncDatagram(key: Uint8Array, type: number, records: number): Uint8Array {
  const record = (i: number) => bytes([0, 6, 2, 4], ip32(CLIENT), ip32(VIP), ip32(REAL), [0, 0, 0, 0], u16(40000 + i), u16(80), u16(8080), u16(0), [0, 0, 0, 0]);
  const signed = bytes([0x4e, 0x4c, 0x53, 0x59, 1, type], u16(records), u32(0xdeadbeef), u32(0), u32(7), u32(0x193), u32(0x12345678),
    ...Array.from({ length: records }, (_, i) => record(i)));
  return bytes(signed, createHmac("sha256", key).update(signed).digest());
}

function corpus(): Record<string, Record<string, Uint8Array>> {
  const frames = transportFrames();
  const icmp = icmpFrames();
  const realIp = ip32(REAL);
  const vipIp = ip32(VIP);
  const natRewrite: Record<string, Uint8Array> = {};
  for (const [name, frame] of Object.entries(frames)) {
    const partial = name.includes("partial") || name.includes("gso") || name === "tcp-timestamps-mss";
    const mode = partial ? 4 : 0;
    natRewrite[`${name}-to-real`] = bytes([0 | mode], realIp, u16(8080), frame);
    natRewrite[`${name}-to-client`] = bytes([1 | mode], vipIp, u16(80), frame);
  }
  natRewrite["tcp-complete-ttl-only"] = bytes([2], [0, 0, 0, 0, 0, 0], frames["tcp-complete"]!);

  const icmpTranslate: Record<string, Uint8Array> = {};
  for (const [name, frame] of Object.entries(icmp)) {
    icmpTranslate[`${name}-to-real`] = bytes([1], [0, 0, 0, 0], realIp, realIp, u16(8080), frame);
    icmpTranslate[`${name}-to-client`] = bytes([0], vipIp, [0, 0, 0, 0], vipIp, u16(80), frame);
  }

  const icmpError: Record<string, Uint8Array> = {};
  const errorSpecs = { "frag-needed": [3, 4, ...u16(1400)], "time-exceeded": [11, 0, 0, 0] };
  for (const [specName, spec] of Object.entries(errorSpecs)) {
    for (const name of ["tcp-complete", "tcp-ip-options", "udp-complete", "udp-later-fragment", "tcp-gso-super-frame"]) {
      icmpError[`${specName}-${name}`] = bytes(spec, ip32("198.18.0.1"), frames[name]!.subarray(ETH));
    }
    for (const name of ["echo-request", "frag-needed-tcp-full"]) icmpError[`${specName}-${name}`] = bytes(spec, ip32("198.18.0.1"), icmp[name]!.subarray(ETH));
  }

  const ourMac = [0x02, 0, 0, 0, 0, 0x01];
  const arp = {
    request: bytes(ourMac, arpFrame(1, CLIENT, VIP)),
    reply: bytes(ourMac, arpFrame(2, REAL, "198.18.1.1")),
    gratuitous: bytes(ourMac, arpFrame(1, VIP, VIP)),
    "not-arp": bytes(ourMac, frames["udp-complete"]!),
  };

  const first = frames["udp-first-fragment"]!;
  const later = frames["udp-later-fragment"]!;
  const frameOp = (kind: number, ms: number, address: string, frame: Uint8Array): Uint8Array =>
    bytes([kind], u16(ms), ip32(address), u16(frame.length), frame);
  const tableOp = (kind: number, ms: number, src: string, dst: string, id: number, protocol: number, address: string): Uint8Array =>
    bytes([kind], u16(ms), ip32(src), ip32(dst), u16(id), [protocol], ip32(address));
  const fragmentTable = {
    "first-then-later-to-vip": bytes(frameOp(1, 0, REAL, first), frameOp(3, 10, REAL, later)),
    "later-before-first": bytes(frameOp(3, 0, REAL, later), frameOp(1, 1, REAL, first)),
    "later-after-expiry": bytes(frameOp(1, 0, REAL, first), frameOp(3, 6000, REAL, later)),
    "table-remember-find": bytes(tableOp(2, 0, CLIENT, VIP, 0x1234, IPPROTO_UDP, REAL), tableOp(0, 100, CLIENT, VIP, 0x1234, IPPROTO_UDP, REAL),
      tableOp(0, 100, CLIENT, VIP, 0x1235, IPPROTO_UDP, REAL)),
  };

  const stream = coalesceStream(4, 600, 0xfffff000, 0xfffe);
  const tcpCoalesce = {
    "four-segments-wrapping": coalesceInput(stream),
    "two-full-segments": coalesceInput(coalesceStream(2, MSS, 1000, 7)),
    "interrupted-by-another-header-length": coalesceInput([...stream.slice(0, 2), frames["tcp-complete"]!, ...coalesceStream(2, 100, 5000, 3)]),
    "not-partial": coalesceInput(stream, 0),
  };

  const established = bytes(side(0x01020304, 65535, 7, true), side(0x0a0b0c0d, 65535, 7, true), [2], u16(0), [0]);
  const before = bytes(side(0, 0, 0xff, false), side(0x1000, 29200, 7, true), [1], u16(0), [1]);
  const tcpTracking = {
    "syn-window-scale": bytes(before, frames["tcp-syn-window-scale"]!),
    "kernel-syn": bytes(before, frames["kernel-tcp-syn-partial"]!),
    "data-in-window": bytes(established, frames["tcp-complete"]!),
    "exact-rst": bytes(established, frames["tcp-rst"]!),
    "fin": bytes(established, frames["tcp-fin"]!),
    "refusal-rst-ack": bytes(before, tcp({ tcpFlags: 0x14 })),
  };

  const syncKey = new Uint8Array(32).fill(0x5a);
  const syncMessage = {
    "flows-3": bytes(syncKey, u16(77), syncDatagram(syncKey, 1, 3)),
    "snapshot-request": bytes(syncKey, u16(3), syncDatagram(syncKey, 4, 0)),
    "full-datagram": bytes(syncKey, u16(9000), syncDatagram(syncKey, 2, 41)),
  };

  return {
    sync_message: syncMessage,
    ipv4_frame: frames, nat_rewrite: natRewrite, icmp_translate: icmpTranslate, icmp_error: icmpError, arp,
    fragment_table: fragmentTable, tcp_coalesce: tcpCoalesce, tcp_tracking: tcpTracking,
  };
}

// Inputs that once crashed a harness are kept as seeds (regression-*, copied from build-fuzz/crashes/).
const REGRESSION = /^regression-/;

for (const [harness, seeds] of Object.entries(corpus())) {
  const dir = join(CORPUS, harness);
  mkdirSync(dir, { recursive: true });
  for (const file of readdirSync(dir)) if (!REGRESSION.test(file)) rmSync(join(dir, file));
  for (const [name, seed] of Object.entries(seeds)) writeFileSync(join(dir, name), seed);
  console.log(`${harness}: ${Object.keys(seeds).length} seeds`);
}
