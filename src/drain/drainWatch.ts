// Waiting for a drained real's connections to end: read its count (the data plane's per-real active
// and inactive counters, O(1)) every poll until it is 0 or the deadline comes. The clock is a
// parameter so the logic can be driven in tests without waiting.

import { setTimeout as sleep } from "node:timers/promises";

export interface DrainClock {
  /** Milliseconds, any origin (the deadline is on the same clock). */
  now(): number;
  /** Resolves after `ms`, or rejects when the signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const SYSTEM_DRAIN_CLOCK: DrainClock = Object.freeze({
  now: () => Date.now(),
  sleep: async (ms: number, signal?: AbortSignal) => {
    await sleep(ms, undefined, signal ? { signal } : {});
  },
});

/** How often the count is read while waiting, ms. */
export const DRAIN_POLL_MS = 200;

export interface DrainWatchOptions {
  /** The real's connections now (active + inactive). */
  readonly connections: () => number;
  /** On `clock`: give up waiting then. Absent: wait until the count is 0 (or the signal aborts). */
  readonly deadlineMs?: number;
  readonly clock?: DrainClock;
  readonly pollMs?: number;
  /** Called with the count when it is first read and whenever it changes. */
  readonly onProgress?: (connectionsLeft: number) => void;
  /** Aborts the wait (natlb stopping): the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

export interface DrainWatchResult {
  readonly connectionsLeft: number;
  /** True when the deadline came with connections left. */
  readonly deadlineHit: boolean;
}

export async function watchDrain(options: DrainWatchOptions): Promise<DrainWatchResult> {
  const clock = options.clock ?? SYSTEM_DRAIN_CLOCK;
  const pollMs = options.pollMs ?? DRAIN_POLL_MS;
  let reported: number | undefined;
  for (;;) {
    options.signal?.throwIfAborted();
    const left = options.connections();
    if (left !== reported) {
      reported = left;
      options.onProgress?.(left);
    }
    if (left === 0) return { connectionsLeft: 0, deadlineHit: false };
    const now = clock.now();
    if (options.deadlineMs !== undefined && now >= options.deadlineMs) return { connectionsLeft: left, deadlineHit: true };
    const wait = options.deadlineMs === undefined ? pollMs : Math.min(pollMs, options.deadlineMs - now);
    await clock.sleep(wait, options.signal);
  }
}
