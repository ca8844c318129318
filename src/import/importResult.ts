// What an import gives: a natlb configuration in the file's own form (defaults left to natlb), and
// every part of the source that has no natlb equivalent, so nothing is dropped silently.

import { isContiguousNetmask, isIPv4, parseIPv4 } from "../addresses";
import { CONFIG_LIMITS, type ForwardingMode, type Timeouts } from "../config";
import { SCHEDULER_FLAGS, schedulerOfFlag, type SchedulerFlag } from "../schedulers/flags";
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
  maxConns?: number;
  minConnsToResume?: number;
  /** Only when it differs from its service's (ipvsadm sets the method per real). */
  forwarding?: ForwardingMode;
}

export interface ImportedService {
  vip: string;
  port: number;
  protocol: "tcp" | "udp";
  scheduler: SchedulerName;
  schedulerFlags?: SchedulerFlag[];
  reals: ImportedReal[];
  fallback?: { ip: string; port: number };
  persistence?: { timeoutS: number; netmask: string };
  healthCheck?: Record<string, unknown>;
  /** Only when the source asks for direct routing; NAT is natlb's default. */
  forwarding?: ForwardingMode;
}

/** An LVS forwarding method (ipvsadm -m / -g / -i, keepalived lb_kind NAT / DR / TUN). */
export type LvsMethod = "NAT" | "DR" | "TUN";

/** natlb's forwarding for an LVS method, with a note where natlb has none (tunnelling). */
export function forwardingFromLvs(method: LvsMethod, where: string, notes: ImportNote[]): ForwardingMode {
  if (method === "DR") return "dr";
  if (method === "TUN") notes.push({ where, note: "IP tunnelling (LVS-TUN) has no natlb equivalent: imported as NAT" });
  return "nat";
}

/**
 * Direct routing hands the client's frame to the real unchanged, so the real serves the service port
 * (IPVS ignores a DR real's port): a `dr` real, and the fallback real of a `dr` service, get the
 * service's port, with a note where the source named another.
 */
export function fitPortsToForwarding(service: ImportedService, where: string, notes: ImportNote[]): void {
  const serviceMode = service.forwarding ?? "nat";
  const direct = [
    ...service.reals.filter((r) => (r.forwarding ?? serviceMode) === "dr"),
    ...(service.fallback && serviceMode === "dr" ? [service.fallback] : []),
  ];
  for (const endpoint of direct) {
    if (endpoint.port === service.port) continue;
    notes.push({
      where,
      note: `${endpoint.ip}:${endpoint.port} is a direct-routing real: it receives the service port ${service.port} unchanged (IPVS ignores its port too): imported with port ${service.port}`,
    });
    endpoint.port = service.port;
  }
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

/** IPVS's generic names of the scheduler flags (ipvsadm -b flag-1, flag-2): what sh and mh call them. */
const GENERIC_FLAGS = new Map([["flag-1", "fallback"], ["flag-2", "port"]]);

/**
 * Scheduler flags as ipvsadm -b and keepalived name them, for `scheduler`: the ones natlb has, and a
 * note for each other (a flag of another scheduler, flag-3, an unknown name).
 */
export function schedulerFlagsFromIpvs(scheduler: SchedulerName, names: readonly string[], where: string, notes: ImportNote[]): SchedulerFlag[] {
  const flags: SchedulerFlag[] = [];
  for (const name of names) {
    const generic = GENERIC_FLAGS.get(name);
    const flag = generic !== undefined ? `${scheduler}-${generic}` : name;
    if (!(SCHEDULER_FLAGS as readonly string[]).includes(flag)) {
      notes.push({ where, note: `scheduler flag ${name} has no natlb equivalent for ${scheduler}: not imported` });
    } else if (schedulerOfFlag(flag as SchedulerFlag) !== scheduler) {
      notes.push({ where, note: `scheduler flag ${name} belongs to ${schedulerOfFlag(flag as SchedulerFlag)}, and the scheduler is ${scheduler}: not imported` });
    } else if (!flags.includes(flag as SchedulerFlag)) {
      flags.push(flag as SchedulerFlag);
    }
  }
  return flags;
}

/**
 * A real's connection thresholds (ipvsadm -x/-y, keepalived uthreshold/lthreshold) as maxConns and
 * minConnsToResume: 0 or absent is no limit (and the default lower threshold), as in IPVS; a lower
 * threshold IPVS would refuse is noted and left out.
 */
/**
 * IPVS persistence (ipvsadm -p/-M, keepalived persistence_timeout/persistence_granularity) as natlb's
 * `persistence`; a value natlb would refuse is noted and the persistence left out.
 */
export function persistenceFromIpvs(
  timeoutText: string, netmaskText: string | undefined, names: { timeout: string; netmask: string }, where: string, notes: ImportNote[],
): { timeoutS: number; netmask: string } | undefined {
  const timeoutS = Number(timeoutText);
  if (!Number.isInteger(timeoutS) || timeoutS < 1 || timeoutS > CONFIG_LIMITS.maxPersistenceTimeoutSeconds) {
    notes.push({ where, note: `${names.timeout} ${timeoutText} is not 1..${CONFIG_LIMITS.maxPersistenceTimeoutSeconds} seconds: persistence not imported` });
    return undefined;
  }
  const netmask = netmaskText ?? "255.255.255.255";
  if (!isIPv4(netmask) || !isContiguousNetmask(parseIPv4(netmask))) {
    notes.push({ where, note: `${names.netmask} ${netmask} is not a contiguous IPv4 netmask: persistence not imported` });
    return undefined;
  }
  return { timeoutS, netmask };
}

export function limitsFromIpvs(
  upper: string | undefined, lower: string | undefined, names: { upper: string; lower: string }, where: string, notes: ImportNote[],
): { maxConns?: number; minConnsToResume?: number } {
  const valueOf = (text: string | undefined, name: string): number | undefined => {
    if (text === undefined) return undefined;
    const value = Number(text);
    if (Number.isInteger(value) && value >= 0 && value <= 4294967295) return value;
    notes.push({ where, note: `${name} ${text} is not a connection count: not imported` });
    return undefined;
  };
  const max = valueOf(upper, names.upper) || undefined;
  const min = valueOf(lower, names.lower) || undefined;
  if (min !== undefined && max === undefined) {
    notes.push({ where, note: `${names.lower} ${min} without ${names.upper}: IPVS ignores a lower threshold without an upper one; not imported` });
    return {};
  }
  if (min !== undefined && max !== undefined && min > max) {
    notes.push({ where, note: `${names.lower} ${min} is above ${names.upper} ${max}: IPVS refuses that; only ${names.upper} imported` });
    return { maxConns: max };
  }
  return { ...(max !== undefined ? { maxConns: max } : {}), ...(min !== undefined ? { minConnsToResume: min } : {}) };
}
