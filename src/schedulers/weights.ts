// Integer arithmetic on weights: gcd reduction and proportional apportionment into a fixed number
// of slots.

export function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Divides every weight by their greatest common divisor (all weights must be positive). */
export function reduceWeights(weights: readonly number[]): number[] {
  const g = weights.reduce((acc, w) => gcd(acc, w), 0);
  return g <= 1 ? weights.slice() : weights.map((w) => w / g);
}

/**
 * Splits `total` slots among positive `weights` proportionally, every weight getting at least one
 * slot (Hamilton / largest-remainder method over the slots left after that minimum). The counts
 * sum to exactly `total`; each deviates from the exact share by less than two slots.
 */
export function apportion(weights: readonly number[], total: number): number[] {
  const n = weights.length;
  if (n === 0) return [];
  if (total < n) throw new RangeError(`cannot give ${n} weights at least one slot each out of ${total}`);
  const spare = total - n;
  const sum = weights.reduce((a, w) => a + w, 0);
  // Products stay below 2^53 (65535 * 65536 * 256), so this integer arithmetic is exact.
  const counts = weights.map((w) => 1 + Math.floor((w * spare) / sum));
  const remainders = weights.map((w, i) => ({ i, r: (w * spare) % sum }));
  let left = total - counts.reduce((a, c) => a + c, 0);
  remainders.sort((x, y) => y.r - x.r || x.i - y.i);
  for (let k = 0; left > 0; k++, left--) counts[remainders[k]!.i]! += 1;
  return counts;
}

/** Weights reduced by their gcd and, when they still add up to more than `cap`, scaled down to `cap`. */
export function fitWeights(weights: readonly number[], cap: number): number[] {
  const reduced = reduceWeights(weights);
  const sum = reduced.reduce((a, w) => a + w, 0);
  return sum <= cap ? reduced : reduceWeights(apportion(reduced, cap));
}
