// One attempt of a probe or load tool (a short connection, a UDP request) with its own time bound.
import { elapsedMs } from './monotonicClock';

/** How an attempt ended: its time in ms, or why it failed ("timeout", an errno code, a bad answer). */
export type AttemptResult = number | string;

/**
 * Runs one attempt: `start` opens what it needs and returns what closes it; it calls `finish` with the
 * result (`elapsed()` for a success). The first result counts, "timeout" when none comes within
 * `timeoutMs`; then the attempt is closed.
 */
export function timedAttempt(
  timeoutMs: number,
  start: (finish: (result: AttemptResult) => void, elapsed: () => number) => () => void,
): Promise<AttemptResult> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    let settled = false;
    let close: (() => void) | undefined;
    const finish = (result: AttemptResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      close?.();
      resolve(result);
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    close = start(finish, () => elapsedMs(t0));
    // A `start` that finished the attempt before it returned had nothing to close yet.
    if (settled) close();
  });
}
