// Registry of scheduling policies by name.

import { ApiError } from "../errors";
import { leastConnection, neverQueue, shortestExpectedDelay, weightedLeastConnection } from "./leastConnections";
import { maglevHash } from "./mh";
import { randomPick } from "./random";
import { roundRobin } from "./rr";
import { sourceHash } from "./sh";
import { SCHEDULER_NAMES, type SchedulerName, type SchedulerPolicy } from "./types";
import { weightedRandom } from "./wrandom";
import { weightedRoundRobin } from "./wrr";

export * from "./types";
export { SCHEDULER_FLAGS, hashOptionsOf, schedulerOfFlag, type SchedulerFlag } from "./flags";
export { MAGLEV_TABLE_SIZE } from "./mh";
export { sourceHashTableLength } from "./sh";

const POLICIES: Readonly<Record<SchedulerName, SchedulerPolicy>> = {
  rr: roundRobin,
  wrr: weightedRoundRobin,
  random: randomPick,
  wrandom: weightedRandom,
  sh: sourceHash,
  mh: maglevHash,
  lc: leastConnection,
  wlc: weightedLeastConnection,
  sed: shortestExpectedDelay,
  nq: neverQueue,
};

export function isSchedulerName(name: unknown): name is SchedulerName {
  return typeof name === "string" && (SCHEDULER_NAMES as readonly string[]).includes(name);
}

/** The policy called `name`; throws ApiError naming the valid choices for an unknown name. */
export function schedulerFor(name: SchedulerName): SchedulerPolicy {
  if (!isSchedulerName(name)) {
    throw new ApiError(`unknown scheduler ${JSON.stringify(name)}: use one of ${SCHEDULER_NAMES.join(", ")}`, {
      code: "E_UNKNOWN_SCHEDULER",
    });
  }
  return POLICIES[name];
}
