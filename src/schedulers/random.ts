// Random: every usable real once; native code picks a uniformly random slot.

import type { SchedulerInput, SchedulerPolicy, SelectionTable } from "./types";
import { usableReals } from "./usable";

export const randomPick: SchedulerPolicy = {
  name: "random",
  build(input: SchedulerInput): SelectionTable {
    return { mode: "random", slots: Uint16Array.from(usableReals(input), (r) => r.index) };
  },
};
