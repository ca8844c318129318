// The up/down state machine of one real server: `rise` consecutive successes bring it up, `fall`
// consecutive failures take it down. A refused connection (RST: nothing listens) is a definite
// answer rather than possible packet loss, so by default it takes the real down at once.

import type { FlapDampingConfig } from "../config";
import type { CheckResult } from "./checker";
import { FlapDamping } from "./flapDamping";

export interface HealthThresholds {
  readonly rise: number;
  readonly fall: number;
  /** A refused check takes an up real down immediately instead of counting towards `fall`. */
  readonly downOnRefused: boolean;
  /** Off when undefined. */
  readonly flapDamping?: FlapDampingConfig | undefined;
}

export class RealHealthState {
  private upNow: boolean;
  private successes = 0;
  private failures = 0;
  private last: string;
  private damping: FlapDamping | undefined;

  constructor(
    private thresholds: HealthThresholds,
    initiallyUp: boolean,
    /** Milliseconds; tests pass their own. */
    private readonly clock: () => number = Date.now,
  ) {
    this.upNow = initiallyUp;
    this.last = initiallyUp ? "not checked yet (assumed up)" : "not checked yet (assumed down)";
    this.damping = thresholds.flapDamping ? new FlapDamping(thresholds.flapDamping) : undefined;
  }

  /** State changes within the flap-damping window (0 when damping is off). */
  get recentChanges(): number {
    return this.damping?.recentChanges(this.clock()) ?? 0;
  }

  /** When a flap-damping hold-down ends (ms since the epoch), while one is in force. */
  get heldDownUntil(): number | undefined {
    return this.damping?.holdDownUntil(this.clock());
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
    if (!thresholds.flapDamping) this.damping = undefined;
    else if (this.damping) this.damping.setConfig(thresholds.flapDamping);
    else this.damping = new FlapDamping(thresholds.flapDamping);
  }

  /** Feeds one check result; returns true when the state changed. */
  record(result: Pick<CheckResult, "up" | "outcome" | "reason">): boolean {
    this.last = result.reason;
    if (result.up) {
      this.failures = 0;
      if (this.upNow) return false;
      this.successes++;
      if (this.successes < this.thresholds.rise) return false;
      const now = this.clock();
      const heldUntil = this.damping?.holdBeforeUp(now);
      if (heldUntil !== undefined) {
        this.last = `flapping: held down until ${new Date(heldUntil).toISOString()} (${Math.ceil((heldUntil - now) / 1000)} s more); last check: ${result.reason}`;
        return false;
      }
      this.upNow = true;
      this.successes = 0;
      this.damping?.recordChange(now);
      return true;
    }
    this.successes = 0;
    if (!this.upNow) return false;
    this.failures++;
    const definite = result.outcome === "refused" && this.thresholds.downOnRefused;
    if (!definite && this.failures < this.thresholds.fall) return false;
    this.upNow = false;
    this.failures = 0;
    this.damping?.recordChange(this.clock());
    return true;
  }

  /** A passive signal (e.g. from the data plane): down now; `rise` good checks bring it back. */
  markDown(reason: string): boolean {
    this.last = reason;
    this.successes = 0;
    this.failures = 0;
    if (!this.upNow) return false;
    this.upNow = false;
    this.damping?.recordChange(this.clock());
    return true;
  }
}
