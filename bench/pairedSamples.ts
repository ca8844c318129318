// Reading samples back: one variant's values per round, and two variants compared round by round
// (both ran in the same round, minutes apart at most, so host noise largely cancels).
import type { MetricId, Sample } from "./labRounds";
import type { LabKind } from "./options";
import { summarize, type Summary } from "./stats";
import type { VariantId } from "./variants";

/** round -> value of `variant`'s `metric` in `lab`. */
export function valuesOf(samples: readonly Sample[], lab: LabKind, metric: MetricId, variant: VariantId): Map<number, number> {
  const m = new Map<number, number>();
  for (const s of samples) if (s.lab === lab && s.metric === metric && s.variant === variant) m.set(s.round, s.value);
  return m;
}

/** `ours` op `ref` per round where both have a value, summarized; null when no round has both. */
export function pairedSummary(
  samples: readonly Sample[],
  lab: LabKind,
  metric: MetricId,
  ours: VariantId,
  ref: VariantId,
  op: (a: number, b: number) => number,
): Summary | null {
  const theirs = valuesOf(samples, lab, metric, ref);
  const out: number[] = [];
  for (const [round, v] of valuesOf(samples, lab, metric, ours)) {
    const w = theirs.get(round);
    if (w !== undefined) out.push(op(v, w));
  }
  return summarize(out);
}

export const ratio = (a: number, b: number): number => (b === 0 ? NaN : a / b);
export const difference = (a: number, b: number): number => a - b;
