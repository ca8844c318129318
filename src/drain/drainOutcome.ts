// What a drain does when it ends, and what it reports: the same shape for `lb.drainReal()`, the
// control socket's answer and the drainFinished event.

/**
 * At the end of a drain (no connections left, or the deadline): "keep" leaves the real in its
 * service at weight 0; "remove" takes it out of the service (connections still open then go on as a
 * removed real's do, by the service's deadRealFlows); "reset" takes it out and ends its remaining
 * flows with a TCP reset to both ends (UDP flows just end), whatever deadRealFlows says.
 */
export const DRAIN_THENS = ["keep", "remove", "reset"] as const;
export type DrainThen = (typeof DRAIN_THENS)[number];

export interface DrainResult {
  /** `vip:port/protocol` */
  readonly service: string;
  /** `ip:port` */
  readonly real: string;
  /** Connections the real still had when the drain ended (0 unless the deadline came first). */
  readonly connectionsLeft: number;
  readonly deadlineHit: boolean;
  readonly then: DrainThen;
  /** What was done: as asked, or "gone" when the real had left the service before the end. */
  readonly done: "kept" | "removed" | "reset" | "gone";
  /** How long the drain took, ms. */
  readonly waitedMs: number;
}
