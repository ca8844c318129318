// The frame every checker runs in: one result, at the latest when the timeout fires or the signal
// aborts, and the checker's resources released exactly once whichever comes first.

import { performance } from "node:perf_hooks";
import { isUpOutcome, type CheckOutcome, type CheckResult } from "./checker";

/** Ends the check; later calls do nothing. */
export type Finish = (outcome: CheckOutcome, reason: string) => void;

/**
 * Runs `start`, which begins the check and returns how to release what it opened. The result comes
 * from the first `finish` call, the timeout (`timeoutReason`) or the abort signal.
 */
export function boundedCheck(
  timeoutMs: number,
  signal: AbortSignal | undefined,
  start: (finish: Finish) => () => void,
  timeout: () => { outcome: CheckOutcome; reason: string } = () => ({ outcome: "timeout", reason: `no answer within ${timeoutMs} ms` }),
): Promise<CheckResult> {
  const started = performance.now();
  return new Promise<CheckResult>((resolve) => {
    if (signal?.aborted) {
      resolve({ up: false, outcome: "aborted", reason: "check cancelled", elapsedMs: 0 });
      return;
    }
    let release: (() => void) | undefined;
    let done = false;
    const finish: Finish = (outcome, reason) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      release?.();
      const elapsedMs = Math.round((performance.now() - started) * 1000) / 1000;
      resolve({ up: isUpOutcome(outcome), outcome, reason, elapsedMs });
    };
    const onAbort = () => finish("aborted", "check cancelled");
    const timer = setTimeout(() => {
      const { outcome, reason } = timeout();
      finish(outcome, reason);
    }, timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const cleanup = start(finish);
      if (done) cleanup();
      else release = cleanup;
    } catch (error) {
      // Synchronous throws are argument errors: report, do not crash the monitor.
      finish("error", error instanceof Error ? error.message : String(error));
    }
  });
}
