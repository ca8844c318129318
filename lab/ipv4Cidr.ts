// IPv4 addresses and CIDR blocks as numbers, and the one question the lab asks of them: does a
// block lie inside another (every flood source range must lie inside the lab range 198.18.0.0/15).
import { isIpv4 } from './toolArgs';

export interface Ipv4Cidr {
  /** The network address, as an unsigned 32-bit number. */
  network: number;
  prefixLength: number;
  text: string;
}

/** "a.b.c.d" as an unsigned 32-bit number; throws RangeError for anything else. */
export function ipv4ToNumber(ip: string): number {
  if (!isIpv4(ip)) throw new RangeError(`not an IPv4 address: "${ip}"`);
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

export function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** The mask of a prefix length, as an unsigned 32-bit number. */
function maskOf(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

/** "a.b.c.d/len" with no host bits set; throws RangeError naming what is wrong. */
export function parseCidr(text: string): Ipv4Cidr {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (m === null) throw new RangeError(`not a CIDR a.b.c.d/len: "${text}"`);
  const network = ipv4ToNumber(m[1] as string);
  const prefixLength = Number(m[2]);
  if (prefixLength > 32) throw new RangeError(`prefix length must be 0..32: "${text}"`);
  if ((network & ~maskOf(prefixLength)) >>> 0 !== 0) throw new RangeError(`host bits set: "${text}"`);
  return { network, prefixLength, text };
}

/** True when every address of `inner` is in `outer`. */
export function cidrInside(inner: Ipv4Cidr, outer: Ipv4Cidr): boolean {
  return inner.prefixLength >= outer.prefixLength && (inner.network & maskOf(outer.prefixLength)) >>> 0 === outer.network;
}

/** True when `ip` is in `block`. */
export function ipInside(ip: string, block: Ipv4Cidr): boolean {
  return ((ipv4ToNumber(ip) & maskOf(block.prefixLength)) >>> 0) === block.network;
}
