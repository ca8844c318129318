// The test-facing contract of natlb's native packet functions (pure functions over bytes, no I/O).
// nativePacket.ts assigns the real addon to these types, so a drift in the addon's API breaks the
// test build instead of silently testing something else.

/** "partial" = the frame is CHECKSUM_PARTIAL (virtio-net NEEDS_CSUM): the L4 field holds the seed. */
export type Checksum = "complete" | "partial";

export type Result = { ok: true } | { ok: false; reason: string };

export type ParseResult =
  | {
      ok: true;
      protocol: number;
      src: string;
      dst: string;
      sport: number;
      dport: number;
      ttl: number;
      l3Offset: number;
      l4Offset: number;
      l4Length: number;
    }
  | { ok: false; reason: string };

export interface Endpoint {
  ip: string;
  port: number;
}

export interface PacketFunctions {
  parse(frame: Uint8Array): ParseResult;
  rewriteDestination(frame: Uint8Array, to: Endpoint, checksum: Checksum): Result;
  rewriteSource(frame: Uint8Array, from: Endpoint, checksum: Checksum): Result;
}

export type Side = "destination" | "source";

/** Calls the rewrite for one side. */
export function rewrite(packet: PacketFunctions, side: Side, frame: Uint8Array, target: Endpoint, mode: Checksum): Result {
  return side === "destination"
    ? packet.rewriteDestination(frame, target, mode)
    : packet.rewriteSource(frame, target, mode);
}
