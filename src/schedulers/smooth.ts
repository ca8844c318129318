// Smooth weighted round robin (nginx, ngx_http_upstream_get_peer): every step each peer gains its
// weight, the richest is picked and pays the total. Over sum(weights) steps each peer is picked
// exactly `weight` times, spread out as evenly as possible (5:1:1 -> a a b a c a a).

/** The smooth WRR order of positions 0..weights.length-1, of length sum(weights). */
export function smoothSequence(weights: readonly number[]): number[] {
  const total = weights.reduce((a, w) => a + w, 0);
  const current = new Array<number>(weights.length).fill(0);
  const sequence = new Array<number>(total);
  for (let step = 0; step < total; step++) {
    let best = 0;
    for (let i = 0; i < weights.length; i++) {
      current[i]! += weights[i]!;
      if (current[i]! > current[best]!) best = i;
    }
    current[best]! -= total;
    sequence[step] = best;
  }
  return sequence;
}
