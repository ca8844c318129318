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
 * Splits `total` slots among positive `weights` proportionally (Hamilton / largest-remainder
 * method), so each count is within one slot of its exact share. A weight too small for a whole
 * slot still gets one, taken from the count that most exceeds its own share. Counts sum to `total`.
 */
export function apportion(weights: readonly number[], total: number): number[] {
  const n = weights.length;
  if (n === 0) return [];
  if (total < n) throw new RangeError(`cannot give ${n} weights at least one slot each out of ${total}`);
  const sum = weights.reduce((a, w) => a + w, 0);
  // Products stay below 2^53 (65535 * 65537 * 256), so this integer arithmetic is exact.
  const counts = weights.map((w) => Math.floor((w * total) / sum));
  const order = weights.map((w, i) => ({ i, r: (w * total) % sum }));
  order.sort((x, y) => y.r - x.r || x.i - y.i);
  let left = total - counts.reduce((a, c) => a + c, 0);
  for (let k = 0; left > 0; k++, left--) counts[order[k]!.i]! += 1;

  for (let i = 0; i < n; i++) {
    if (counts[i]! > 0) continue;
    // surplus_j = counts_j - exact_j, compared in units of 1/sum to stay in integers.
    let donor = -1;
    for (let j = 0; j < n; j++) {
      if (counts[j]! < 2) continue;
      if (donor < 0 || counts[j]! * sum - weights[j]! * total > counts[donor]! * sum - weights[donor]! * total) donor = j;
    }
    counts[donor]! -= 1; // a donor exists: total >= n means some count is >= 2 while one is 0
    counts[i] = 1;
  }
  return counts;
}

/** Weights reduced by their gcd and, when they still add up to more than `cap`, scaled down to `cap`. */
export function fitWeights(weights: readonly number[], cap: number): number[] {
  const reduced = reduceWeights(weights);
  const sum = reduced.reduce((a, w) => a + w, 0);
  return sum <= cap ? reduced : reduceWeights(apportion(reduced, cap));
}
