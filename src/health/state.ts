// The up/down state machine of one real server: `rise` consecutive successes bring it up, `fall`
// consecutive failures take it down. A refused connection (RST: nothing listens) is a definite
// answer rather than possible packet loss, so by default it takes the real down at once.

import type { CheckResult } from "./checker";

export interface HealthThresholds {
  readonly rise: number;
  readonly fall: number;
  /** A refused check takes an up real down immediately instead of counting towards `fall`. */
  readonly downOnRefused: boolean;
}

export class RealHealthState {
  private upNow: boolean;
  private successes = 0;
  private failures = 0;
  private last: string;

  constructor(
    private thresholds: HealthThresholds,
    initiallyUp: boolean,
  ) {
    this.upNow = initiallyUp;
    this.last = initiallyUp ? "not checked yet (assumed up)" : "not checked yet (assumed down)";
  }

  get up(): boolean {
    return this.upNow;
  }

  /** The reason given by the most recent check or signal. */
  get reason(): string {
    return this.last;
  }

  /** Consecutive successes (while down) or failures (while up) counted towards a change. */
  get streak(): number {
    return this.upNow ? this.failures : this.successes;
  }

  setThresholds(thresholds: HealthThresholds): void {
    this.thresholds = thresholds;
  }

  /** Feeds one check result; returns true when the state changed. */
  record(result: Pick<CheckResult, "up" | "outcome" | "reason">): boolean {
    this.last = result.reason;
    if (result.up) {
      this.failures = 0;
      if (this.upNow) return false;
      this.successes++;
      if (this.successes < this.thresholds.rise) return false;
      this.upNow = true;
      this.successes = 0;
      return true;
    }
    this.successes = 0;
    if (!this.upNow) return false;
    this.failures++;
    const definite = result.outcome === "refused" && this.thresholds.downOnRefused;
    if (!definite && this.failures < this.thresholds.fall) return false;
    this.upNow = false;
    this.failures = 0;
    return true;
  }

  /** A passive signal (e.g. from the data plane): down now; `rise` good checks bring it back. */
  markDown(reason: string): boolean {
    this.last = reason;
    this.successes = 0;
    this.failures = 0;
    if (!this.upNow) return false;
    this.upNow = false;
    return true;
  }
}
