// Reference Internet checksums (RFC 1071), written from scratch for the tests so that natlb's native
// code is checked against an independent implementation. Slow and obvious on purpose.

/** IPv4 protocol numbers the tests use. */
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/**
 * Ones' complement sum of `data[start, end)` as big-endian 16-bit words (an odd last byte is padded
 * with a zero byte), added to `initial`, folded to 16 bits and NOT complemented.
 * The sum of anything that is not all zeros is never 0x0000 (the fold keeps ones' complement -0).
 */
export function onesComplementSum(data: Uint8Array, start = 0, end = data.length, initial = 0): number {
  if (start < 0 || end > data.length || start > end) {
    throw new RangeError(`onesComplementSum: range [${start}, ${end}) outside 0..${data.length}`);
  }
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (i < end) sum += data[i]! << 8;
  return fold(sum);
}

/** Folds a non-negative integer (< 2^53) to 16 bits with end-around carry. */
export function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** Ones' complement addition of 16-bit values. */
export function onesAdd(...values: number[]): number {
  return fold(values.reduce((a, v) => a + (v & 0xffff), 0));
}

/** The RFC 1071 checksum of a byte range: the complement of its ones' complement sum. */
export function internetChecksum(data: Uint8Array, start = 0, end = data.length, initial = 0): number {
  return ~onesComplementSum(data, start, end, initial) & 0xffff;
}

/** Parses dotted-quad IPv4 text into 4 bytes; throws on anything else. */
export function ipv4Bytes(ip: string): Uint8Array {
  const parts = ip.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new TypeError(`not a dotted-quad IPv4 address: "${ip}"`);
  }
  return Uint8Array.from(parts.map(Number));
}

/** Formats 4 bytes at `offset` as dotted-quad text. */
export function ipv4Text(data: Uint8Array, offset = 0): string {
  return `${data[offset]}.${data[offset + 1]}.${data[offset + 2]}.${data[offset + 3]}`;
}

/**
 * The IPv4 header checksum computed from scratch over `ihlBytes` bytes at `l3Offset`, treating the
 * checksum field (bytes 10-11) as zero.
 */
export function ipv4HeaderChecksum(frame: Uint8Array, l3Offset: number, ihlBytes: number): number {
  const header = frame.slice(l3Offset, l3Offset + ihlBytes);
  if (header.length !== ihlBytes) throw new RangeError("ipv4HeaderChecksum: header runs past the frame");
  header[10] = 0;
  header[11] = 0;
  return internetChecksum(header);
}

/**
 * Folded, non-complemented sum of the TCP/UDP pseudo-header (src, dst, zero, protocol, L4 length):
 * exactly the seed Linux leaves in the checksum field of a CHECKSUM_PARTIAL frame.
 */
export function pseudoHeaderSum(src: string, dst: string, protocol: number, l4Length: number): number {
  const pseudo = new Uint8Array(12);
  pseudo.set(ipv4Bytes(src), 0);
  pseudo.set(ipv4Bytes(dst), 4);
  pseudo[8] = 0;
  pseudo[9] = protocol;
  pseudo[10] = (l4Length >>> 8) & 0xff;
  pseudo[11] = l4Length & 0xff;
  return onesComplementSum(pseudo);
}

/**
 * The complete TCP/UDP checksum computed from scratch for `segment` (L4 header + payload) under the
 * given pseudo-header, treating the segment's checksum field as zero. Raw value: a UDP sender must
 * still map a result of 0 to 0xFFFF (see udpWireChecksum).
 */
export function transportChecksum(src: string, dst: string, protocol: number, segment: Uint8Array): number {
  const copy = segment.slice();
  const field = checksumFieldOffset(protocol);
  copy[field] = 0;
  copy[field + 1] = 0;
  return internetChecksum(copy, 0, copy.length, pseudoHeaderSum(src, dst, protocol, copy.length));
}

/** The value a UDP sender puts on the wire for a complete checksum (RFC 768: 0 is sent as 0xFFFF). */
export function udpWireChecksum(src: string, dst: string, segment: Uint8Array): number {
  const c = transportChecksum(src, dst, IPPROTO_UDP, segment);
  return c === 0 ? 0xffff : c;
}

/**
 * Whether `segment`, including the checksum it carries, verifies under the pseudo-header: the ones'
 * complement sum of pseudo-header + segment must be 0xFFFF (either representation of zero in the field
 * is accepted, as every receiver does).
 */
export function transportVerifies(src: string, dst: string, protocol: number, segment: Uint8Array): boolean {
  return onesComplementSum(segment, 0, segment.length, pseudoHeaderSum(src, dst, protocol, segment.length)) === 0xffff;
}

/** Offset of the checksum field inside a TCP or UDP header. */
export function checksumFieldOffset(protocol: number): number {
  if (protocol === IPPROTO_TCP) return 16;
  if (protocol === IPPROTO_UDP) return 6;
  throw new RangeError(`no transport checksum for protocol ${protocol}`);
}
