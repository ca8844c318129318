// IPVS's least-connection family (ip_vs_lc.c, ip_vs_wlc.c, ip_vs_sed.c, ip_vs_nq.c). The choice
// depends on connection counts that change with every connection, so no table can be computed ahead:
// the policy lists the usable reals and their weights, and the data plane applies the formula
// (PickMode) to the counts it keeps (native/engine/service_table.cc, pickLeastLoaded).

import type { LeastConnectionMode, SchedulerInput, SchedulerPolicy, SelectionTable } from "./types";
import { usableReals } from "./usable";

function leastConnections(name: LeastConnectionMode): SchedulerPolicy {
  return {
    name,
    build(input: SchedulerInput): SelectionTable {
      const usable = usableReals(input);
      return { mode: name, slots: Uint16Array.from(usable, (r) => r.index), weights: Uint16Array.from(usable, (r) => r.weight) };
    },
  };
}

/** lc: fewest connections, an active one counting 256 inactive ones; weights only decide usable or not. */
export const leastConnection = leastConnections("lc");
/** wlc (IPVS's default): fewest connections per unit of weight. */
export const weightedLeastConnection = leastConnections("wlc");
/** sed: shortest expected delay, (active + 1) / weight. */
export const shortestExpectedDelay = leastConnections("sed");
/** nq: never queue: an idle real first, else as sed. */
export const neverQueue = leastConnections("nq");
