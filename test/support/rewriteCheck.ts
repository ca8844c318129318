// Checks a rewritten frame against everything the contract promises, from scratch, and a reference
// rewrite (recomputes every checksum from nothing) so the checker itself can be shown to catch faults.

import {
  IPPROTO_UDP,
  checksumFieldOffset,
  ipv4Bytes,
  ipv4HeaderChecksum,
  pseudoHeaderSum,
  transportChecksum,
  transportVerifies,
} from "./checksum";
import { differingOffsets, readFrame, rewritableOffsets, segmentOf, toHex } from "./frames";
import type { Checksum, Endpoint, Side } from "./packetContract";

const hex16 = (v: number): string => `0x${v.toString(16).padStart(4, "0")}`;

/**
 * Everything wrong with `after` as the result of rewriting `before` on `side` to `target` with the
 * given checksum mode. Empty = correct. `before` must be a well-formed crafted frame.
 */
export function rewriteProblems(before: Uint8Array, after: Uint8Array, side: Side, target: Endpoint, mode: Checksum): string[] {
  const problems: string[] = [];
  if (after.length !== before.length) return [`length changed: ${before.length} -> ${after.length}`];

  const allowed = rewritableOffsets(before, side);
  const stray = differingOffsets(before, after).filter((i) => !allowed.has(i));
  if (stray.length > 0) problems.push(`bytes outside the rewritten fields changed at offsets ${stray.slice(0, 16).join(",")}`);

  const b = readFrame(before);
  const a = readFrame(after);
  const [addr, port, otherAddr, otherPort, beforeOtherAddr, beforeOtherPort] =
    side === "destination"
      ? [a.dst, a.dport, a.src, a.sport, b.src, b.sport]
      : [a.src, a.sport, a.dst, a.dport, b.dst, b.dport];
  if (addr !== target.ip) problems.push(`${side} address is ${addr}, want ${target.ip}`);
  if (port !== target.port) problems.push(`${side} port is ${port}, want ${target.port}`);
  if (otherAddr !== beforeOtherAddr) problems.push(`other address changed: ${beforeOtherAddr} -> ${otherAddr}`);
  if (otherPort !== beforeOtherPort) problems.push(`other port changed: ${beforeOtherPort} -> ${otherPort}`);
  if (a.ttl !== b.ttl - 1) problems.push(`ttl is ${a.ttl}, want ${b.ttl - 1}`);

  const ipWant = ipv4HeaderChecksum(after, a.l3Offset, a.ihlBytes);
  if (a.ipChecksum !== ipWant) problems.push(`IPv4 header checksum is ${hex16(a.ipChecksum)}, from scratch ${hex16(ipWant)}`);

  const segment = segmentOf(after);
  if (b.protocol === IPPROTO_UDP && b.l4Checksum === 0) {
    if (a.l4Checksum !== 0) problems.push(`UDP checksum 0 ("none") became ${hex16(a.l4Checksum)}`);
  } else if (mode === "complete") {
    if (!transportVerifies(a.src, a.dst, a.protocol, segment)) {
      const want = transportChecksum(a.src, a.dst, a.protocol, segment);
      problems.push(`complete L4 checksum ${hex16(a.l4Checksum)} does not verify (from scratch ${hex16(want)})`);
    }
    if (a.protocol === IPPROTO_UDP && a.l4Checksum === 0) problems.push("complete UDP checksum sent as 0 (RFC 768: 0xffff)");
  } else {
    const seed = pseudoHeaderSum(a.src, a.dst, a.protocol, a.l4Length);
    if (a.l4Checksum !== seed) problems.push(`partial seed is ${hex16(a.l4Checksum)}, pseudo-header sum from scratch ${hex16(seed)}`);
  }
  return problems;
}

/** A failure message that lets anyone replay the case. */
export function describeCase(before: Uint8Array, side: Side, target: Endpoint, mode: Checksum): string {
  return `rewrite ${side} to ${target.ip}:${target.port} (${mode}) of frame ${toHex(before)}`;
}

/** The rewrite done the slow way: set the fields, then recompute every checksum from scratch. */
export function referenceRewrite(before: Uint8Array, side: Side, target: Endpoint, mode: Checksum): Uint8Array {
  const f = before.slice();
  const v = readFrame(f);
  const ip = v.l3Offset;
  f[ip + 8] = v.ttl - 1;
  f.set(ipv4Bytes(target.ip), side === "destination" ? ip + 16 : ip + 12);
  const portAt = side === "destination" ? v.l4Offset + 2 : v.l4Offset;
  f[portAt] = target.port >>> 8;
  f[portAt + 1] = target.port & 0xff;
  const ipSum = ipv4HeaderChecksum(f, ip, v.ihlBytes);
  f[ip + 10] = ipSum >>> 8;
  f[ip + 11] = ipSum & 0xff;

  const n = readFrame(f);
  const field = n.l4Offset + checksumFieldOffset(n.protocol);
  let value: number;
  if (n.protocol === IPPROTO_UDP && v.l4Checksum === 0) value = 0;
  else if (mode === "partial") value = pseudoHeaderSum(n.src, n.dst, n.protocol, n.l4Length);
  else {
    value = transportChecksum(n.src, n.dst, n.protocol, segmentOf(f));
    if (n.protocol === IPPROTO_UDP && value === 0) value = 0xffff;
  }
  f[field] = value >>> 8;
  f[field + 1] = value & 0xff;
  return f;
}
