export { watchDrain, SYSTEM_DRAIN_CLOCK, DRAIN_POLL_MS } from "./drainWatch";
export type { DrainClock, DrainWatchOptions, DrainWatchResult } from "./drainWatch";
export { DRAIN_THENS } from "./drainOutcome";
export type { DrainThen, DrainResult } from "./drainOutcome";
