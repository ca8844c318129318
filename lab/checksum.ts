// Internet checksum (RFC 1071), written here so the lab verifies packets independently of the
// data plane's own checksum code.

/** 32-bit accumulator of 16-bit big-endian words of buf[start, end), odd byte padded with zero. */
export function sumWords(buf: Uint8Array, start: number, end: number, acc = 0): number {
  let sum = acc;
  let i = start;
  for (; i + 1 < end; i += 2) {
    sum += ((buf[i] as number) << 8) | (buf[i + 1] as number);
    // Fold early so the accumulator stays well inside double-precision integers.
    if (sum > 0x7fffffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  }
  if (i < end) sum += (buf[i] as number) << 8;
  return sum;
}

/** Folds a 32-bit accumulator to 16 bits with end-around carry (not complemented). */
export function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum field value for data whose word sum is `sum`: ~fold(sum). */
export function complement(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/** Ones' complement equality: 0x0000 and 0xffff are the two forms of zero. */
export function onesEqual(a: number, b: number): boolean {
  const n = (x: number): number => (x === 0xffff ? 0 : x);
  return n(a & 0xffff) === n(b & 0xffff);
}

/** True when the IPv4 header at `offset` (ihl bytes) carries a correct header checksum. */
export function ipv4HeaderChecksumOk(buf: Uint8Array, offset: number, ihl: number): boolean {
  return fold(sumWords(buf, offset, offset + ihl)) === 0xffff;
}

/**
 * Word sum of the IPv4 pseudo-header: source, destination (4 bytes each at srcOffset/dstOffset),
 * zero + protocol, and L4 length.
 */
export function pseudoHeaderSum(buf: Uint8Array, srcOffset: number, dstOffset: number, protocol: number, l4Length: number): number {
  let sum = sumWords(buf, srcOffset, srcOffset + 4);
  sum = sumWords(buf, dstOffset, dstOffset + 4, sum);
  return sum + protocol + l4Length;
}

/**
 * The value a CHECKSUM_PARTIAL frame carries in its TCP/UDP checksum field: the folded pseudo-header
 * sum, NOT complemented (the device, or the kernel on egress, completes it over the segment).
 */
export function pseudoHeaderSeed(buf: Uint8Array, srcOffset: number, dstOffset: number, protocol: number, l4Length: number): number {
  return fold(pseudoHeaderSum(buf, srcOffset, dstOffset, protocol, l4Length));
}
