// Weighted round robin. Unlike ip_vs_wrr.c (which serves a heavy real in bursts) this uses nginx's
// smooth sequence, so 5:1:1 gives a a b a c a a and never five in a row. The cycle has
// sum(weights)/gcd slots; longer cycles are scaled down proportionally to MAX_TABLE_SLOTS.

import { smoothSequence } from "./smooth";
import { MAX_TABLE_SLOTS, type SchedulerInput, type SchedulerPolicy, type SelectionTable } from "./types";
import { usableReals } from "./usable";
import { fitWeights } from "./weights";

export const weightedRoundRobin: SchedulerPolicy = {
  name: "wrr",
  build(input: SchedulerInput): SelectionTable {
    const usable = usableReals(input);
    const weights = fitWeights(usable.map((r) => r.weight), MAX_TABLE_SLOTS);
    return { mode: "cursor", slots: Uint16Array.from(smoothSequence(weights), (i) => usable[i]!.index) };
  },
};
