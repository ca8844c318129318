// What natlb counts per real server and per service, like `ipvsadm -L --stats` (Conns, InPkts,
// OutPkts, InBytes, OutBytes) and `--rate` (CPS, InPPS, OutPPS, InBPS, OutBPS). The names and their
// order are the engine's (native/engine/real_stats.h: kRealStatNames).

export const TRAFFIC_COUNT_NAMES = ["connections", "packetsIn", "packetsOut", "bytesIn", "bytesOut"] as const;
export type TrafficCountName = (typeof TRAFFIC_COUNT_NAMES)[number];

/**
 * Totals since natlb started. `in` is client -> real, `out` real -> client; bytes are IP bytes (headers
 * included); a packet is a frame as natlb or the kernel fast path handled it (a GSO super-frame counts
 * once, as IPVS counts an skb); connections are the flows created.
 */
export type TrafficCounts = Record<TrafficCountName, number>;

/** Per second, an exponential average over periodic samples (src/stats/rateEstimator.ts). */
export interface TrafficRates {
  connectionsPerSecond: number;
  packetsInPerSecond: number;
  packetsOutPerSecond: number;
  bytesInPerSecond: number;
  bytesOutPerSecond: number;
}

/** Each count's rate field. */
export const RATE_NAMES = {
  connections: "connectionsPerSecond",
  packetsIn: "packetsInPerSecond",
  packetsOut: "packetsOutPerSecond",
  bytesIn: "bytesInPerSecond",
  bytesOut: "bytesOutPerSecond",
} as const satisfies Record<TrafficCountName, keyof TrafficRates>;

export function zeroCounts(): TrafficCounts {
  return { connections: 0, packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0 };
}

export function addCounts(into: TrafficCounts, more: Readonly<TrafficCounts>): TrafficCounts {
  for (const name of TRAFFIC_COUNT_NAMES) into[name] += more[name];
  return into;
}
