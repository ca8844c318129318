// Source hashing (ip_vs_sh.c): a client address always lands on the same real while the set of
// usable reals and their weights stay the same. The table has a prime length near 256 slots per
// real (a prime keeps `hash % length` even for weak hashes), shared by weight and interleaved so
// neighbouring hash values spread over the reals. For stability across changes use "mh".

import { nextPrime, prevPrime } from "./hash";
import { smoothSequence } from "./smooth";
import type { SchedulerInput, SchedulerPolicy, SelectionTable } from "./types";
import { usableReals } from "./usable";
import { apportion } from "./weights";

const SLOTS_PER_REAL = 256;
/** Largest prime below 65536, so the table length fits the same bounds as the other policies. */
const MAX_SH_SLOTS = prevPrime(65535);

/** Table length for n usable reals: the smallest prime >= 256 * n, at most MAX_SH_SLOTS. */
export function sourceHashTableLength(n: number): number {
  return Math.min(MAX_SH_SLOTS, nextPrime(SLOTS_PER_REAL * n));
}

export const sourceHash: SchedulerPolicy = {
  name: "sh",
  build(input: SchedulerInput): SelectionTable {
    const usable = usableReals(input);
    if (usable.length === 0) return { mode: "hash", slots: new Uint16Array(0) };
    const counts = apportion(usable.map((r) => r.weight), sourceHashTableLength(usable.length));
    return { mode: "hash", slots: Uint16Array.from(smoothSequence(counts), (i) => usable[i]!.index) };
  },
};
