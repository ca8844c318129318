// IPv4 helpers. Addresses travel as unsigned 32-bit numbers in host order (198.18.0.1 ->
// 0xC6120001) because that is what the native flow map stores and compares.

const DECIMAL_OCTET = /^(0|[1-9][0-9]{0,2})$/;

function octetsOf(s: string): number[] | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const octets: number[] = [];
  for (const part of parts) {
    // Leading zeros are rejected: inet_aton reads "010" as octal 8, so they are ambiguous.
    if (!DECIMAL_OCTET.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    octets.push(value);
  }
  return octets;
}

/** True when `s` is a dotted-quad IPv4 address such as `198.18.0.100` (no leading zeros). */
export function isIPv4(s: unknown): s is string {
  return typeof s === "string" && octetsOf(s) !== undefined;
}

/** Parses a dotted-quad IPv4 address into an unsigned 32-bit number; throws a TypeError otherwise. */
export function parseIPv4(s: string): number {
  const octets = typeof s === "string" ? octetsOf(s) : undefined;
  if (octets === undefined) {
    throw new TypeError(`not an IPv4 address: ${JSON.stringify(s)}: write four decimal numbers 0..255 like 198.18.0.100`);
  }
  return ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
}

/** Formats an unsigned 32-bit number as a dotted quad. */
export function formatIPv4(u32: number): string {
  if (!Number.isInteger(u32) || u32 < 0 || u32 > 0xffffffff) {
    throw new RangeError(`not a 32-bit unsigned IPv4 value: ${u32}`);
  }
  return `${u32 >>> 24}.${(u32 >>> 16) & 0xff}.${(u32 >>> 8) & 0xff}.${u32 & 0xff}`;
}

function toU32(ip: string | number): number {
  return typeof ip === "number" ? ip >>> 0 : parseIPv4(ip);
}

/** The network mask of a prefix length 0..32 as an unsigned 32-bit number. */
/** A netmask's host part (~mask) must be 0..01..1: 255.255.255.0 is one, 255.0.255.0 is not. */
export function isContiguousNetmask(mask: number): boolean {
  const host = ~mask >>> 0;
  return ((host & (host + 1)) >>> 0) === 0;
}

export function prefixMask(length: number): number {
  if (!Number.isInteger(length) || length < 0 || length > 32) {
    throw new RangeError(`prefix length must be an integer 0..32, got ${length}`);
  }
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

/** True when `ip` lies in `prefix/length` (addresses as dotted quads or u32). */
export function inPrefix(ip: string | number, prefix: string | number, length: number): boolean {
  const mask = prefixMask(length);
  return ((toU32(ip) & mask) >>> 0) === ((toU32(prefix) & mask) >>> 0);
}

/** The benchmarking range of RFC 2544 (198.18.0.0/15): the only addresses the lab may use. */
export const LAB_RANGE: { readonly prefix: string; readonly length: number } = Object.freeze({
  prefix: "198.18.0.0",
  length: 15,
});

/** True when `ip` is inside 198.18.0.0/15. */
export function isBenchmarkRange(ip: string | number): boolean {
  if (typeof ip === "string" && !isIPv4(ip)) return false;
  return inPrefix(ip, LAB_RANGE.prefix, LAB_RANGE.length);
}

/**
 * Why an address cannot be a VIP or a real server (any host-routable unicast address can), or
 * undefined when it can. Loopback, "this network", multicast, reserved and broadcast are refused.
 */
export function nonUnicastReason(ip: string | number): string | undefined {
  const u = toU32(ip);
  if (inPrefix(u, "0.0.0.0", 8)) return "is in 0.0.0.0/8 (\"this network\")";
  if (inPrefix(u, "127.0.0.0", 8)) return "is a loopback address (127.0.0.0/8)";
  if (inPrefix(u, "224.0.0.0", 4)) return "is a multicast address (224.0.0.0/4)";
  if (inPrefix(u, "240.0.0.0", 4)) return "is reserved or broadcast (240.0.0.0/4)";
  return undefined;
}
