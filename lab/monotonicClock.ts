// Durations measured by the tools: on the monotonic clock (process.hrtime), which a wall-clock step
// does not move.

/** Milliseconds since `t0`, a process.hrtime.bigint() reading. */
export function elapsedMs(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}
