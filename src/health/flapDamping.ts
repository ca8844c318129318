// Flap damping: a real whose state keeps changing is worse than a real that is down, because every
// change moves clients to it and away again. After `flaps` changes within `windowS`, a real that
// would come up stays down for `holdDownS`, doubled each time it happens again (up to
// `maxHoldDownS`); the doubling is forgotten once the real has been stable for a whole maximum
// hold-down.

import type { FlapDampingConfig } from "../config";

export class FlapDamping {
  /** Times (ms) of the recent state changes, oldest first. */
  private changes: number[] = [];
  private holds = 0;
  private heldUntil = 0;
  private lastHoldEnd = 0;

  constructor(private config: FlapDampingConfig) {}

  setConfig(config: FlapDampingConfig): void {
    this.config = config;
  }

  /** Notes a state change at `now`. */
  recordChange(now: number): void {
    this.changes.push(now);
    this.forgetOld(now);
  }

  /** State changes within the window, as of `now`. */
  recentChanges(now: number): number {
    this.forgetOld(now);
    return this.changes.length;
  }

  /** The end of the hold-down in force at `now` (ms), or undefined. */
  holdDownUntil(now: number): number | undefined {
    return now < this.heldUntil ? this.heldUntil : undefined;
  }

  /**
   * The real passed its checks and would come up at `now`: returns the hold-down end when it must
   * stay down instead (starting a new hold-down if it has flapped too often).
   */
  holdBeforeUp(now: number): number | undefined {
    if (now < this.heldUntil) return this.heldUntil;
    const { flaps, holdDownS, maxHoldDownS } = this.config;
    if (this.holds > 0 && now - this.lastHoldEnd >= maxHoldDownS * 1000) this.holds = 0;
    // Coming up would be one more change.
    if (this.recentChanges(now) + 1 < flaps) return undefined;
    const holdMs = Math.min(holdDownS * 2 ** this.holds, maxHoldDownS) * 1000;
    this.holds += 1;
    this.heldUntil = now + holdMs;
    this.lastHoldEnd = this.heldUntil;
    this.changes = [];  // the hold-down is the answer to these; count afresh after it
    return this.heldUntil;
  }

  private forgetOld(now: number): void {
    const since = now - this.config.windowS * 1000;
    while (this.changes.length > 0 && this.changes[0]! <= since) this.changes.shift();
  }
}
