// The contract between a scheduling policy and the native data plane. The data plane never calls
// JS per connection: a policy turns the real-server list into a selection table once (on start,
// reload, weight or health change) and native code indexes it for every new connection.

/** Every scheduler natlb knows, in the spirit of kernel IPVS's ip_vs_*.c modules. */
export const SCHEDULER_NAMES = ["rr", "wrr", "random", "wrandom", "sh", "mh", "lc", "wlc", "sed", "nq"] as const;

/**
 * rr: round robin; wrr: smooth weighted round robin; random / wrandom: (weighted) random;
 * sh: source hash; mh: Maglev hash (consistent, minimal disruption); lc, wlc, sed, nq: IPVS's least
 * connection family (the data plane reads each real's live connection counts at every pick).
 */
export type SchedulerName = (typeof SCHEDULER_NAMES)[number];

/** One real server as a scheduler sees it. Its position in the list is its index in the table. */
export interface SchedulerReal {
  readonly ip: string;
  readonly port: number;
  /** 0..65535; 0 means drained: no new connections. */
  readonly weight: number;
  /** Health state; a real that is not up gets no new connections. */
  readonly up: boolean;
}

export interface SchedulerInput {
  readonly reals: ReadonlyArray<SchedulerReal>;
  /** mh: mixed into each real's permutation (config mhSeed); instances with one seed build one table. Default 0. */
  readonly seed?: number;
}

/**
 * How native code picks a slot for a new connection:
 * - "cursor": slots[cursor++ % slots.length]
 * - "random": slots[random % slots.length]
 * - "hash":   slots[hash(client ip) % slots.length]
 * - "lc", "wlc", "sed", "nq": the slot whose real has the least load by IPVS's formula, from its
 *   active (A) and inactive (I) connections and its weight W: lc min 256A+I; wlc min (256A+I)/W;
 *   sed min (A+1)/W; nq the first with A = 0, else as sed. Ties go to the earlier slot.
 */
export type PickMode = "cursor" | "random" | "hash" | LeastConnectionMode;

/** The pick modes that read connection counts; each scheduler of that name uses its own mode. */
export const LEAST_CONNECTION_MODES = ["lc", "wlc", "sed", "nq"] as const;
export type LeastConnectionMode = (typeof LEAST_CONNECTION_MODES)[number];

export interface SelectionTable {
  readonly mode: PickMode;
  /** Indexes into `SchedulerInput.reals`. Empty when no real is usable: new connections are dropped. */
  readonly slots: Uint16Array;
  /** The least-connection modes: each slot's weight (1..65535). */
  readonly weights?: Uint16Array;
}

export interface SchedulerPolicy {
  readonly name: SchedulerName;
  build(input: SchedulerInput): SelectionTable;
}

/** Largest table any policy builds for cursor and random modes. */
export const MAX_TABLE_SLOTS = 65536;
