// Runs the native functions on a copy of a frame inside a guarded buffer and reports what happened,
// without ever letting a throw escape (a throw is itself a finding).

import { IPPROTO_TCP, IPPROTO_UDP } from "./checksum";
import { GuardedFrame, buildFrame, routerAlertOptions, type CraftedChecksum, type FrameSpec } from "./frames";
import { rewrite, type Checksum, type Endpoint, type PacketFunctions, type ParseResult, type Result, type Side } from "./packetContract";
import type { SeededRandom } from "./random";

export interface RewriteRun {
  result: Result | undefined;
  thrown: unknown;
  /** The frame bytes after the call (a copy). */
  after: Uint8Array;
  guardsIntact: boolean;
}

export function runRewrite(packet: PacketFunctions, before: Uint8Array, side: Side, target: Endpoint, mode: Checksum): RewriteRun {
  const g = new GuardedFrame(before);
  let result: Result | undefined;
  let thrown: unknown;
  try {
    result = rewrite(packet, side, g.view, target, mode);
  } catch (e) {
    thrown = e;
  }
  return { result, thrown, after: g.view.slice(), guardsIntact: g.guardsIntact() };
}

export interface ParseRun {
  result: ParseResult | undefined;
  thrown: unknown;
  unchanged: boolean;
  guardsIntact: boolean;
}

export function runParse(packet: PacketFunctions, frame: Uint8Array): ParseRun {
  const g = new GuardedFrame(frame);
  let result: ParseResult | undefined;
  let thrown: unknown;
  try {
    result = packet.parse(g.view);
  } catch (e) {
    thrown = e;
  }
  return { result, thrown, unchanged: Buffer.compare(g.view, frame) === 0, guardsIntact: g.guardsIntact() };
}

/**
 * Problems with how a bad frame was handled: it must be refused with a non-empty reason (matching
 * `reason` if given), not throw, and stay byte-for-byte unchanged. Checks both sides and both modes.
 */
export function refusalProblems(packet: PacketFunctions, frame: Uint8Array, reason?: RegExp): string[] {
  const problems: string[] = [];
  const target: Endpoint = { ip: "198.18.99.99", port: 4242 };
  for (const side of ["destination", "source"] as const) {
    for (const mode of ["complete", "partial"] as const) {
      const run = runRewrite(packet, frame, side, target, mode);
      const tag = `${side}/${mode}`;
      if (run.thrown !== undefined) problems.push(`${tag}: threw ${String(run.thrown)}`);
      else if (run.result === undefined || run.result.ok !== false) problems.push(`${tag}: not refused (${JSON.stringify(run.result)})`);
      else if (typeof run.result.reason !== "string" || run.result.reason.length === 0) problems.push(`${tag}: refused without a reason`);
      else if (reason && !reason.test(run.result.reason)) problems.push(`${tag}: reason "${run.result.reason}" does not match ${reason}`);
      if (Buffer.compare(run.after, frame) !== 0) problems.push(`${tag}: refused frame was modified`);
      if (!run.guardsIntact) problems.push(`${tag}: wrote outside the frame`);
    }
  }
  return problems;
}

/** Problems with how parse handled a bad frame: ok:false with a reason, no throw, no write. */
export function parseRefusalProblems(packet: PacketFunctions, frame: Uint8Array, reason?: RegExp): string[] {
  const run = runParse(packet, frame);
  const problems: string[] = [];
  if (run.thrown !== undefined) problems.push(`parse threw ${String(run.thrown)}`);
  else if (run.result === undefined || run.result.ok !== false) problems.push(`parse did not refuse (${JSON.stringify(run.result)})`);
  else if (typeof run.result.reason !== "string" || run.result.reason.length === 0) problems.push("parse refused without a reason");
  else if (reason && !reason.test(run.result.reason)) problems.push(`parse reason "${run.result.reason}" does not match ${reason}`);
  if (!run.unchanged || !run.guardsIntact) problems.push("parse wrote to memory");
  return problems;
}

/** A random well-formed TCP/UDP frame spec: any addresses/ports, 0-40 B of IP options, odd and even payloads. */
export function randomFrameSpec(rng: SeededRandom, checksum: CraftedChecksum, maxPayload = 1500): FrameSpec {
  const protocol = rng.pick([IPPROTO_TCP, IPPROTO_UDP]);
  const optionWords = rng.chance(0.3) ? rng.int(1, 10) : 0;
  const spec: FrameSpec = {
    src: rng.ipv4(),
    dst: rng.ipv4(),
    protocol,
    sport: rng.port(),
    dport: rng.port(),
    ttl: rng.int(2, 255),
    tos: rng.int(0, 255),
    identification: rng.int(0, 0xffff),
    flags: rng.pick([0, 0b010]),
    payload: rng.bytes(rng.chance(0.1) ? rng.int(0, 3) : rng.int(0, maxPayload)),
    checksum,
  };
  if (optionWords > 0) spec.ipOptions = routerAlertOptions(optionWords);
  if (protocol === IPPROTO_TCP && rng.chance(0.5)) spec.tcpOptions = timestampOption(rng);
  return spec;
}

/** NOP, NOP, TCP timestamps (12 bytes), as Linux sends on every segment. */
export function timestampOption(rng: SeededRandom): Uint8Array {
  const o = new Uint8Array(12);
  o.set([0x01, 0x01, 0x08, 0x0a], 0);
  o.set(rng.bytes(8), 4);
  return o;
}

export function randomFrame(rng: SeededRandom, checksum: CraftedChecksum, maxPayload = 1500): Uint8Array {
  return buildFrame(randomFrameSpec(rng, checksum, maxPayload));
}
