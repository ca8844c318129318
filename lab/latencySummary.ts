// The latency figures the lab's load and probe tools report for their successful attempts.

export interface LatencySummary {
  median: number;
  p90: number;
  min: number;
  max: number;
}

/** The `p`th percentile (0..100) of ascending `sorted`, nearest rank; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

/** Median, p90, min and max of `samplesMs`, to the microsecond; null when there are none. */
export function latencySummary(samplesMs: readonly number[]): LatencySummary | null {
  if (samplesMs.length === 0) return null;
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const at = (p: number): number => Math.round(percentile(sorted, p) * 1000) / 1000;
  return { median: at(50), p90: at(90), min: at(0), max: at(100) };
}
