// The balancer: services, real servers and weights on top of the native engine. Every change (API
// call, reload, health change) produces a new configuration that is validated like a config file,
// then applied whole: selection tables are recomputed by the scheduling policies and handed to the
// engine as one snapshot; kernel set-up follows the set of VIPs and real-server ports.
import { performance } from "node:perf_hooks";
import {
  diffConfig, differsFromGlobal, effectiveTimeouts, parseConfig, realKey, sameReceivePaths, serviceKey, type ConfigDiff, type FloodProtection, type ForwardingMode, type FullNatConfig, type KernelFastPathSetting, type NatlbConfig, type Protocol, type RealConfig, type ServiceConfig, type Timeouts, type ReceivePath, type WorkerLayout, type WorkerThreadsSetting,
  midStreamPickUpOf,
} from "./config";
import { ApiError, NatlbError } from "./errors";
import { cursorOf, flowFilterOf, pageLimitOf, type ConnectionPage, type ConnectionQuery } from "./flows/connectionQuery";
import { FlowMap, type Connection, type FlowMapStats } from "./flows/flowMap";
import { checkDirectRealsOnLink, checkFullNatLocalAddresses, discoverGateway, readLocalAddresses, readNeighbours, readRoutes, type GatewayView } from "./gateway/interfaces";
import { EventHub, PressureWatch, currentChangeOrigin, summarizeDiff, type ChangeOrigin, type NatlbEvent, type WatchOptions } from "./events";
import { HealthMonitor, checkerFor, type HealthChange, type RealHealthReader } from "./health";
import { listLinks } from "./gateway/iproute";
import { readLinkState, type LinkState } from "./gateway/linkStates";
import { KernelSetup, mergePlans, planFor, type KernelPlan } from "./kernel";
import { acquireNamespaceLock, type NamespaceLock } from "./namespaceLock";
import { silentLogger, type Logger } from "./log";
import {
  COUNTER_NAMES, loadNative, type EngineCounters, type NativeAddon, type NativeEngine, type NativeFloodProtection, type NativeInterface,
  type NativeService,
} from "./native";
import { hashOptionsOf, schedulerFor, type SchedulerFlag, type SchedulerName } from "./schedulers";
import { effectiveWeight, nextRampChangeMs, rampedTableInput, rampFraction } from "./slowStart/slowStartRamp";
import { DRAIN_THENS, watchDrain, type DrainResult, type DrainThen } from "./drain";
import { TrafficStats, type BalancerStats } from "./stats/trafficStats";
import { persistenceFor } from "./schedulers/persistence";
import { VipAnnouncer, type BgpStatus } from "./bgp";
import { PairRole, type HaStatus, type RoleChange } from "./ha/pairRole";
import type { GatewayRole } from "./native";
import { readSyncKey } from "./sync/syncKey";
import { nativeSyncOptions, syncStatus, type SyncStatus } from "./sync/syncStatus";

export interface BalancerOptions {
  logger?: Logger;
  /** Install the blackhole route/rules (needs CAP_NET_ADMIN). Default true. */
  kernelSetup?: boolean;
  /** How often routes and neighbours are re-read from the kernel, ms. Default 5000. */
  routeRefreshMs?: number;
  /** How often the traffic rates of stats() are sampled, ms. Default 2000 (as IPVS's estimator). */
  rateSampleMs?: number;
}

export interface ServiceRef {
  vip: string;
  port: number;
  protocol?: Protocol;
}

export interface RealRef {
  ip: string;
  port?: number;
}

export interface RealStatus {
  ip: string;
  port: number;
  weight: number;
  up: boolean;
  activeConns: number;
  inactiveConns: number;
  /** While the real is down by its health check: why, from the check. */
  health?: RealHealthView;
  /** While the real ramps up (config slowStartS): the weight it has now, and when the ramp ends (ISO 8601). */
  slowStart?: { effectiveWeight: number; endsAt: string };
  /** While a drain of the real runs (`natlb real drain`): its deadline (ISO 8601, absent: none) and what follows. */
  drain?: { deadline?: string; then: DrainThen };
  /** Reals with a connection limit: the limit (config maxConns, minConnsToResume when set). */
  maxConns?: number;
  minConnsToResume?: number;
  /** Reals with a connection limit: whether it is full now (no new connections until it resumes). */
  overloaded?: boolean;
  /** A real with its own forwarding (config reals[].forwarding), when it differs from the service's. */
  forwarding?: ForwardingMode;
}

/** A service's fallback real (config fallback) and whether it takes the new connections now. */
export interface FallbackStatus {
  ip: string;
  port: number;
  /** No real can take a new connection (every one down, drained or full): new connections go here. */
  inUse: boolean;
  activeConns: number;
  inactiveConns: number;
}

/** What the health check last said of a real. */
export interface RealHealthView {
  /** Why it is up or down, e.g. "http 503 from 198.18.1.12:8080/healthz". */
  reason: string;
  checks: number;
  /** State changes within the flap-damping window (0 when damping is off). */
  recentChanges: number;
  /** While flap damping holds it down: when that ends (ISO 8601). */
  heldDownUntil?: string;
}

export interface ServiceStatus {
  vip: string;
  port: number;
  protocol: Protocol;
  /** Only for direct routing and full NAT (config forwarding "dr", "fullnat"); left out: "nat". */
  forwarding?: Extract<ForwardingMode, "dr" | "fullnat">;
  /** Full NAT only: the source pool (config fullnat). */
  fullnat?: FullNatConfig;
  scheduler: SchedulerName;
  /** Only where they differ from the global ones: the timeouts the service's flows follow (its own, the global ones for the rest). */
  timeouts?: Timeouts;
  /** Only when set (config schedulerFlags). */
  schedulerFlags?: SchedulerFlag[];
  /** Only when set (config mhSeed). */
  mhSeed?: number;
  /** Only when on (config midStreamPickUp, or its default with bgp). */
  midStreamPickUp?: true;
  reals: RealStatus[];
  /** A service with persistence: its live persistence templates (clients, or client networks, bound to a real). */
  templates?: number;
  /** Only when the service has one. */
  fallback?: FallbackStatus;
}

export interface BalancerStatus {
  services: ServiceStatus[];
  interfaces: {
    name: string;
    role: "client" | "backend";
    receivePath: ReceivePath;
    /** AF_XDP interfaces: "native" or "generic" XDP, and the receive queues with an AF_XDP socket. */
    xdp?: { mode: "native" | "generic"; receiveQueues: number };
    /**
     * Only when the link is not up, as the last periodic check (every 5 s) saw it: "down", "gone"
     * (deleted) or "replaced" (created again, not yet taken up); natlb forwards nothing through it
     * until it is back.
     */
    link?: Exclude<LinkState, "up">;
  }[];
  flows: FlowMapStats;
  /**
   * Established TCP flows the kernel forwards (config kernelFastPath): `enabled` when the TC program
   * runs; with "auto" and no fast path, `unavailable` says why. `scheduling`: whether the program
   * schedules new connections now (config kernelScheduling; off on a backup, and while half-open
   * connections pile up), and for how many services.
   */
  kernelFastPath: {
    setting: KernelFastPathSetting;
    enabled: boolean;
    flows: number;
    unavailable?: string;
    scheduling: { setting: boolean; active: boolean; services: number };
  };
  /** The worker threads' layout (config workerThreads): the setting, and what runs ("auto" resolved). */
  workerThreads: { setting: WorkerThreadsSetting; running: WorkerLayout };
  /** Only with config bgp: the VIPs BIRD announces, and how often that changed. */
  bgp?: BgpStatus;
  counters: EngineCounters;
  /** The gateway's role in an active/backup pair; only with config `ha` (a lone gateway is master for good). */
  ha?: HaStatus;
  /** Only with config sync: the flow sync's peers and counters. */
  sync?: SyncStatus;
}

interface BuiltService {
  inputs: string;
  service: NativeService;
  /** Health of the configured reals (service.reals' first entries) as the table was built with it. */
  up: boolean[];
  /** Each configured real's health check, looked up once (status reads it live). */
  checks: Array<RealHealthReader | undefined>;
}

/** The JSON shape of one service as the API and config file take it (validated on use). */
export type ServiceInput = Record<string, unknown>;
export type RealInput = Record<string, unknown>;

/**
 * Fields of a running service to change (`natlb service edit`, ipvsadm -E): any service field of the
 * config but its identity (vip, port, protocol) and its reals; each replaces the field as a whole.
 * The service that results is validated with the config's own schema.
 */
export type ServiceEdit = Readonly<Record<string, unknown>> & {
  readonly scheduler?: SchedulerName;
  readonly healthCheck?: Record<string, unknown>;
  readonly slowStartS?: number;
};

/** Service fields `updateService` does not change: they name the service, or have their own calls. */
export const FIXED_SERVICE_FIELDS = Object.freeze(["vip", "port", "protocol", "reals"] as const);

export interface DrainOptions {
  /** Stop waiting then (a Date, or ms since the epoch); absent: wait until no connection is left. */
  readonly deadline?: Date | number;
  /** What happens at the end (default "keep"): see DrainThen. */
  readonly then?: DrainThen;
  /** Called with the real's connections left when first read and whenever the count changes. */
  readonly onProgress?: (connectionsLeft: number) => void;
}

/** A drain under way (beginDrain): the real is at weight 0 already; `result` settles at its end. */
export interface DrainHandle {
  readonly service: string;
  readonly real: string;
  readonly then: DrainThen;
  /** ms since the epoch; absent: none. */
  readonly deadline: number | undefined;
  /** The count last read (NaN before the first read). */
  connectionsLeft(): number;
  readonly result: Promise<DrainResult>;
}

/** A ramp under way: which real, since when (ms since the epoch). */
interface Ramp {
  readonly service: string;
  readonly real: string;
  readonly startedAt: number;
}

export class Balancer {
  private config: NatlbConfig;
  private readonly realIds = new Map<string, number>();
  /** By service key: the id of every real the service has had (its stats keep removed reals' counts). */
  private readonly realIdsOfService = new Map<string, Set<number>>();
  private readonly traffic: TrafficStats;
  /**
   * Reals removed from a service while they still had connections, by service key (like IPVS's
   * trash of destinations): the engine keeps forwarding their flows until the last one ends. They get
   * no new connections.
   */
  private readonly draining = new Map<string, RealConfig[]>();
  private nextRealId = 0;
  /** Each service's selection table as the engine has it, and what it was built from (publish). */
  private readonly built = new Map<string, BuiltService>();
  /** The services of the engine's snapshot, in order (publish). */
  private publishedKeys: string | undefined;
  private readonly health: HealthMonitor;
  private routeTimer: NodeJS.Timeout | undefined;
  /** Announces the served VIPs through BIRD (config bgp); set once forwarding runs. */
  private announcer: VipAnnouncer | undefined;
  private pressureTimer: NodeJS.Timeout | undefined;
  private readonly hub = new EventHub();
  private stopped = false;
  /** By interface name: the state the periodic check last reported (absent: up). */
  private readonly linkStates = new Map<string, LinkState>();
  /** An interface came back but the data plane could not restart on it yet: the next check tries again. */
  private restartPending = false;
  private changeQueue: Promise<unknown> = Promise.resolve();
  /** Health changes waiting for their turn in the change queue (onHealthChange). */
  private readonly pendingHealthChanges: HealthChange[] = [];
  /** Reals ramping up (slowStartS), by `service|real`. */
  private rampStarts = new Map<string, Ramp>();
  private rampTimer: NodeJS.Timeout | undefined;
  /** Drains under way, by `service|real`. */
  private readonly drains = new Map<string, { deadline: number | undefined; then: DrainThen }>();
  /** Aborts when natlb stops: drains under way end then. */
  private readonly stopping = new AbortController();
  /** Only with config `ha`. */
  private readonly pairRole: PairRole | undefined;

  private constructor(
    config: NatlbConfig,
    private gateway: GatewayView,
    private readonly engine: NativeEngine,
    private readonly flows: FlowMap,
    private readonly kernel: KernelSetup | undefined,
    private readonly log: Logger,
    private readonly lock: NamespaceLock,
    rateSampleMs: number | undefined,
  ) {
    this.config = config;
    this.pairRole = config.ha === undefined ? undefined : new PairRole(engine, config.ha);
    this.traffic = new TrafficStats(
      {
        services: () => this.config.services.map((s) => {
          const reals = s.reals.map((r) => ({ ip: r.ip, port: r.port, id: this.realIdFor(s, r) }));
          const key = serviceKey(s);
          return { key, vip: s.vip, port: s.port, protocol: s.protocol, reals, everyRealId: this.realIdsOfService.get(key) ?? [] };
        }),
        realTraffic: (ids) => this.engine.realTraffic(ids),
      },
      rateSampleMs === undefined ? {} : { sampleIntervalMs: rateSampleMs },
    );
    this.health = new HealthMonitor({
      onChange: (change) => this.onHealthChange(change),
      onError: (error) => this.log.error({ err: error }, "health change handler failed"),
    });
  }

  /** Discovers interfaces, sets up the kernel, opens the rings and starts forwarding. */
  static async start(config: NatlbConfig, options: BalancerOptions = {}): Promise<Balancer> {
    const log = options.logger ?? silentLogger;
    const native = loadNative();
    const lock = await acquireNamespaceLock();
    try {
      return await Balancer.startLocked(config, options, log, native, lock);
    } catch (error) {
      await lock.release();
      throw error;
    }
  }

  private static async startLocked(
    config: NatlbConfig, options: BalancerOptions, log: Logger, native: NativeAddon, lock: NamespaceLock,
  ): Promise<Balancer> {
    const gateway = await discoverGateway(config);
    const syncKey = config.sync ? await readSyncKey(config.sync.keyFile) : undefined;
    const flows = new FlowMap(config.flowCapacity);
    const engine = new native.Engine({
      flowTable: flows.bytes,
      interfaces: gateway.interfaces,
      coalesceTcp: process.env.NATLB_TX_COALESCE !== "0",
      kernelFastPath: config.kernelFastPath,
      workerThreads: config.workerThreads,
    });
    engine.setTimeouts(config.timeouts);
    engine.setFloodProtection(nativeFloodProtection(config.floodProtection));
    engine.setKernelScheduling(config.kernelScheduling);
    engine.setRoutes(gateway.routes);
    engine.learnNeighbours(gateway.neighbours);
    engine.setLocalAddresses(gateway.localAddresses);
    const kernel = options.kernelSetup === false ? undefined : new KernelSetup();
    const balancer = new Balancer(config, gateway, engine, flows, kernel, log, lock, options.rateSampleMs);
    try {
      balancer.publish();
      await kernel?.apply(balancer.kernelPlan());
      try {
        engine.start();
      } catch (error) {
        throw new NatlbError(
          "E_DATAPLANE",
          dataPlaneFailure(
            (error as Error).message,
            gateway.interfaces.some((i) => i.receivePath === "af_xdp"),
            config.kernelFastPath === true,
          ),
          { cause: error },
        );
      }
      if (config.sync && syncKey) {
        try {
          engine.startSync(nativeSyncOptions(config.sync, syncKey));
        } catch (error) {
          throw new NatlbError("E_SYNC", `flow sync: ${(error as Error).message}`, { cause: error });
        }
      }
      const fastPath = engine.kernelFastPathState();
      if (fastPath.unavailable !== undefined) {
        log.warn(
          { kernelFastPath: "auto", reason: fastPath.unavailable },
          `kernel fast path off, every byte goes through user space: ${fastPath.unavailable}. ` +
            'Run as root, or grant CAP_BPF and CAP_NET_ADMIN, on Linux 6.6+; or set "kernelFastPath": false to choose user space',
        );
      }
      if (config.bgp) {
        balancer.announcer = new VipAnnouncer(config.bgp, {
          logger: log,
          onChange: (vip, announced) => balancer.hub.publish({ type: "bgp", vip, announced }),
        });
        balancer.announcer.follow(balancer.servedVips());
      }
      balancer.syncHealthChecks();
      balancer.health.start();
      balancer.routeTimer = setInterval(() => void balancer.refreshRoutes(), options.routeRefreshMs ?? 5000);
      balancer.routeTimer.unref();
      balancer.watchPressure();
      balancer.traffic.start();
      log.info({ interfaces: gateway.interfaces.map((i) => `${i.name}(${i.role})`), services: config.services.length }, "natlb started");
      return balancer;
    } catch (error) {
      engine.stopSync();
      engine.stop();
      await kernel?.undo().catch(() => undefined);
      throw error;
    }
  }

  get interfaces(): readonly NativeInterface[] {
    return this.gateway.interfaces;
  }

  get currentConfig(): NatlbConfig {
    return this.config;
  }

  // ---- the API: each call validates a whole next configuration, then applies it -----------------

  addService(input: ServiceInput): Promise<void> {
    return this.change((raw) => {
      raw.services.push(input);
    });
  }

  /**
   * Changes a running service's fields (scheduler, health check, slowStartS, ...; see ServiceEdit),
   * keeping its reals and their flows. Throws ApiError for its identity or reals, ConfigError when the
   * service that results is invalid.
   */
  updateService(ref: ServiceRef, changes: ServiceEdit): Promise<void> {
    const fixed = FIXED_SERVICE_FIELDS.filter((field) => Object.hasOwn(changes, field));
    if (fixed.length > 0) {
      return Promise.reject(
        new ApiError(
          `a service edit cannot change ${fixed.join(", ")}: ${fixed.includes("reals") ? "change reals with `natlb real add|weight|remove`; " : ""}a service's address is what names it (remove it and add another)`,
          { code: "E_FIXED_FIELD" },
        ),
      );
    }
    return this.change((raw) => {
      const service = raw.services[this.indexOf(ref)] as Record<string, unknown>;
      for (const [field, value] of Object.entries(changes)) if (value !== undefined) service[field] = value;
    });
  }

  removeService(ref: ServiceRef): Promise<void> {
    return this.change((raw) => {
      raw.services.splice(this.indexOf(ref), 1);
    });
  }

  addReal(ref: ServiceRef, real: RealInput): Promise<void> {
    return this.change((raw) => {
      ((raw.services[this.indexOf(ref)] as Record<string, unknown>).reals as unknown[]).push(real);
    });
  }

  updateReal(ref: ServiceRef, real: RealRef, changes: { weight?: number }): Promise<void> {
    return this.change((raw) => {
      const index = this.indexOf(ref);
      const reals = (raw.services[index] as Record<string, unknown>).reals as Record<string, unknown>[];
      const found = this.realIndexOf(index, real);
      if (changes.weight !== undefined) reals[found]!.weight = changes.weight;
    });
  }

  removeReal(ref: ServiceRef, real: RealRef): Promise<void> {
    return this.change((raw) => {
      const index = this.indexOf(ref);
      ((raw.services[index] as Record<string, unknown>).reals as unknown[]).splice(this.realIndexOf(index, real), 1);
    });
  }

  /**
   * Drains a real: its weight goes to 0 (no new connections; its connections go on), then natlb waits
   * until it has no connections left (the data plane's per-real counts) or the deadline comes, and does
   * what `then` says (keep, remove, reset). Resolves with what happened, also published as a
   * drainFinished event. Rejects when natlb stops first.
   */
  async drainReal(ref: ServiceRef, real: RealRef, options: DrainOptions = {}): Promise<DrainResult> {
    return (await this.beginDrain(ref, real, options)).result;
  }

  /** drainReal in two steps: resolves once the real is at weight 0, with the drain's handle. */
  async beginDrain(ref: ServiceRef, real: RealRef, options: DrainOptions = {}): Promise<DrainHandle> {
    const then = options.then ?? "keep";
    if (!(DRAIN_THENS as readonly string[]).includes(then)) {
      throw new ApiError(`unknown drain end ${JSON.stringify(then)}: use one of ${DRAIN_THENS.join(", ")}`, { code: "E_BAD_DRAIN" });
    }
    const deadline = options.deadline instanceof Date ? options.deadline.getTime() : options.deadline;
    if (deadline !== undefined && !Number.isFinite(deadline)) throw new ApiError("the drain's deadline is not a valid time: give a Date or ms since the epoch", { code: "E_BAD_DRAIN" });
    const serviceIndex = this.indexOf(ref);
    const service = this.config.services[serviceIndex]!;
    const found = service.reals[this.realIndexOf(serviceIndex, real)]!;
    const name = { service: serviceKey(service), real: realKey(found) };
    const key = `${name.service}|${name.real}`;
    if (this.drains.has(key)) {
      throw new ApiError(`a drain of ${name.real} in ${name.service} is under way already: follow it with \`natlb events\``, { status: 409, code: "E_DRAIN_UNDER_WAY" });
    }
    this.drains.set(key, { deadline, then });
    const exact = { ip: found.ip, port: found.port };
    try {
      await this.updateReal(ref, exact, { weight: 0 });
    } catch (error) {
      this.drains.delete(key);
      throw error;
    }
    const id = this.realIdFor(service, found);
    const started = Date.now();
    let left = Number.NaN;
    const result = (async (): Promise<DrainResult> => {
      try {
        const watched = await watchDrain({
          connections: () => {
            const count = this.flows.realCounts(id);
            return count.active + count.inactive;
          },
          ...(deadline !== undefined ? { deadlineMs: deadline } : {}),
          signal: this.stopping.signal,
          onProgress: (count) => {
            left = count;
            options.onProgress?.(count);
          },
        });
        const done = await this.finishDrain({ vip: service.vip, port: service.port, protocol: service.protocol }, exact, then);
        const outcome: DrainResult = { ...name, ...watched, then, done, waitedMs: Date.now() - started };
        this.hub.publish({ type: "drainFinished", ...outcome });
        this.log.info(outcome, `drain of ${name.real} in ${name.service} finished`);
        return outcome;
      } catch (error) {
        if (this.stopping.signal.aborted) throw new ApiError(`natlb stopped before the drain of ${name.real} in ${name.service} ended`, { status: 409, code: "E_STOPPED" });
        throw error;
      } finally {
        this.drains.delete(key);
      }
    })();
    // Nobody may be waiting for the result (a drain without --wait): its failure is logged, not thrown at the process.
    result.catch((error: unknown) => this.log.warn({ err: error, ...name }, "drain ended early"));
    return { ...name, then, deadline, connectionsLeft: () => left, result };
  }

  /** A drain's end: the real stays, leaves, or leaves with its flows reset. */
  private async finishDrain(ref: Required<ServiceRef>, real: { ip: string; port: number }, then: DrainThen): Promise<DrainResult["done"]> {
    const present = () => this.config.services.some((s) => s.vip === ref.vip && s.port === ref.port && s.protocol === ref.protocol && s.reals.some((r) => r.ip === real.ip && r.port === real.port));
    if (then === "keep") return present() ? "kept" : "gone";
    if (present()) await this.removeReal(ref, { ip: real.ip, port: real.port });
    else if (then === "remove") return "gone";
    if (then === "reset") {
      await this.enqueue(async () => {
        this.engine.endFlowsOf([{ vip: ref.vip, port: ref.port, protocol: ref.protocol, realIp: real.ip, realPort: real.port, reset: true }]);
      });
      return "reset";
    }
    return "removed";
  }

  /**
   * Applies a whole new configuration (a reload) and returns what it changed (against the
   * configuration it replaced, in the same turn of the change queue). Interfaces and flow capacity
   * need a restart.
   */
  reload(next: NatlbConfig): Promise<ConfigDiff> {
    const origin = currentChangeOrigin();
    return this.enqueue(async () => {
      const parsed = parseConfig(next);
      const diff = diffConfig(this.config, parsed);
      await this.apply(parsed, origin);
      return diff;
    });
  }

  /**
   * natlb's events as they happen: health changes with reasons, configuration changes with their
   * origin, flow-map pressure, drop spikes. `after` replays the kept events after that sequence
   * number first. Ends when the signal aborts or natlb stops.
   */
  events(options: WatchOptions = {}): AsyncGenerator<NatlbEvent, void, undefined> {
    return this.hub.watch(options);
  }

  /**
   * The pair's role (keepalived's notify script, `natlb ha`): the workers follow at their next batch; a
   * new master announces the VIPs. The same role again changes nothing and tells no one.
   */
  setGatewayRole(role: GatewayRole, reason: string): RoleChange {
    if (this.stopped) throw new ApiError("the balancer is stopped", { status: 409 });
    if (this.pairRole === undefined) {
      throw new ApiError('this natlb is a lone gateway (its config has no "ha" block), always master: add "ha": { "initialRole": "backup" } to the config and restart natlb to run it in a keepalived pair', {
        status: 409,
        code: "E_NOT_IN_PAIR",
      });
    }
    const change = this.pairRole.apply(role, reason);
    if (change.changed) {
      // The synced flows go to the kernel fast path now rather than one by one as their packets come.
      const flowsOffloaded = role === "master" ? this.engine.offloadEstablishedFlows() : undefined;
      this.log.info({ role, previous: change.previous, reason, flowsOffloaded }, `ha role ${change.previous} -> ${role}`);
      this.hub.publish({ type: "haRole", role, previous: change.previous, reason, origin: currentChangeOrigin(), ...(flowsOffloaded !== undefined ? { flowsOffloaded } : {}) });
    }
    return change;
  }

  // ---- reading ------------------------------------------------------------------------------------

  /**
   * O(services + reals), with no string built per real: connection counts come from the data plane's
   * per-real counters, ids and health from the tables as published (a health change reaches them
   * within the change queue's turn).
   */
  status(): BalancerStatus {
    const now = Date.now();
    // Asked only when some real has a limit: a walk over the snapshot's reals with limits.
    const limited = this.config.services.some((s) => s.reals.some((r) => r.maxConns !== undefined));
    const overloaded = new Set(limited ? this.engine.overloadedRealIds() : []);
    return {
      services: this.config.services.map((s) => {
        const key = serviceKey(s);
        const built = this.built.get(key);
        const checked = s.healthCheck.type !== "none";
        // Ramps and drains are rare: only then is a real's key built.
        const extras = this.rampStarts.size > 0 || this.drains.size > 0;
        const reals = s.reals.map((r, i) => {
            const published = built?.service.reals[i];
            // A configuration being applied (not published yet) is read the long way.
            const current = published !== undefined && published.ip === r.ip && published.port === r.port;
            const count = this.flows.realCounts(current ? published.id : this.realIdFor(s, r));
            const up = current ? built!.up[i]! : this.isUp(s, r);
            // Why a real is down (an up one needs no explanation, and 16,000 of them no allocation).
            const check = checked && current && !up ? this.checkOf(built!, i, key, r) : undefined;
            return {
              ip: r.ip, port: r.port, weight: r.weight, up,
              activeConns: count.active, inactiveConns: count.inactive,
              ...(check ? { health: healthView(check) } : {}),
              ...(extras ? this.rampAndDrainView(s, r, now) : {}),
              ...limitsOf(r),
              ...(r.forwarding !== undefined ? { forwarding: r.forwarding } : {}),
              ...(r.maxConns !== undefined ? { overloaded: overloaded.has(current ? published.id : this.realIdFor(s, r)) } : {}),
            };
          });
        return {
          vip: s.vip,
          port: s.port,
          protocol: s.protocol,
          ...(s.forwarding !== "nat" ? { forwarding: s.forwarding } : {}),
          ...(s.fullnat ? { fullnat: s.fullnat } : {}),
          scheduler: s.scheduler,
          ...(s.schedulerFlags.length > 0 ? { schedulerFlags: [...s.schedulerFlags] } : {}),
          ...(s.mhSeed !== undefined ? { mhSeed: s.mhSeed } : {}),
          ...(midStreamPickUpOf(s, this.config.bgp) ? { midStreamPickUp: true as const } : {}),
          ...(differsFromGlobal(s, this.config.timeouts) ? { timeouts: effectiveTimeouts(s, this.config.timeouts) } : {}),
          reals,
          ...(s.persistence && built ? { templates: built.service.reals.reduce((sum, r) => sum + this.flows.realCounts(r.id).templates, 0) } : {}),
          ...(s.fallback ? { fallback: this.fallbackStatus(s, reals) } : {}),
        };
      }),
      interfaces: this.interfaceStatus(),
      flows: this.flows.stats(),
      kernelFastPath: this.kernelFastPathStatus(),
      workerThreads: { setting: this.config.workerThreads, running: this.engine.workerThreads() },
      ...(this.announcer ? { bgp: this.announcer.status() } : {}),
      counters: this.engine.counters(),
      ...(this.pairRole ? { ha: this.pairRole.status() } : {}),
      ...this.syncStatusPart(),
    };
  }

  private syncStatusPart(): { sync?: SyncStatus } {
    const counters = this.config.sync ? this.engine.syncCounters() : null;
    return this.config.sync && counters ? { sync: syncStatus(this.config.sync, counters) } : {};
  }

  /**
   * Hands every established TCP flow user space forwards, the synced ones included, to the kernel fast
   * path at once (an instance taking over, e.g. `natlb ha master`); how many went.
   */
  offloadEstablishedFlows(): number {
    return this.engine.offloadEstablishedFlows();
  }

  /** A real's slow start and drain, as status shows them. */
  private rampAndDrainView(service: ServiceConfig, real: RealConfig, now: number): Pick<RealStatus, "slowStart" | "drain"> {
    const key = `${serviceKey(service)}|${realKey(real)}`;
    const view: { slowStart?: RealStatus["slowStart"]; drain?: RealStatus["drain"] } = {};
    const ramp = this.rampStarts.get(key);
    const length = slowStartOf(service, real);
    if (ramp && real.weight > 0 && now - ramp.startedAt < length * 1000) {
      view.slowStart = { effectiveWeight: effectiveWeight(real.weight, rampFraction(now - ramp.startedAt, length)), endsAt: new Date(ramp.startedAt + length * 1000).toISOString() };
    }
    const drain = this.drains.get(key);
    if (drain) view.drain = { ...(drain.deadline !== undefined ? { deadline: new Date(drain.deadline).toISOString() } : {}), then: drain.then };
    return view;
  }

  private fallbackStatus(service: ServiceConfig, reals: readonly RealStatus[]): FallbackStatus {
    const count = this.flows.realCounts(this.fallbackIdFor(service));
    return {
      ip: service.fallback!.ip, port: service.fallback!.port,
      inUse: !reals.some((r) => r.up && r.weight > 0 && r.overloaded !== true),
      activeConns: count.active, inactiveConns: count.inactive,
    };
  }

  private kernelFastPathStatus(): BalancerStatus["kernelFastPath"] {
    const state = this.engine.kernelFastPathState();
    return {
      setting: this.config.kernelFastPath,
      enabled: state.active,
      flows: this.engine.kernelFastPathFlows(),
      ...(state.unavailable !== undefined ? { unavailable: state.unavailable } : {}),
      scheduling: { setting: this.config.kernelScheduling, active: state.scheduling, services: state.schedulingServices },
    };
  }

  private interfaceStatus(): BalancerStatus["interfaces"] {
    const xdp = new Map(this.engine.xdpStates().map((s) => [s.name, { mode: s.mode, receiveQueues: s.receiveQueues }]));
    return this.gateway.interfaces.map((i) => {
      const state = xdp.get(i.name);
      const link = this.linkStates.get(i.name);
      return { name: i.name, role: i.role, receivePath: i.receivePath, ...(state ? { xdp: state } : {}), ...(link && link !== "up" ? { link } : {}) };
    });
  }

  /**
   * The flow map's connections. With a limit (or nothing): every one, up to the limit, as before. With
   * a ConnectionQuery: one page of those that match (service, real, client, state), by default
   * DEFAULT_CONNECTION_PAGE; `next` goes on. Throws ApiError for a malformed query.
   */
  connections(limit?: number): Connection[];
  connections(query: ConnectionQuery): ConnectionPage<Connection>;
  connections(query?: number | ConnectionQuery): Connection[] | ConnectionPage<Connection> {
    if (query === undefined || typeof query === "number") return this.flows.connections(query);
    return this.flows.page(flowFilterOf(query), cursorOf(query), pageLimitOf(query));
  }

  counters(): EngineCounters {
    return this.engine.counters();
  }

  /**
   * Like `ipvsadm -L --stats --rate`: per service and per real, connections, packets and bytes in and
   * out since natlb started (user space and kernel fast path together), and their rates. A service's
   * counts keep those of its removed reals (as IPVS).
   */
  stats(): BalancerStats {
    return this.traffic.stats();
  }

  /**
   * The number of the selection-table snapshot the data plane uses now: it moves once a change (API
   * call, reload, health change) has reached the data plane.
   */
  dataPlaneGeneration(): number {
    return this.engine.servicesGeneration();
  }

  /** Stops forwarding and removes the kernel set-up. Safe to call more than once. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopping.abort();
    if (this.rampTimer) clearTimeout(this.rampTimer);
    if (this.routeTimer) clearInterval(this.routeTimer);
    if (this.pressureTimer) clearInterval(this.pressureTimer);
    // The router stops sending here first (to the other instances), while this one still forwards.
    await this.announcer?.stop();
    this.traffic.stop();
    this.hub.close();
    // A change under way finishes first (queued ones see `stopped` and do nothing), so nothing
    // re-installs kernel state after undo.
    await this.changeQueue;
    try {
      await this.health.stop();
      this.engine.stopSync();
      this.engine.stop();
      await this.kernel?.undo();
    } finally {
      await this.lock.release();
    }
    this.log.info("natlb stopped");
  }

  // ---- internals ----------------------------------------------------------------------------------

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = this.changeQueue.then(work, work);
    this.changeQueue = run.catch(() => undefined);
    return run;
  }

  private change(edit: (raw: { services: unknown[] } & Record<string, unknown>) => void): Promise<void> {
    const origin = currentChangeOrigin();
    return this.enqueue(async () => {
      if (this.stopped) throw new ApiError("the balancer is stopped", { status: 409 });
      const raw = JSON.parse(JSON.stringify(this.config)) as { services: unknown[] } & Record<string, unknown>;
      edit(raw);
      await this.apply(parseConfig(raw), origin);
    });
  }

  private indexOf(ref: ServiceRef): number {
    const key = serviceKey({ vip: ref.vip, port: ref.port, protocol: ref.protocol ?? "tcp" });
    const index = this.config.services.findIndex((s) => serviceKey(s) === key);
    if (index < 0) throw new ApiError(`no service ${key}: list services with \`natlb status\``, { status: 404 });
    return index;
  }

  private realIndexOf(serviceIndex: number, real: RealRef): number {
    const service = this.config.services[serviceIndex]!;
    const index = service.reals.findIndex((r) => r.ip === real.ip && (real.port === undefined || r.port === real.port));
    if (index < 0) {
      throw new ApiError(`service ${serviceKey(service)} has no real server ${real.ip}${real.port ? `:${real.port}` : ""}`, { status: 404 });
    }
    return index;
  }

  private async apply(next: NatlbConfig, origin: ChangeOrigin): Promise<void> {
    if (this.stopped) throw new ApiError("the balancer is stopped", { status: 409 });
    if (next.flowCapacity !== this.config.flowCapacity) {
      throw new ApiError("flowCapacity cannot change while running: restart natlb to resize the flow map", { status: 409 });
    }
    if (JSON.stringify(next.interfaces) !== JSON.stringify(this.config.interfaces)) {
      throw new ApiError("interfaces cannot change while running: restart natlb", { status: 409 });
    }
    if (!sameReceivePaths(next.receivePath, this.config.receivePath)) {
      throw new ApiError("receivePath cannot change while running: restart natlb", { status: 409 });
    }
    if (next.kernelFastPath !== this.config.kernelFastPath) {
      throw new ApiError("kernelFastPath cannot change while running: restart natlb", { status: 409 });
    }
    if (next.workerThreads !== this.config.workerThreads) {
      throw new ApiError("workerThreads cannot change while running: restart natlb", { status: 409 });
    }
    if (JSON.stringify(next.bgp) !== JSON.stringify(this.config.bgp)) {
      throw new ApiError("bgp cannot change while running: restart natlb", { status: 409 });
    }
    if ((next.ha === undefined) !== (this.config.ha === undefined)) {
      throw new ApiError(`the "ha" block cannot be ${next.ha ? "added" : "removed"} while running (it decides whether this gateway claims the VIPs): restart natlb`, { status: 409 });
    }
    if (JSON.stringify(next.sync) !== JSON.stringify(this.config.sync)) {
      throw new ApiError("sync cannot change while running: restart natlb", { status: 409 });
    }
    // A "dr" real must be on a link this natlb runs on (whatever a fresh start would derive).
    checkDirectRealsOnLink(next, this.gateway.interfaces);
    checkFullNatLocalAddresses(next, this.gateway.interfaces);
    if (!next.interfaces) {
      const needed = await discoverGateway(next);
      const running = new Set(this.gateway.interfaces.map((i) => `${i.name}/${i.role}`));
      const missing = needed.interfaces.filter((i) => i.role === "backend" && !running.has(`${i.name}/${i.role}`));
      if (missing.length > 0) {
        throw new ApiError(
          `the new real servers are reached through ${missing.map((i) => i.name).join(", ")}, which this natlb does not run on: restart natlb`,
          { status: 409 },
        );
      }
    }
    const previous = this.config;
    const previousPlan = this.kernelPlan();
    const previousDraining = new Map(this.draining);
    const previousRamps = new Map(this.rampStarts);
    const removed = this.trackRemovedReals(previous, next);
    const diff = diffConfig(previous, next);
    this.config = next;
    if (next.ha) this.pairRole?.reconfigure(next.ha);
    this.trackRamps(diff);
    const nextPlan = this.kernelPlan();
    try {
      // The kernel hands natlb a new VIP's frames before the engine serves it, and takes an old VIP
      // back only after the engine has stopped serving it.
      await this.kernel?.update(mergePlans(previousPlan, nextPlan));
      this.engine.setTimeouts(next.timeouts);
      this.engine.setFloodProtection(nativeFloodProtection(next.floodProtection));
      this.engine.setKernelScheduling(next.kernelScheduling);
      this.publish();
      this.syncHealthChecks();
      await this.kernel?.update(nextPlan);
      this.endFlowsOfDeadReals(removed);
      this.hub.publish({ type: "change", change: summarizeDiff(diff), origin });
      this.scheduleRampStep();
      if (!this.kernel && JSON.stringify(nextPlan) !== JSON.stringify(previousPlan)) {
        this.log.warn("the VIPs changed and natlb runs without kernel set-up: run `natlb kernel-setup --config <file>` again");
      }
    } catch (error) {
      this.config = previous;
      this.rampStarts = previousRamps;
      this.draining.clear();
      for (const [key, reals] of previousDraining) this.draining.set(key, reals);
      this.publish();
      this.syncHealthChecks();
      await this.kernel?.update(previousPlan).catch((undoError: unknown) =>
        this.log.error({ err: undoError }, "could not restore the kernel set-up after a failed change"),
      );
      throw error;
    }
  }

  /**
   * Slow start: reals added to a running service, or given a weight again after 0, start a ramp;
   * ramps of reals and services that are gone are forgotten.
   */
  private trackRamps(diff: ConfigDiff): void {
    const now = Date.now();
    for (const change of diff.changed) {
      const starting = [...change.reals.added, ...change.reals.updated.filter((u) => u.old.weight === 0 && u.next.weight > 0).map((u) => u.next)];
      for (const real of starting) this.startRamp(change.next, real, now);
    }
    if (this.rampStarts.size === 0) return;
    const present = new Set(this.config.services.flatMap((s) => s.reals.map((r) => `${serviceKey(s)}|${realKey(r)}`)));
    for (const key of [...this.rampStarts.keys()]) if (!present.has(key)) this.rampStarts.delete(key);
  }

  private startRamp(service: ServiceConfig, real: RealConfig, now: number): void {
    if (slowStartOf(service, real) <= 0) return;
    const ramp = { service: serviceKey(service), real: realKey(real), startedAt: now };
    this.rampStarts.set(`${ramp.service}|${ramp.real}`, ramp);
  }

  /** The share of its weight a real has now: below 1 while it ramps up; a finished ramp is forgotten. */
  private rampFractionOf(service: ServiceConfig, real: RealConfig, now: number): number {
    if (this.rampStarts.size === 0) return 1;
    const key = `${serviceKey(service)}|${realKey(real)}`;
    const ramp = this.rampStarts.get(key);
    if (ramp === undefined) return 1;
    const fraction = rampFraction(now - ramp.startedAt, slowStartOf(service, real));
    if (fraction >= 1) this.rampStarts.delete(key);
    return fraction;
  }

  /** Rebuilds the tables of ramping reals' services when the next ramp step is due (one timer for all ramps). */
  private scheduleRampStep(): void {
    if (this.rampTimer) clearTimeout(this.rampTimer);
    this.rampTimer = undefined;
    if (this.stopped || this.rampStarts.size === 0) return;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    const ended = new Set<string>();
    for (const [key, ramp] of this.rampStarts) {
      const service = this.config.services.find((s) => serviceKey(s) === ramp.service);
      const real = service?.reals.find((r) => realKey(r) === ramp.real);
      const change = service && real ? nextRampChangeMs(now - ramp.startedAt, slowStartOf(service, real)) : undefined;
      if (change === undefined) {
        // Over (or its slowStartS was edited away): its service's table gets the whole weight now.
        this.rampStarts.delete(key);
        ended.add(ramp.service);
      } else next = Math.min(next, ramp.startedAt + change);
    }
    if (ended.size > 0) this.publish([...ended]);
    if (this.rampStarts.size === 0) return;
    this.rampTimer = setTimeout(() => {
      this.rampTimer = undefined;
      void this.enqueue(async () => {
        if (this.stopped) return;
        this.publish([...new Set([...this.rampStarts.values()].map((r) => r.service))]);
        this.scheduleRampStep();
      });
    }, Math.max(0, next - now) + 1);
    this.rampTimer.unref();
  }

  /**
   * Reals the change removes from services that stay: kept as draining (their flows go on), unless the
   * service ends dead reals' flows (deadRealFlows). Returns them, with their service as it will be.
   */
  private trackRemovedReals(previous: NatlbConfig, next: NatlbConfig): Array<{ service: ServiceConfig; real: RealConfig }> {
    const nextByKey = new Map(next.services.map((s) => [serviceKey(s), s]));
    const removed: Array<{ service: ServiceConfig; real: RealConfig }> = [];
    for (const key of [...this.draining.keys()]) if (!nextByKey.has(key)) this.draining.delete(key);
    for (const old of previous.services) {
      const key = serviceKey(old);
      const kept = nextByKey.get(key);
      if (!kept) continue;  // a removed service takes its connections with it, as in IPVS
      const present = new Set(kept.reals.map(realKey));
      const draining = (this.draining.get(key) ?? []).filter((r) => !present.has(realKey(r)));
      for (const real of old.reals) {
        if (present.has(realKey(real))) continue;
        removed.push({ service: kept, real });
        if (kept.deadRealFlows === "keep" && !draining.some((r) => realKey(r) === realKey(real))) draining.push(real);
      }
      if (draining.length > 0) this.draining.set(key, draining);
      else this.draining.delete(key);
    }
    return removed;
  }

  /** A real that went down or was removed: its flows end now, unless its service keeps them. */
  private endFlowsOfDeadReals(dead: ReadonlyArray<{ service: ServiceConfig; real: RealConfig }>): void {
    const ending = dead.filter(({ service }) => service.deadRealFlows !== "keep");
    if (ending.length === 0) return;
    this.engine.endFlowsOf(
      ending.map(({ service, real }) => ({
        vip: service.vip, port: service.port, protocol: service.protocol, realIp: real.ip, realPort: real.port,
        reset: service.deadRealFlows === "reset",
      })),
    );
    for (const { service, real } of ending) {
      this.log.warn({ service: serviceKey(service), real: realKey(real), deadRealFlows: service.deadRealFlows }, "ending the flows of a dead real server");
    }
  }

  /** Forgets draining reals whose last connection has ended (the data plane's per-real counts say so). */
  private async forgetDrainedReals(): Promise<void> {
    if (this.stopped || this.draining.size === 0) return;
    const changedServices: string[] = [];
    for (const [key, reals] of this.draining) {
      const service = this.config.services.find((s) => serviceKey(s) === key);
      const still = service
        ? reals.filter((r) => {
            const count = this.flows.realCounts(this.realIdFor(service, r));
            return count.active + count.inactive > 0;
          })
        : [];
      if (still.length !== reals.length) changedServices.push(key);
      if (still.length > 0) this.draining.set(key, still);
      else this.draining.delete(key);
    }
    if (changedServices.length > 0) this.publish(changedServices);
  }

  /** The configured reals of a service, then the draining ones (which no slot points at). */
  private realsWithDraining(service: ServiceConfig): RealConfig[] {
    return [...service.reals, ...(this.draining.get(serviceKey(service)) ?? [])];
  }

  private realIdFor(service: ServiceConfig, real: RealConfig, role: "real" | "fallback" = "real"): number {
    const key = `${serviceKey(service)}|${role === "real" ? "" : "fallback "}${realKey(real)}`;
    let id = this.realIds.get(key);
    if (id === undefined) {
      id = this.nextRealId++ & 0xffff;
      this.realIds.set(key, id);
      const ofService = this.realIdsOfService.get(serviceKey(service)) ?? new Set<number>();
      ofService.add(id);
      this.realIdsOfService.set(serviceKey(service), ofService);
    }
    return id;
  }

  /** The fallback real's id: its own counts, apart from a configured real at the same address. */
  private fallbackIdFor(service: ServiceConfig): number {
    return this.realIdFor(service, { ip: service.fallback!.ip, port: service.fallback!.port, weight: 0 }, "fallback");
  }

  private isUp(service: ServiceConfig, real: RealConfig): boolean {
    if (service.healthCheck.type === "none") return true;
    return this.health.isUp(serviceKey(service), { ip: real.ip, port: real.port }) ?? true;
  }

  /**
   * Hands the engine the services whose selection tables changed. A table is rebuilt only when what it
   * is built from changed (scheduler, reals, weights, health, draining reals); `touched` narrows the
   * look to those services (a health change, a drained real). With the same services as before, only
   * the changed ones go to the engine (replaceServices); a new or removed service, a whole new snapshot.
   */
  private publish(touched?: readonly string[]): void {
    const keys = this.config.services.map(serviceKey);
    const sameServices = this.publishedKeys !== undefined && keys.join(",") === this.publishedKeys;
    const wanted = touched && new Set(touched);
    const considered = sameServices && wanted ? this.config.services.filter((s) => wanted.has(serviceKey(s))) : this.config.services;
    const rebuilt = new Map<string, BuiltService>();
    const now = Date.now();
    for (const s of considered) {
      const key = serviceKey(s);
      const reals = s.reals.map((r) => ({ ip: r.ip, port: r.port, weight: r.weight, up: this.isUp(s, r), fraction: this.rampFractionOf(s, r, now) }));
      // A ramping real's share of its weight (slow start) is in the table's input.
      const input = rampedTableInput(s.scheduler, reals);
      const endpoints = this.realsWithDraining(s).map((r) => ({
        ip: r.ip, port: r.port, id: this.realIdFor(s, r), ...limitsOf(r), ...(r.forwarding !== undefined ? { forwarding: r.forwarding } : {}),
      }));
      const fallback = s.fallback && { ...s.fallback, id: this.fallbackIdFor(s) };
      const pickUp = midStreamPickUpOf(s, this.config.bgp);
      const inputs = JSON.stringify([s.forwarding, s.fullnat, input.scheduler, s.schedulerFlags, s.mhSeed, pickUp, input.reals, endpoints, fallback, s.timeouts, s.persistence]);
      if (this.built.get(key)?.inputs === inputs) continue;
      const table = schedulerFor(input.scheduler).build({ reals: input.reals, ...(s.mhSeed !== undefined ? { seed: s.mhSeed } : {}) });
      rebuilt.set(key, {
        inputs,
        service: {
          vip: s.vip, port: s.port, protocol: s.protocol, ...(s.forwarding === "dr" ? { directRouting: true } : {}),
          ...(s.fullnat ? { fullNat: nativeFullNat(s.fullnat, s.forwarding !== "fullnat") } : {}),
          mode: table.mode, slots: table.slots, ...(table.weights ? { weights: table.weights } : {}),
          ...(table.mode === "hash" ? hashOptionsOf(s.schedulerFlags) : {}),
          // A ramp (slow start) turns "mh" into another mode for a while: no pick-up then.
          ...(table.mode === "hash" && pickUp ? { midStreamPickUp: true } : {}), reals: endpoints, ...(fallback ? { fallback } : {}),
          ...(s.timeouts ? { timeouts: s.timeouts } : {}),
          ...(s.persistence ? { persistence: persistenceFor(s.persistence, reals, endpoints) } : {}),
        },
        up: reals.map((r) => r.up),
        checks: [],
      });
    }
    if (sameServices) {
      if (rebuilt.size > 0) this.engine.replaceServices([...rebuilt.values()].map((b) => b.service));
    } else {
      const all = keys.map((key) => (rebuilt.get(key) ?? this.built.get(key))!.service);
      this.engine.setServices(all);
      this.publishedKeys = keys.join(",");
      const present = new Set(keys);
      for (const key of [...this.built.keys()]) if (!present.has(key)) this.built.delete(key);
    }
    for (const [key, built] of rebuilt) this.built.set(key, built);
    this.announcer?.follow(this.servedVips());
  }

  /**
   * The VIPs with somewhere to send a new connection: one of their services has a real that is up
   * with a weight, or a fallback real. BIRD announces these (config bgp).
   */
  private servedVips(): string[] {
    const served = this.config.services.filter((s) => s.fallback !== undefined || s.reals.some((r) => r.weight > 0 && this.isUp(s, r)));
    return [...new Set(served.map((s) => s.vip))];
  }

  /** A published real's health check, kept with its table so status does not look it up by name each time. */
  private checkOf(built: BuiltService, index: number, key: string, real: RealConfig): RealHealthReader | undefined {
    let reader = built.checks[index];
    if (reader === undefined || reader.removed) {
      reader = this.health.readerOf(key, { ip: real.ip, port: real.port });
      built.checks[index] = reader;
    }
    return reader;
  }

  private kernelPlan(): KernelPlan {
    return kernelPlanFor(this.config, this.gateway.interfaces);
  }

  private syncHealthChecks(): void {
    const wanted = new Map<string, { service: ServiceConfig; real: RealConfig }>();
    for (const service of this.config.services) {
      if (service.healthCheck.type === "none") continue;
      for (const real of service.reals) wanted.set(`${serviceKey(service)}|${realKey(real)}`, { service, real });
    }
    for (const status of this.health.status()) {
      const key = `${status.serviceKey}|${realKey(status.real)}`;
      if (!wanted.has(key)) this.health.remove(status.serviceKey, status.real);
    }
    const checkers = new Map<string, ReturnType<typeof checkerFor>>();
    for (const { service, real } of wanted.values()) {
      if (service.healthCheck.type === "none") continue;
      const key = serviceKey(service);
      let checker = checkers.get(key);
      if (!checker) checkers.set(key, (checker = checkerFor(service.healthCheck, key)));
      this.health.add(key, { ip: real.ip, port: real.port }, service.healthCheck, checker);
    }
  }

  private onHealthChange(change: HealthChange): void {
    if (this.stopped) return;
    this.hub.publish({ type: "health", service: change.serviceKey, real: realKey(change.real), up: change.up, reason: change.reason });
    this.log.warn({ service: change.serviceKey, real: realKey(change.real), up: change.up, reason: change.reason }, "real server health changed");
    // Slow start: a real that comes back ramps up again from the start (one that went down mid-ramp too).
    const service = this.config.services.find((s) => serviceKey(s) === change.serviceKey);
    const real = service?.reals.find((r) => r.ip === change.real.ip && r.port === change.real.port);
    if (service && real) {
      if (change.up) this.startRamp(service, real, Date.now());
      else this.rampStarts.delete(`${change.serviceKey}|${realKey(real)}`);
    }
    // Changes that arrive together (a real that many services share went down) reach the data plane
    // in one hand-over. Through the change queue: a configuration change under way finishes its kernel
    // steps first.
    this.pendingHealthChanges.push(change);
    if (this.pendingHealthChanges.length > 1) return;
    void this.enqueue(async () => {
      const changes = this.pendingHealthChanges.splice(0);
      if (this.stopped) return;
      this.publish(changes.map((c) => c.serviceKey));  // first: no new flow goes to a real that went down
      this.scheduleRampStep();
      const dead: Array<{ service: ServiceConfig; real: RealConfig }> = [];
      for (const c of changes) {
        const service = this.config.services.find((s) => serviceKey(s) === c.serviceKey);
        const real = service?.reals.find((r) => r.ip === c.real.ip && r.port === c.real.port);
        // Down now (it may have come back within the batch), and not already listed.
        if (service && real && !this.isUp(service, real) && !dead.some((d) => d.service === service && d.real === real)) dead.push({ service, real });
      }
      this.endFlowsOfDeadReals(dead);
    });
  }

  /** Once a second: the flow map's fill and the drop counters, for flowMapPressure and dropSpike events. */
  private watchPressure(): void {
    const watch = new PressureWatch();
    let last = performance.now();
    const sample = () => {
      const now = performance.now();
      const stats = this.flows.stats();
      const counters = this.engine.counters();
      const drops: Record<string, number> = {};
      for (const name of COUNTER_NAMES) if (name.startsWith("drop") || name === "ringDrops") drops[name] = counters[name];
      const events = watch.observe({ live: stats.live, capacity: stats.capacity, fullDrops: stats.fullDrops, drops }, (now - last) / 1000, now / 1000);
      last = now;
      for (const event of events) {
        this.hub.publish(event);
        this.log.warn(event, `event: ${event.type}`);
      }
    };
    sample();
    this.pressureTimer = setInterval(sample, 1000);
    this.pressureTimer.unref();
  }

  /**
   * Someone flushed the nftables ruleset (a firewall reload does): without natlb's table the kernel
   * forwards natlb's replies unchanged. Install it again and claim every live flow's replies anew.
   */
  private async restoreKernelSetup(): Promise<void> {
    if (this.stopped || !this.kernel || (await this.kernel.intact())) return;
    this.log.error("natlb's nftables table is gone (was the ruleset flushed?): installing it again");
    await this.kernel.apply(this.kernelPlan());
    this.engine.renewReplyClaims();
  }

  /**
   * Every few seconds: whether the links natlb runs on are still there and up. A link that is down or
   * gone is reported (log and status); when it is back (up again, or created again with a new
   * ifindex) the data plane restarts on the interfaces as they are now, keeping flows and counters.
   */
  private async watchLinks(): Promise<void> {
    if (this.stopped) return;
    const links = await listLinks();
    let back = this.restartPending;
    for (const managed of this.gateway.interfaces) {
      const reading = readLinkState(managed, links);
      const before = this.linkStates.get(managed.name) ?? "up";
      if (reading.state !== before) {
        this.reportLinkState(managed.name, reading.state, before);
        if (reading.state === "up") this.linkStates.delete(managed.name);
        else this.linkStates.set(managed.name, reading.state);
      }
      if ((reading.state === "up" && before !== "up") || (reading.state === "replaced" && reading.ready)) back = true;
    }
    if (back) await this.restartDataPlane();
  }

  private reportLinkState(name: string, state: LinkState, before: LinkState): void {
    const fields = { interface: name, link: state, was: before };
    if (state === "up") this.log.warn(fields, `interface ${name} is up again: restarting the data plane on it`);
    else if (state === "down") this.log.error(fields, `interface ${name} is down (or has no carrier): natlb forwards nothing through it until it is up again, then takes it up by itself`);
    else if (state === "gone") {
      this.log.error(fields, `interface ${name} is gone (deleted?): natlb forwards nothing through it; when an interface of that name is back, up and with its addresses, natlb takes it up by itself`);
    } else this.log.warn(fields, `interface ${name} was created again (a new ifindex): natlb takes it up once it is up with its addresses`);
  }

  /** Stops the engine and starts it again on the interfaces as they are now (same names and roles). */
  private async restartDataPlane(): Promise<void> {
    this.restartPending = true;
    let gateway: GatewayView;
    try {
      gateway = await discoverGateway(this.config);
    } catch (error) {
      this.log.warn({ err: error }, "the data plane waits for its interfaces: they are not all back yet (natlb looks again in 5 s)");
      return;
    }
    const shape = (view: GatewayView) => view.interfaces.map((i) => `${i.name}/${i.role}`).join(",");
    if (shape(gateway) !== shape(this.gateway)) {
      this.log.warn(
        { running: shape(this.gateway), found: shape(gateway) },
        "the data plane waits for its interfaces: they are not all back yet (natlb looks again in 5 s; if they changed for good, restart natlb)",
      );
      return;
    }
    // A link created again may come up before its addresses are back: the engine reads them at start.
    const unaddressed = gateway.interfaces.filter((i, k) => i.addresses.length === 0 && this.gateway.interfaces[k]!.addresses.length > 0);
    if (unaddressed.length > 0) {
      this.log.warn(
        { interfaces: unaddressed.map((i) => i.name) },
        "the data plane waits for its interfaces' IPv4 addresses to be back (natlb looks again in 5 s)",
      );
      return;
    }
    const replaced = gateway.interfaces.some((i, k) => i.ifindex !== this.gateway.interfaces[k]!.ifindex);
    this.engine.stop();
    this.engine.replaceInterfaces(gateway.interfaces);
    this.gateway = gateway;
    this.engine.setRoutes(gateway.routes);
    this.engine.learnNeighbours(gateway.neighbours);
    this.engine.setLocalAddresses(gateway.localAddresses);
    try {
      // A new interface of the same name: the ownership table's hooks are bound to it anew.
      if (replaced) await this.kernel?.apply(this.kernelPlan());
      this.engine.start();
    } catch (error) {
      this.log.error({ err: error }, "could not restart the data plane: natlb forwards nothing and tries again in 5 s; if this persists, restart natlb");
      return;
    }
    if (replaced) this.engine.renewReplyClaims();
    this.restartPending = false;
    this.linkStates.clear();  // every interface is taken up as it is now
    this.log.warn(
      { interfaces: gateway.interfaces.map((i) => `${i.name}(${i.role}, ifindex ${i.ifindex})`) },
      "data plane restarted on the interfaces as they are now: forwarding resumes",
    );
  }

  /** Every few seconds: routes, neighbours and the gateway's addresses change under a running natlb. */
  private async refreshRoutes(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.enqueue(() => this.watchLinks());
      const [routes, neighbours, localAddresses] = await Promise.all([
        readRoutes(this.gateway.interfaces), readNeighbours(this.gateway.interfaces), readLocalAddresses(),
      ]);
      if (this.stopped) return;
      this.engine.setRoutes(routes);
      this.engine.learnNeighbours(neighbours);
      this.engine.setLocalAddresses(localAddresses);
      await this.enqueue(() => this.forgetDrainedReals());
      await this.enqueue(() => this.restoreKernelSetup());
    } catch (error) {
      this.log.warn({ err: error }, "could not refresh routes, neighbours or draining reals");
    }
  }
}

/** A real's slow start, seconds: its own, else its service's; 0 for none. */
function slowStartOf(service: ServiceConfig, real: RealConfig): number {
  return real.slowStartS ?? service.slowStartS ?? 0;
}

/** A real's connection limits as the data plane takes them (none: nothing). */
/** A service's source pool for the engine; forRealsOnly: only its reals with their own "fullnat" use it. */
function nativeFullNat(pool: FullNatConfig, forRealsOnly: boolean): NonNullable<NativeService["fullNat"]> {
  return {
    localAddresses: [...pool.localAddresses], firstPort: pool.localPorts.first, lastPort: pool.localPorts.last, ...(forRealsOnly ? { forRealsOnly } : {}),
  };
}

function limitsOf(real: RealConfig): { maxConns?: number; minConnsToResume?: number } {
  return {
    ...(real.maxConns !== undefined ? { maxConns: real.maxConns } : {}),
    ...(real.minConnsToResume !== undefined ? { minConnsToResume: real.minConnsToResume } : {}),
  };
}

function healthView(check: RealHealthReader): RealHealthView {
  return {
    reason: check.reason, checks: check.checks, recentChanges: check.recentChanges,
    ...(check.heldDownUntil !== undefined ? { heldDownUntil: new Date(check.heldDownUntil).toISOString() } : {}),
  };
}

function nativeFloodProtection(f: FloodProtection): NativeFloodProtection {
  const permille = (share: number) => Math.round(share * 1000);
  return {
    halfOpenSharePermille: Math.max(1, permille(f.halfOpenShare)),
    udpSharePermille: Math.max(1, permille(f.unassuredUdpShare)),
    pressureAtPermille: permille(f.pressureAt),
    pressureTimeoutSeconds: f.pressureTimeout,
  };
}

/** The kernel set-up a configuration needs on these interfaces (the daemon's and `natlb kernel-setup`'s). */
export function kernelPlanFor(config: NatlbConfig, interfaces: readonly NativeInterface[]): KernelPlan {
  const named = (role: "client" | "backend") => interfaces.filter((i) => i.role === role).map((i) => i.name);
  return planFor(config.services, { client: named("client"), backend: named("backend") }, config.flowCapacity);
}

/** Why the data plane did not start, with the remedy: capabilities only when a permission was refused. */
function dataPlaneFailure(message: string, usesXdp: boolean, kernelFastPath: boolean): string {
  const refused = /not permitted|permission denied/i.test(message);
  if (!refused) return `cannot start the data plane: ${message}`;
  return (
    `cannot open the packet rings (${message}): natlb needs CAP_NET_RAW` +
    (usesXdp ? `, and receivePath "af_xdp" also CAP_BPF, CAP_NET_ADMIN and CAP_IPC_LOCK (or use "af_packet")` : "") +
    (kernelFastPath ? `, and kernelFastPath true also CAP_BPF and CAP_NET_ADMIN (or set it to "auto" or false)` : "") +
    "; run as root or grant the capabilities"
  );
}
