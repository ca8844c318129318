// Scheduler flags, as ipvsadm's -b sets them for IPVS's hash schedulers (ip_vs_sh.c, ip_vs_mh.c). Each
// flag belongs to the scheduler its name starts with: "-port" hashes the client port with the client
// address (one client's connections spread over the reals); "-fallback" sends the clients of a real
// that is full to the next real of the table instead of to the fallback real (or a drop).

import type { SchedulerName } from "./types";

export const SCHEDULER_FLAGS = ["sh-port", "sh-fallback", "mh-port", "mh-fallback"] as const;
export type SchedulerFlag = (typeof SCHEDULER_FLAGS)[number];

/** The scheduler a flag belongs to. */
export function schedulerOfFlag(flag: SchedulerFlag): SchedulerName {
  return flag.startsWith("sh-") ? "sh" : "mh";
}

/** What the data plane's hash mode does with the flags (NativeService hashPort, hashFallback). */
export function hashOptionsOf(flags: readonly SchedulerFlag[]): { hashPort: boolean; hashFallback: boolean } {
  return { hashPort: flags.some((f) => f.endsWith("-port")), hashFallback: flags.some((f) => f.endsWith("-fallback")) };
}
