// The contract between a scheduling policy and the native data plane. The data plane never calls
// JS per connection: a policy turns the real-server list into a selection table once (on start,
// reload, weight or health change) and native code indexes it for every new connection.

/** Every scheduler natlb knows, in the spirit of kernel IPVS's ip_vs_*.c modules. */
export const SCHEDULER_NAMES = ["rr", "wrr", "random", "wrandom", "sh", "mh"] as const;

/**
 * rr: round robin; wrr: smooth weighted round robin; random / wrandom: (weighted) random;
 * sh: source hash; mh: Maglev hash (consistent, minimal disruption).
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
}

/**
 * How native code picks a slot for a new connection:
 * - "cursor": slots[cursor++ % slots.length]
 * - "random": slots[random % slots.length]
 * - "hash":   slots[hash(client ip) % slots.length]
 */
export type PickMode = "cursor" | "random" | "hash";

export interface SelectionTable {
  readonly mode: PickMode;
  /** Indexes into `SchedulerInput.reals`. Empty when no real is usable: new connections are dropped. */
  readonly slots: Uint16Array;
}

export interface SchedulerPolicy {
  readonly name: SchedulerName;
  build(input: SchedulerInput): SelectionTable;
}

/** Largest table any policy builds for cursor and random modes. */
export const MAX_TABLE_SLOTS = 65536;
