// `lb.stats()`: per service and per real server, the traffic counts the engine keeps (per real id,
// summed over its workers and the kernel fast path: native/engine/real_stats.h) and their rates.
//
// A service's totals are the sum over every real it has had since natlb started, as IPVS keeps a
// removed destination's counts in its service's: a real removed (or draining) stays in them, and a
// real added again under the same service goes on from its own earlier counts (natlb keeps a real's id
// for its service and address). A service removed and added again likewise goes on from its counts.
import { performance } from "node:perf_hooks";
import type { Protocol } from "../config";
import { RateEstimator, type RateEstimatorOptions } from "./rateEstimator";
import { addCounts, zeroCounts, type TrafficCounts, type TrafficRates } from "./trafficCounts";

export interface RealTrafficStats {
  ip: string;
  port: number;
  counts: TrafficCounts;
  rates: TrafficRates;
}

export interface ServiceTrafficStats {
  vip: string;
  port: number;
  protocol: Protocol;
  /** Every real the service has had since natlb started, removed ones included (as IPVS). */
  counts: TrafficCounts;
  rates: TrafficRates;
  /** The configured reals, in config order. */
  reals: RealTrafficStats[];
}

export interface BalancerStats {
  services: ServiceTrafficStats[];
  /** How often the rates are sampled, seconds (each sample moves the average a quarter of the way). */
  rateSampleSeconds: number;
}

/** What the stats are read from: the balancer's services with their reals' ids, and the engine's counts. */
export interface TrafficSource {
  services(): ReadonlyArray<{
    key: string;
    vip: string;
    port: number;
    protocol: Protocol;
    reals: ReadonlyArray<{ ip: string; port: number; id: number }>;
    /** The ids of every real the service has had (the configured ones among them). */
    everyRealId: Iterable<number>;
  }>;
  realTraffic(ids: readonly number[]): TrafficCounts[];
}

export interface TrafficStatsOptions extends RateEstimatorOptions {
  /** Rate sample interval, ms. Default 2000 (IPVS's). */
  sampleIntervalMs?: number;
  /** The monotonic clock, ms (tests drive it). */
  now?: () => number;
}

interface Reading {
  services: ReturnType<TrafficSource["services"]>;
  byId: Map<number, TrafficCounts>;
  serviceCounts: TrafficCounts[];
}

export class TrafficStats {
  private readonly estimator: RateEstimator<string>;
  private readonly sampleIntervalMs: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly source: TrafficSource, options: TrafficStatsOptions = {}) {
    this.estimator = new RateEstimator(options);
    this.sampleIntervalMs = options.sampleIntervalMs ?? 2000;
    this.now = options.now ?? (() => performance.now());
  }

  /** Samples the rates every interval from now on (the first sample now). */
  start(): void {
    this.sample();
    this.timer = setInterval(() => {
      // A timer's exception would end the daemon: a sample that fails is skipped, the next one counts
      // the whole interval since the last good one.
      try {
        this.sample();
      } catch {
        // nothing to do: the rates stay as they were until the next sample
      }
    }, this.sampleIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One rate sample of every service and real (the timer's; tests with a driven clock call it). */
  sample(): void {
    const reading = this.read();
    const entries: Array<[string, TrafficCounts]> = [];
    reading.services.forEach((service, i) => {
      entries.push([serviceKeyOf(service.key), reading.serviceCounts[i]!]);
      for (const real of service.reals) entries.push([realKeyOf(real.id), reading.byId.get(real.id)!]);
    });
    this.estimator.sample(this.now(), entries);
  }

  stats(): BalancerStats {
    const reading = this.read();
    return {
      services: reading.services.map((service, i) => ({
        vip: service.vip,
        port: service.port,
        protocol: service.protocol,
        counts: reading.serviceCounts[i]!,
        rates: this.estimator.ratesOf(serviceKeyOf(service.key)),
        reals: service.reals.map((real) => ({
          ip: real.ip, port: real.port, counts: { ...reading.byId.get(real.id)! }, rates: this.estimator.ratesOf(realKeyOf(real.id)),
        })),
      })),
      rateSampleSeconds: this.sampleIntervalMs / 1000,
    };
  }

  /** One read of the engine for every id any service needs. */
  private read(): Reading {
    const services = this.source.services();
    const ids = new Set<number>();
    const everyId = services.map((service) => {
      const own = new Set(service.everyRealId);
      for (const real of service.reals) own.add(real.id);
      for (const id of own) ids.add(id);
      return own;
    });
    const list = [...ids];
    const counts = this.source.realTraffic(list);
    const byId = new Map(list.map((id, i) => [id, counts[i]!]));
    const serviceCounts = everyId.map((own) => {
      const total = zeroCounts();
      for (const id of own) addCounts(total, byId.get(id)!);
      return total;
    });
    return { services, byId, serviceCounts };
  }
}

const serviceKeyOf = (key: string) => `service ${key}`;
const realKeyOf = (id: number) => `real ${id}`;
