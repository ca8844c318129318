// Maglev hashing (Eisenbud et al., NSDI'16; kernel ip_vs_mh.c). Each real gets a permutation of
// the M table positions from two hashes of its "ip:port" (offset, skip); reals take turns claiming
// their next free preferred position until the table is full. A real's turns per round follow its
// weight. Because preferences depend only on a real's identity, removing one real mostly hands its
// own positions to others and leaves the rest in place.
// Instances behind ECMP must build the same table from the same reals: nothing here is per process,
// the reals take their turns in the order of their keys (not of the list, which API calls can change),
// and an optional seed (config mhSeed, shared by the instances) replaces the built-in hash seeds.

import { hash32 } from "./hash";
import type { SchedulerInput, SchedulerPolicy, SelectionTable } from "./types";
import { usableReals } from "./usable";
import { apportion, reduceWeights } from "./weights";

/** Table size: a prime (so every skip walks all positions), large enough for fine shares. */
export const MAGLEV_TABLE_SIZE = 65537;

const OFFSET_SEED = 0x811c9dc5;
const SKIP_SEED = 0x9e3779b9;

export const maglevHash: SchedulerPolicy = {
  name: "mh",
  build(input: SchedulerInput): SelectionTable {
    const usable = usableReals(input).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const seed = (input.seed ?? 0) >>> 0;
    const m = MAGLEV_TABLE_SIZE;
    if (usable.length === 0) return { mode: "hash", slots: new Uint16Array(0) };

    // Turns per round: weights over their gcd, scaled down if one round would exceed the table.
    let turns = reduceWeights(usable.map((r) => r.weight));
    if (turns.reduce((a, t) => a + t, 0) > m) turns = apportion(turns, m);

    const offset = usable.map((r) => hash32(r.key, (OFFSET_SEED ^ seed) >>> 0) % m);
    const skip = usable.map((r) => (hash32(r.key, (SKIP_SEED ^ seed) >>> 0) % (m - 1)) + 1);
    const next = usable.map((_, i) => offset[i]!); // each real's next preferred position
    const owner = new Int32Array(m).fill(-1);
    const slots = new Uint16Array(m);

    let filled = 0;
    while (filled < m) {
      for (let i = 0; i < usable.length && filled < m; i++) {
        for (let turn = 0; turn < turns[i]! && filled < m; turn++) {
          let c = next[i]!;
          while (owner[c] !== -1) {
            c += skip[i]!;
            if (c >= m) c -= m;
          }
          owner[c] = i;
          slots[c] = usable[i]!.index;
          next[i] = c;
          filled++;
        }
      }
    }
    return { mode: "hash", slots };
  },
};
