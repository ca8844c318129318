// Summaries of repeated measurements: median with the spread (min..max) and the values themselves.

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
  values: number[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** null for no values. */
export function summarize(values: readonly number[]): Summary | null {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return null;
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length, values: [...v] };
}

/** Number with `digits` significant digits, as text (no exponent for everyday magnitudes). */
export function formatNumber(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return "n/a";
  if (x === 0) return "0";
  const magnitude = Math.floor(Math.log10(Math.abs(x)));
  const decimals = Math.max(0, digits - 1 - magnitude);
  return x.toFixed(Math.min(decimals, 6));
}

/** "median (min..max)" */
export function formatSummary(s: Summary | null, digits = 3): string {
  if (s === null) return "n/a";
  if (s.n === 1) return formatNumber(s.median, digits);
  return `${formatNumber(s.median, digits)} (${formatNumber(s.min, digits)}..${formatNumber(s.max, digits)})`;
}
