// Runs health checks for many real servers and reports up/down changes. Each real has its own
// chain of setTimeout calls (the next check is scheduled when the previous one finished, so slow
// checks never pile up the way setInterval would) and its own RealHealthState.

import { performance } from "node:perf_hooks";
import type { HealthCheckTiming } from "../config";
import { ApiError } from "../errors";
import { TcpHealthChecker, type CheckResult, type HealthChecker, type HealthTarget } from "./checker";
import { RealHealthState } from "./state";

/** A real server as the monitor knows it: its address and the service it belongs to. */
export interface RealRef {
  readonly ip: string;
  readonly port: number;
}

export interface HealthChange {
  /** `vip:port/protocol` of the service. */
  readonly serviceKey: string;
  readonly real: RealRef;
  readonly up: boolean;
  readonly reason: string;
}

export interface RealHealthStatus {
  readonly serviceKey: string;
  readonly real: RealRef;
  readonly up: boolean;
  readonly reason: string;
  /** Consecutive results counted towards the next change (successes while down, failures while up). */
  readonly streak: number;
  /** Number of checks completed so far. */
  readonly checks: number;
  /** Wall-clock time of the last completed check, ms since the epoch; undefined before the first. */
  readonly lastCheckAt: number | undefined;
  /** State changes within the flap-damping window (0 when damping is off). */
  readonly recentChanges: number;
  /** While flap damping holds the real down: when that ends, ms since the epoch. */
  readonly heldDownUntil: number | undefined;
}

/** What status shows of a real's check, read live (HealthMonitor.readerOf). */
export interface RealHealthReader {
  /** The real is no longer checked (removed, or its service's check changed): ask again. */
  readonly removed: boolean;
  readonly reason: string;
  readonly checks: number;
  readonly recentChanges: number;
  readonly heldDownUntil: number | undefined;
}

/** The check settings the monitor uses: the timing part of a service's health-check block. */
export type MonitorCheckConfig = Pick<HealthCheckTiming, "intervalMs" | "timeoutMs" | "rise" | "fall" | "port"> &
  Partial<Pick<HealthCheckTiming, "flapDamping">>;

export interface HealthMonitorOptions {
  /** The checker for reals added without their own (default: TcpHealthChecker). */
  readonly checker?: HealthChecker;
  /** Called on every up/down change, including those from markDown. */
  readonly onChange?: (change: HealthChange) => void;
  /** Called when onChange throws; by default the error is rethrown outside the monitor. */
  readonly onError?: (error: unknown) => void;
  /** A refused connection takes a real down at once (default true); otherwise it counts to `fall`. */
  readonly downOnRefused?: boolean;
  /** State of a real before its checks decide (default true, as reals in plain IPVS). */
  readonly initiallyUp?: boolean;
}

interface Entry {
  readonly serviceKey: string;
  readonly real: RealRef;
  config: MonitorCheckConfig;
  checker: HealthChecker;
  readonly state: RealHealthState;
  timer: NodeJS.Timeout | undefined;
  inflight: Promise<void> | undefined;
  abort: AbortController | undefined;
  removed: boolean;
  checks: number;
  lastCheckAt: number | undefined;
}

function entryKey(serviceKey: string, real: RealRef): string {
  return `${serviceKey}|${real.ip}:${real.port}`;
}

function validate(config: MonitorCheckConfig): void {
  const positive = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new ApiError(`health check ${name} must be a positive integer, got ${v}`);
  };
  positive("intervalMs", config.intervalMs);
  positive("timeoutMs", config.timeoutMs);
  positive("rise", config.rise);
  positive("fall", config.fall);
}

function statusOf(e: Entry): RealHealthStatus {
  return {
    serviceKey: e.serviceKey,
    real: e.real,
    up: e.state.up,
    reason: e.state.reason,
    streak: e.state.streak,
    checks: e.checks,
    lastCheckAt: e.lastCheckAt,
    recentChanges: e.state.recentChanges,
    heldDownUntil: e.state.heldDownUntil,
  };
}

/** Grace beyond timeoutMs after which the monitor stops waiting for a checker that ignores it. */
const CHECKER_GRACE_MS = 250;

export class HealthMonitor {
  private readonly checker: HealthChecker;
  private readonly entries = new Map<string, Entry>();
  private readonly downOnRefused: boolean;
  private readonly initiallyUp: boolean;
  private running = false;
  /** Bumped by start and stop, so a check begun in an earlier run never schedules another. */
  private epoch = 0;

  constructor(private readonly options: HealthMonitorOptions = {}) {
    this.checker = options.checker ?? new TcpHealthChecker();
    this.downOnRefused = options.downOnRefused ?? true;
    this.initiallyUp = options.initiallyUp ?? true;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /**
   * Starts checking a real server of a service, with `checker` (default: the monitor's). Adding one
   * that is already there updates its settings and checker and keeps its state. While running, the
   * first check starts right away.
   */
  add(serviceKey: string, real: RealRef, config: MonitorCheckConfig, checker: HealthChecker = this.checker): void {
    validate(config);
    const key = entryKey(serviceKey, real);
    const thresholds = { rise: config.rise, fall: config.fall, downOnRefused: this.downOnRefused, flapDamping: config.flapDamping };
    const existing = this.entries.get(key);
    if (existing) {
      existing.config = config;
      existing.checker = checker;
      existing.state.setThresholds(thresholds);
      return;
    }
    const entry: Entry = {
      serviceKey,
      real: { ip: real.ip, port: real.port },
      config,
      checker,
      state: new RealHealthState(thresholds, this.initiallyUp),
      timer: undefined,
      inflight: undefined,
      abort: undefined,
      removed: false,
      checks: 0,
      lastCheckAt: undefined,
    };
    this.entries.set(key, entry);
    if (this.running) this.schedule(entry, 0);
  }

  /** Stops checking a real; returns false when it was not monitored. */
  remove(serviceKey: string, real: RealRef): boolean {
    const key = entryKey(serviceKey, real);
    const entry = this.entries.get(key);
    if (!entry) return false;
    this.entries.delete(key);
    entry.removed = true;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.abort?.abort();
    return true;
  }

  /** Begins checking every real, the first round spread over the first interval. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.epoch++;
    // The first round is spread over the first interval, not fired at once: thousands of checks
    // in one burst would block the event loop and stay in step for ever after. A real's first check
    // still comes within one interval (plain IPVS counts it up until then).
    for (const entry of this.entries.values()) this.schedule(entry, this.entries.size > 1 ? Math.random() * entry.config.intervalMs : 0);
  }

  /** Stops all checks, cancels those in flight and waits for them to settle. */
  async stop(): Promise<void> {
    this.running = false;
    this.epoch++;
    const pending: Promise<void>[] = [];
    for (const entry of this.entries.values()) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
      entry.abort?.abort();
      if (entry.inflight) pending.push(entry.inflight);
    }
    await Promise.all(pending);
  }

  /**
   * A passive signal that a real is down (e.g. the data plane saw resets or ICMP errors). Applies
   * to the real in `serviceKey`, or in every service when that is omitted. It comes back up after
   * `rise` successful checks. Returns how many monitored entries matched.
   */
  markDown(real: RealRef, reason: string, serviceKey?: string): number {
    let matched = 0;
    for (const entry of this.entries.values()) {
      if (entry.real.ip !== real.ip || entry.real.port !== real.port) continue;
      if (serviceKey !== undefined && entry.serviceKey !== serviceKey) continue;
      matched++;
      if (entry.state.markDown(reason)) this.emit(entry);
    }
    return matched;
  }

  /** Current state of one real; undefined when it is not monitored. */
  isUp(serviceKey: string, real: RealRef): boolean | undefined {
    return this.entries.get(entryKey(serviceKey, real))?.state.up;
  }

  status(): RealHealthStatus[] {
    return [...this.entries.values()].map(statusOf);
  }

  /**
   * A live view of one real's check (it follows the check without being asked again, until the real
   * is removed); undefined when the real is not checked. Status keeps these instead of looking reals
   * up by name at every call.
   */
  readerOf(serviceKey: string, real: RealRef): RealHealthReader | undefined {
    const entry = this.entries.get(entryKey(serviceKey, real));
    if (!entry) return undefined;
    return {
      get removed() { return entry.removed; },
      get reason() { return entry.state.reason; },
      get checks() { return entry.checks; },
      get recentChanges() { return entry.state.recentChanges; },
      get heldDownUntil() { return entry.state.heldDownUntil; },
    };
  }

  private schedule(entry: Entry, delayMs: number): void {
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      entry.inflight = this.runCheck(entry).finally(() => {
        entry.inflight = undefined;
      });
    }, delayMs);
  }

  private async runCheck(entry: Entry): Promise<void> {
    const epoch = this.epoch;
    const started = performance.now();
    const { timeoutMs, intervalMs } = entry.config;
    const target: HealthTarget = { ip: entry.real.ip, port: entry.config.port ?? entry.real.port };
    const abort = new AbortController();
    entry.abort = abort;
    let guard: NodeJS.Timeout | undefined;
    const result = await Promise.race<CheckResult>([
      entry.checker.check(target, timeoutMs, abort.signal).catch((error: unknown) => ({
        up: false,
        outcome: "error" as const,
        reason: `checker failed: ${error instanceof Error ? error.message : String(error)}`,
        elapsedMs: performance.now() - started,
      })),
      new Promise<CheckResult>((resolve) => {
        guard = setTimeout(() => {
          abort.abort();
          resolve({ up: false, outcome: "timeout", reason: `no answer within ${timeoutMs} ms`, elapsedMs: timeoutMs });
        }, timeoutMs + CHECKER_GRACE_MS);
      }),
    ]);
    clearTimeout(guard);
    entry.abort = undefined;
    if (epoch !== this.epoch || entry.removed || result.outcome === "aborted") return;

    entry.checks++;
    entry.lastCheckAt = Date.now();
    if (entry.state.record(result)) this.emit(entry);
    if (epoch !== this.epoch || entry.removed) return; // onChange may have stopped or removed us
    const elapsed = performance.now() - started;
    this.schedule(entry, Math.max(0, intervalMs - elapsed));
  }

  private emit(entry: Entry): void {
    const change: HealthChange = {
      serviceKey: entry.serviceKey,
      real: entry.real,
      up: entry.state.up,
      reason: entry.state.reason,
    };
    try {
      this.options.onChange?.(change);
    } catch (error) {
      if (this.options.onError) this.options.onError(error);
      else
        process.nextTick(() => {
          throw error;
        });
    }
  }
}
