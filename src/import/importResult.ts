// What an import gives: a natlb configuration in the file's own form (defaults left to natlb), and
// every part of the source that has no natlb equivalent, so nothing is dropped silently.

import type { Timeouts } from "../config";
import { SCHEDULER_NAMES, type SchedulerName } from "../schedulers/types";

/** One thing the import could not carry over, or carried over differently. */
export interface ImportNote {
  /** Where in the source: `line 12`. */
  readonly where: string;
  readonly note: string;
}

export interface ImportedReal {
  ip: string;
  port: number;
  weight: number;
}

export interface ImportedService {
  vip: string;
  port: number;
  protocol: "tcp" | "udp";
  scheduler: SchedulerName;
  reals: ImportedReal[];
  healthCheck?: Record<string, unknown>;
}

export interface ImportResult {
  /** A configuration file's content: `{ "services": [...] }`, and the global timeouts the source sets, if any. */
  readonly config: { services: ImportedService[]; timeouts?: Partial<Timeouts> };
  readonly notes: ImportNote[];
}

/** The scheduler IPVS calls `name`, or the nearest natlb has, with a note when they differ. */
export function schedulerFromIpvs(name: string, where: string, notes: ImportNote[]): SchedulerName {
  if ((SCHEDULER_NAMES as readonly string[]).includes(name)) return name as SchedulerName;
  notes.push({ where, note: `scheduler "${name}" has no natlb equivalent: "wrr" is used; natlb has ${SCHEDULER_NAMES.join(", ")}` });
  return "wrr";
}

/** The config file text an import prints: the config, then nothing else (notes go elsewhere). */
export function importedConfigText(result: ImportResult): string {
  return `${JSON.stringify(result.config, null, 2)}\n`;
}
