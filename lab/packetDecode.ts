// Decoding one captured frame into the facts tests check: addresses, ports, and whether the IP and
// TCP/UDP checksums are complete, a CHECKSUM_PARTIAL seed (docs/architecture.md, "Checksums"), or wrong.
import { complement, fold, ipv4HeaderChecksumOk, onesEqual, pseudoHeaderSeed, pseudoHeaderSum, sumWords } from './checksum';

/**
 * full: the checksum over pseudo-header + segment verifies. seed: the field holds the non-complemented
 * pseudo-header sum (CHECKSUM_PARTIAL). zero: UDP without checksum. truncated: the capture cut the
 * segment and the field is not a valid seed. bad: none of these. none: no L4 checksum to check
 * (other protocols, ARP, non-first fragments).
 */
export type L4ChecksumState = 'full' | 'seed' | 'zero' | 'bad' | 'truncated' | 'none';

export type PacketProtocol = 'tcp' | 'udp' | 'icmp' | 'arp' | `ip-${number}`;

export interface CapturedPacket {
  /** Milliseconds since the capture was opened. */
  t: number;
  srcMac: string;
  dstMac: string;
  /** IPv4 source (ARP: sender protocol address). */
  src: string;
  /** IPv4 destination (ARP: target protocol address). */
  dst: string;
  protocol: PacketProtocol;
  /** 0 when the protocol has no ports. */
  sport: number;
  dport: number;
  /** IPv4 total length (ARP: 28). */
  length: number;
  /** Bytes captured of the frame (less than the frame when the snaplen cut it). */
  capturedLength: number;
  ttl: number;
  ipId: number;
  ipChecksum: 'ok' | 'bad' | 'none';
  l4Checksum: L4ChecksumState;
  /** The L4 checksum field as found (TCP/UDP/ICMP). */
  l4ChecksumField?: number;
  /** TCP flags, e.g. ["SYN","ACK"]. */
  tcpFlags?: string[];
  tcpSeq?: number;
  tcpAck?: number;
  /** L4 payload bytes according to the headers. */
  payloadLength?: number;
  /** IPv4 fragment (MF set or offset > 0). */
  fragment?: boolean;
  /** ICMP type/code. */
  icmpType?: number;
  icmpCode?: number;
  arpOp?: 'request' | 'reply' | number;
}

export type LinkType = 'ETHERNET' | 'LINUX_SLL';

const ETH_P_IP = 0x0800;
const ETH_P_ARP = 0x0806;
const ETH_P_8021Q = 0x8100;
const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const TCP_FLAG_NAMES: Array<[number, string]> = [
  [0x01, 'FIN'],
  [0x02, 'SYN'],
  [0x04, 'RST'],
  [0x08, 'PSH'],
  [0x10, 'ACK'],
  [0x20, 'URG'],
  [0x40, 'ECE'],
  [0x80, 'CWR'],
];

function mac(buf: Uint8Array, off: number): string {
  return Array.from(buf.subarray(off, off + 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

function ipv4(buf: Uint8Array, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

function u16(buf: Uint8Array, off: number): number {
  return ((buf[off] as number) << 8) | (buf[off + 1] as number);
}

function u32(buf: Uint8Array, off: number): number {
  return (buf[off] as number) * 0x1000000 + (buf[off + 1] as number) * 0x10000 + u16(buf, off + 2);
}

/**
 * Decodes a frame of which `caplen` bytes were captured. Returns null for frames that are neither
 * IPv4 nor ARP, or too short to hold their network header.
 */
export function decodeFrame(buf: Uint8Array, caplen: number, linkType: LinkType = 'ETHERNET', t = 0): CapturedPacket | null {
  let off: number;
  let etherType: number;
  let srcMac = '';
  let dstMac = '';
  if (linkType === 'ETHERNET') {
    if (caplen < 14) return null;
    dstMac = mac(buf, 0);
    srcMac = mac(buf, 6);
    etherType = u16(buf, 12);
    off = 14;
    if (etherType === ETH_P_8021Q) {
      if (caplen < 18) return null;
      etherType = u16(buf, 16);
      off = 18;
    }
  } else {
    // Linux cooked capture v1: packet type(2) arphrd(2) addr len(2) addr(8) protocol(2).
    if (caplen < 16) return null;
    srcMac = u16(buf, 4) === 6 ? mac(buf, 6) : '';
    etherType = u16(buf, 14);
    off = 16;
  }
  if (etherType === ETH_P_ARP) return decodeArp(buf, caplen, off, t, srcMac, dstMac);
  if (etherType !== ETH_P_IP) return null;
  return decodeIpv4(buf, caplen, off, t, srcMac, dstMac);
}

function decodeArp(buf: Uint8Array, caplen: number, off: number, t: number, srcMac: string, dstMac: string): CapturedPacket | null {
  if (caplen < off + 28) return null;
  const op = u16(buf, off + 6);
  return {
    t,
    srcMac,
    dstMac,
    src: ipv4(buf, off + 14),
    dst: ipv4(buf, off + 24),
    protocol: 'arp',
    sport: 0,
    dport: 0,
    length: 28,
    capturedLength: caplen,
    ttl: 0,
    ipId: 0,
    ipChecksum: 'none',
    l4Checksum: 'none',
    arpOp: op === 1 ? 'request' : op === 2 ? 'reply' : op,
  };
}

function decodeIpv4(buf: Uint8Array, caplen: number, off: number, t: number, srcMac: string, dstMac: string): CapturedPacket | null {
  if (caplen < off + 20 || (buf[off] as number) >> 4 !== 4) return null;
  const ihl = ((buf[off] as number) & 0x0f) * 4;
  if (ihl < 20 || caplen < off + ihl) return null;
  const totalLength = u16(buf, off + 2);
  const fragField = u16(buf, off + 6);
  const fragment = (fragField & 0x2000) !== 0 || (fragField & 0x1fff) !== 0;
  const proto = buf[off + 9] as number;
  const l4 = off + ihl;
  const l4Length = Math.max(0, totalLength - ihl);
  // Bytes of the L4 segment present in the capture (never beyond what the IP header claims).
  const l4Captured = Math.max(0, Math.min(caplen, off + totalLength) - l4);
  const pkt: CapturedPacket = {
    t,
    srcMac,
    dstMac,
    src: ipv4(buf, off + 12),
    dst: ipv4(buf, off + 16),
    protocol: proto === IPPROTO_TCP ? 'tcp' : proto === IPPROTO_UDP ? 'udp' : proto === IPPROTO_ICMP ? 'icmp' : `ip-${proto}`,
    sport: 0,
    dport: 0,
    length: totalLength,
    capturedLength: caplen,
    ttl: buf[off + 8] as number,
    ipId: u16(buf, off + 4),
    ipChecksum: ipv4HeaderChecksumOk(buf, off, ihl) ? 'ok' : 'bad',
    l4Checksum: 'none',
  };
  if (fragment) {
    pkt.fragment = true;
    if ((fragField & 0x1fff) !== 0) return pkt; // no L4 header in a non-first fragment
  }
  if (proto === IPPROTO_TCP || proto === IPPROTO_UDP) {
    const fieldOffset = proto === IPPROTO_TCP ? 16 : 6;
    if (l4Captured >= 4) {
      pkt.sport = u16(buf, l4);
      pkt.dport = u16(buf, l4 + 2);
    }
    if (proto === IPPROTO_TCP && l4Captured >= 14) {
      const dataOffset = ((buf[l4 + 12] as number) >> 4) * 4;
      const flags = buf[l4 + 13] as number;
      pkt.tcpFlags = TCP_FLAG_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name);
      pkt.tcpSeq = u32(buf, l4 + 4);
      pkt.tcpAck = u32(buf, l4 + 8);
      pkt.payloadLength = Math.max(0, l4Length - dataOffset);
    } else if (proto === IPPROTO_UDP) {
      pkt.payloadLength = Math.max(0, l4Length - 8);
    }
    if (l4Captured < fieldOffset + 2) {
      pkt.l4Checksum = 'truncated';
      return pkt;
    }
    const field = u16(buf, l4 + fieldOffset);
    pkt.l4ChecksumField = field;
    pkt.l4Checksum = fragment ? 'none' : classifyL4(buf, off, l4, proto, l4Length, l4Captured, field);
  } else if (proto === IPPROTO_ICMP) {
    if (l4Captured >= 2) {
      pkt.icmpType = buf[l4] as number;
      pkt.icmpCode = buf[l4 + 1] as number;
    }
    if (l4Captured >= 4) pkt.l4ChecksumField = u16(buf, l4 + 2);
    if (fragment) pkt.l4Checksum = 'none';
    else if (l4Captured < l4Length || l4Length < 4) pkt.l4Checksum = 'truncated';
    else pkt.l4Checksum = fold(sumWords(buf, l4, l4 + l4Length)) === 0xffff ? 'full' : 'bad';
  }
  return pkt;
}

function classifyL4(
  buf: Uint8Array,
  ipOff: number,
  l4: number,
  proto: number,
  l4Length: number,
  l4Captured: number,
  field: number,
): L4ChecksumState {
  if (proto === IPPROTO_UDP && field === 0) return 'zero';
  if (l4Captured >= l4Length) {
    const total = sumWords(buf, l4, l4 + l4Length, pseudoHeaderSum(buf, ipOff + 12, ipOff + 16, proto, l4Length));
    if (fold(total) === 0xffff) return 'full';
  }
  if (onesEqual(field, pseudoHeaderSeed(buf, ipOff + 12, ipOff + 16, proto, l4Length))) return 'seed';
  return l4Captured >= l4Length ? 'bad' : 'truncated';
}

/** The correct full checksum field for the TCP/UDP segment at l4 (used by tests to craft frames). */
export function computeL4Checksum(buf: Uint8Array, ipOff: number, l4: number, proto: number, l4Length: number, fieldOffset: number): number {
  const saved0 = buf[l4 + fieldOffset] as number;
  const saved1 = buf[l4 + fieldOffset + 1] as number;
  buf[l4 + fieldOffset] = 0;
  buf[l4 + fieldOffset + 1] = 0;
  const sum = sumWords(buf, l4, l4 + l4Length, pseudoHeaderSum(buf, ipOff + 12, ipOff + 16, proto, l4Length));
  buf[l4 + fieldOffset] = saved0;
  buf[l4 + fieldOffset + 1] = saved1;
  const c = complement(sum);
  return proto === IPPROTO_UDP && c === 0 ? 0xffff : c;
}
