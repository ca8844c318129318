// Round robin (ip_vs_rr.c): every usable real once, in order; weights only decide usable or not.

import type { SchedulerInput, SchedulerPolicy, SelectionTable } from "./types";
import { usableReals } from "./usable";

export const roundRobin: SchedulerPolicy = {
  name: "rr",
  build(input: SchedulerInput): SelectionTable {
    return { mode: "cursor", slots: Uint16Array.from(usableReals(input), (r) => r.index) };
  },
};
