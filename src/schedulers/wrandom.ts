// Weighted random: each usable real fills slots in proportion to its weight (sum/gcd slots, or
// MAX_TABLE_SLOTS apportioned by largest remainder when that is more); native picks one at random.

import { MAX_TABLE_SLOTS, type SchedulerInput, type SchedulerPolicy, type SelectionTable } from "./types";
import { usableReals } from "./usable";
import { fitWeights } from "./weights";

export const weightedRandom: SchedulerPolicy = {
  name: "wrandom",
  build(input: SchedulerInput): SelectionTable {
    const usable = usableReals(input);
    const counts = fitWeights(usable.map((r) => r.weight), MAX_TABLE_SLOTS);
    const slots = new Uint16Array(counts.reduce((a, c) => a + c, 0));
    let at = 0;
    counts.forEach((count, i) => {
      slots.fill(usable[i]!.index, at, at + count);
      at += count;
    });
    return { mode: "random", slots };
  },
};
