// Crafting and reading Ethernet + IPv4 (+ options) + TCP/UDP frames for the packet tests. Every
// checksum comes from the independent reference code in ./checksum, never from natlb.

import {
  IPPROTO_TCP,
  IPPROTO_UDP,
  checksumFieldOffset,
  ipv4Bytes,
  ipv4HeaderChecksum,
  ipv4Text,
  pseudoHeaderSum,
  transportChecksum,
} from "./checksum";

export const ETH_HEADER_LEN = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERNET_MIN_FRAME = 60; // without FCS
export const TCP_HEADER_LEN = 20;
export const UDP_HEADER_LEN = 8;

/** How the L4 checksum field is filled: complete, the CHECKSUM_PARTIAL pseudo-header seed, or 0. */
export type CraftedChecksum = "complete" | "partial" | "none";

export interface FrameSpec {
  src: string;
  dst: string;
  /** IPv4 protocol number; default TCP. Anything but TCP/UDP gets `payload` right after the IP header. */
  protocol?: number;
  sport?: number;
  dport?: number;
  ttl?: number;
  tos?: number;
  identification?: number;
  /** The 3 IPv4 flag bits (0b010 = DF, 0b001 = MF). */
  flags?: number;
  /** Fragment offset in 8-byte units. */
  fragmentOffset?: number;
  /** IPv4 options, a multiple of 4 bytes, at most 40. */
  ipOptions?: Uint8Array;
  /** TCP options, a multiple of 4 bytes, at most 40. */
  tcpOptions?: Uint8Array;
  payload?: Uint8Array;
  checksum?: CraftedChecksum;
  /** Pads the Ethernet frame with zero bytes up to this length (e.g. 60) past the IP total length. */
  padTo?: number;
  ethertype?: number;
  srcMac?: Uint8Array;
  dstMac?: Uint8Array;
}

const DEFAULT_DST_MAC = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0x01);
const DEFAULT_SRC_MAC = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0x02);

export function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

export function put32(b: Uint8Array, at: number, v: number): void {
  put16(b, at, (v >>> 16) & 0xffff);
  put16(b, at + 2, v & 0xffff);
}

export function get16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

/** IPv4 options that carry real option syntax: NOPs, a Router Alert (RFC 2113), EOL padding. */
export function routerAlertOptions(words: number): Uint8Array {
  if (words < 1 || words > 10) throw new RangeError("IPv4 options are 1..10 words");
  const o = new Uint8Array(words * 4); // trailing zeros = EOL
  o.set([0x94, 0x04, 0x00, 0x00], 0);
  for (let i = 4; i < o.length - 1; i++) o[i] = 0x01; // NOP
  return o;
}

/** Builds a frame with correct IPv4 header checksum and the requested L4 checksum. */
export function buildFrame(spec: FrameSpec): Uint8Array {
  const protocol = spec.protocol ?? IPPROTO_TCP;
  const ipOptions = spec.ipOptions ?? new Uint8Array(0);
  const tcpOptions = spec.tcpOptions ?? new Uint8Array(0);
  const payload = spec.payload ?? new Uint8Array(0);
  if (ipOptions.length % 4 !== 0 || ipOptions.length > 40) throw new RangeError("ipOptions: multiple of 4, <= 40");
  if (tcpOptions.length % 4 !== 0 || tcpOptions.length > 40) throw new RangeError("tcpOptions: multiple of 4, <= 40");

  const ihlBytes = 20 + ipOptions.length;
  const l4HeaderLen =
    protocol === IPPROTO_TCP ? TCP_HEADER_LEN + tcpOptions.length : protocol === IPPROTO_UDP ? UDP_HEADER_LEN : 0;
  const l4Length = l4HeaderLen + payload.length;
  const totalLength = ihlBytes + l4Length;
  if (totalLength > 0xffff) throw new RangeError(`IPv4 total length ${totalLength} > 65535`);
  const frameLength = Math.max(ETH_HEADER_LEN + totalLength, spec.padTo ?? 0);
  const f = new Uint8Array(frameLength);

  f.set(spec.dstMac ?? DEFAULT_DST_MAC, 0);
  f.set(spec.srcMac ?? DEFAULT_SRC_MAC, 6);
  put16(f, 12, spec.ethertype ?? ETHERTYPE_IPV4);

  const ip = ETH_HEADER_LEN;
  f[ip] = 0x40 | (ihlBytes / 4);
  f[ip + 1] = spec.tos ?? 0;
  put16(f, ip + 2, totalLength);
  put16(f, ip + 4, spec.identification ?? 0x1234);
  put16(f, ip + 6, (((spec.flags ?? 0b010) & 0x7) << 13) | ((spec.fragmentOffset ?? 0) & 0x1fff));
  f[ip + 8] = spec.ttl ?? 64;
  f[ip + 9] = protocol;
  f.set(ipv4Bytes(spec.src), ip + 12);
  f.set(ipv4Bytes(spec.dst), ip + 16);
  f.set(ipOptions, ip + 20);
  put16(f, ip + 10, ipv4HeaderChecksum(f, ip, ihlBytes));

  const l4 = ip + ihlBytes;
  if (protocol === IPPROTO_TCP) {
    put16(f, l4, spec.sport ?? 40000);
    put16(f, l4 + 2, spec.dport ?? 80);
    put32(f, l4 + 4, 0x01020304); // seq
    put32(f, l4 + 8, 0x0a0b0c0d); // ack
    f[l4 + 12] = ((TCP_HEADER_LEN + tcpOptions.length) / 4) << 4;
    f[l4 + 13] = 0x18; // PSH|ACK
    put16(f, l4 + 14, 0xffff); // window
    f.set(tcpOptions, l4 + TCP_HEADER_LEN);
  } else if (protocol === IPPROTO_UDP) {
    put16(f, l4, spec.sport ?? 40000);
    put16(f, l4 + 2, spec.dport ?? 53);
    put16(f, l4 + 4, l4Length);
  }
  f.set(payload, l4 + l4HeaderLen);

  if (protocol === IPPROTO_TCP || protocol === IPPROTO_UDP) {
    const field = l4 + checksumFieldOffset(protocol);
    const mode = spec.checksum ?? "complete";
    let value = 0;
    if (mode === "complete") {
      value = transportChecksum(spec.src, spec.dst, protocol, f.subarray(l4, l4 + l4Length));
      if (protocol === IPPROTO_UDP && value === 0) value = 0xffff; // RFC 768
    } else if (mode === "partial") {
      value = pseudoHeaderSum(spec.src, spec.dst, protocol, l4Length);
    }
    put16(f, field, value);
  }
  return f;
}

/** What the tests read back from a frame, independently of natlb's parser. */
export interface FrameView {
  l3Offset: number;
  ihlBytes: number;
  totalLength: number;
  ttl: number;
  protocol: number;
  src: string;
  dst: string;
  ipChecksum: number;
  l4Offset: number;
  l4Length: number;
  sport: number;
  dport: number;
  l4Checksum: number;
}

/** Reads a well-formed untagged IPv4 TCP/UDP frame (as crafted here); throws on anything else. */
export function readFrame(f: Uint8Array): FrameView {
  const l3Offset = ETH_HEADER_LEN;
  if (f.length < l3Offset + 20 || get16(f, 12) !== ETHERTYPE_IPV4) throw new RangeError("readFrame: not IPv4");
  const ihlBytes = (f[l3Offset]! & 0x0f) * 4;
  const totalLength = get16(f, l3Offset + 2);
  const protocol = f[l3Offset + 9]!;
  const l4Offset = l3Offset + ihlBytes;
  const l4Length = totalLength - ihlBytes;
  if (protocol !== IPPROTO_TCP && protocol !== IPPROTO_UDP) throw new RangeError("readFrame: not TCP/UDP");
  return {
    l3Offset,
    ihlBytes,
    totalLength,
    ttl: f[l3Offset + 8]!,
    protocol,
    src: ipv4Text(f, l3Offset + 12),
    dst: ipv4Text(f, l3Offset + 16),
    ipChecksum: get16(f, l3Offset + 10),
    l4Offset,
    l4Length,
    sport: get16(f, l4Offset),
    dport: get16(f, l4Offset + 2),
    l4Checksum: get16(f, l4Offset + checksumFieldOffset(protocol)),
  };
}

/** The L4 segment (header + payload) of a frame, bounded by the IP total length, as a copy. */
export function segmentOf(f: Uint8Array): Uint8Array {
  const v = readFrame(f);
  return f.slice(v.l4Offset, v.l4Offset + v.l4Length);
}

/** Byte offsets a destination (or source) rewrite may change; every other byte must stay as it was. */
export function rewritableOffsets(f: Uint8Array, side: "destination" | "source"): Set<number> {
  const v = readFrame(f);
  const ip = v.l3Offset;
  const addr = side === "destination" ? ip + 16 : ip + 12;
  const port = side === "destination" ? v.l4Offset + 2 : v.l4Offset;
  const csum = v.l4Offset + checksumFieldOffset(v.protocol);
  return new Set([ip + 8, ip + 10, ip + 11, addr, addr + 1, addr + 2, addr + 3, port, port + 1, csum, csum + 1]);
}

/** Offsets where two equally long frames differ. */
export function differingOffsets(a: Uint8Array, b: Uint8Array): number[] {
  if (a.length !== b.length) throw new RangeError(`frames differ in length: ${a.length} vs ${b.length}`);
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) out.push(i);
  return out;
}

/** Sets the IPv4 total length and refreshes the header checksum (for crafting inconsistent frames). */
export function setTotalLength(f: Uint8Array, totalLength: number): void {
  put16(f, ETH_HEADER_LEN + 2, totalLength);
  refreshIpChecksum(f);
}

/** Recomputes the IPv4 header checksum in place from the IHL the frame carries. */
export function refreshIpChecksum(f: Uint8Array): void {
  const ihlBytes = (f[ETH_HEADER_LEN]! & 0x0f) * 4;
  put16(f, ETH_HEADER_LEN + 10, ipv4HeaderChecksum(f, ETH_HEADER_LEN, ihlBytes));
}

/** Lower-case hex, no separators, for failure messages that reproduce a frame. */
export function toHex(f: Uint8Array): string {
  return Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString("hex");
}

export function fromHex(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, "hex"));
}

/**
 * A frame placed as a view in the middle of a larger buffer, with guard bytes on both sides: catches
 * native code that ignores the view's byteOffset or writes past either end of it.
 */
export class GuardedFrame {
  static readonly GUARD = 64;
  static readonly PATTERN = 0xa5;
  readonly backing: Uint8Array;
  readonly view: Uint8Array;

  constructor(frame: Uint8Array) {
    this.backing = new Uint8Array(frame.length + 2 * GuardedFrame.GUARD).fill(GuardedFrame.PATTERN);
    this.backing.set(frame, GuardedFrame.GUARD);
    this.view = this.backing.subarray(GuardedFrame.GUARD, GuardedFrame.GUARD + frame.length);
  }

  guardsIntact(): boolean {
    const g = GuardedFrame.GUARD;
    for (let i = 0; i < g; i++) {
      if (this.backing[i] !== GuardedFrame.PATTERN) return false;
      if (this.backing[this.backing.length - 1 - i] !== GuardedFrame.PATTERN) return false;
    }
    return true;
  }
}
