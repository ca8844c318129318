// Slow start's arithmetic, free of clocks and I/O: how much of its weight a ramping real has at a
// given moment, and the scheduler input that gives it that share. The table is rebuilt once per step
// (not per connection), so the data plane keeps picking from a plain selection table.

import type { SchedulerName, SchedulerReal } from "../schedulers/types";

/** A ramp has this many steps, or one a second when slowStartS is shorter. */
export const SLOW_START_STEPS = 10;

/** The ramp's steps for a slow start of `slowStartS` seconds (each at least a second long). */
export function rampSteps(slowStartS: number): number {
  return Math.max(1, Math.min(SLOW_START_STEPS, Math.floor(slowStartS)));
}

/** One step's length, ms. */
export function rampStepMs(slowStartS: number): number {
  return (slowStartS * 1000) / rampSteps(slowStartS);
}

/**
 * The share of its full weight a real has `elapsedMs` into a ramp of `slowStartS` seconds: in step k
 * (0-based, of n) it is (k + 1) / (n + 1), so it starts small and never jumps to the whole weight
 * before the ramp ends; from slowStartS on, 1.
 */
export function rampFraction(elapsedMs: number, slowStartS: number): number {
  if (slowStartS <= 0 || elapsedMs >= slowStartS * 1000) return 1;
  const steps = rampSteps(slowStartS);
  const step = Math.min(steps - 1, Math.floor(Math.max(0, elapsedMs) / rampStepMs(slowStartS)));
  return (step + 1) / (steps + 1);
}

/** When the ramp's share next changes, ms after its start; undefined once it is over. */
export function nextRampChangeMs(elapsedMs: number, slowStartS: number): number | undefined {
  if (slowStartS <= 0 || elapsedMs >= slowStartS * 1000) return undefined;
  const stepMs = rampStepMs(slowStartS);
  return (Math.floor(Math.max(0, elapsedMs) / stepMs) + 1) * stepMs;
}

/**
 * Schedulers that ignore weights ramp as their weighted form while a ramp runs: with every real at
 * the same weight, wrr picks as rr, wrandom as random and wlc as lc, so nothing else changes.
 */
const WEIGHTED_FORM: Readonly<Partial<Record<SchedulerName, SchedulerName>>> = Object.freeze({ rr: "wrr", random: "wrandom", lc: "wlc" });

/** A real as the table is built from it, with the share of its weight it has now (1: not ramping). */
export interface RampingReal extends SchedulerReal {
  readonly fraction: number;
}

/**
 * The scheduler and reals a service's table is built with: unchanged when no real ramps; otherwise
 * every weight is scaled up (so a weight-1 real can hold a fraction of 1) and each ramping real gets
 * its share of its scaled weight, at least 1.
 */
export function rampedTableInput(scheduler: SchedulerName, reals: readonly RampingReal[]): { scheduler: SchedulerName; reals: SchedulerReal[] } {
  const plain = (r: RampingReal): SchedulerReal => ({ ip: r.ip, port: r.port, weight: r.weight, up: r.up });
  if (reals.every((r) => r.fraction >= 1 || r.weight === 0)) return { scheduler, reals: reals.map(plain) };
  const weighted = WEIGHTED_FORM[scheduler];
  const base = (r: RampingReal) => (weighted === undefined ? r.weight : r.weight > 0 ? 1 : 0);
  const largest = Math.max(...reals.map(base));
  const scale = largest * (SLOW_START_STEPS + 1) <= 65535 ? SLOW_START_STEPS + 1 : 1;
  return {
    scheduler: weighted ?? scheduler,
    reals: reals.map((r) => {
      const full = base(r) * scale;
      return { ...plain(r), weight: full === 0 || r.fraction >= 1 ? full : Math.max(1, Math.round(full * r.fraction)) };
    }),
  };
}

/** The weight status shows for a ramping real, in the real's own units (two decimals). */
export function effectiveWeight(weight: number, fraction: number): number {
  return Math.round(weight * fraction * 100) / 100;
}
