// Rates from periodic samples of ever-growing counts, after IPVS's estimator (ip_vs_est.c): every
// sample (2 s by default, as IPVS) takes the rate over the interval since the last one and moves an
// exponential average a quarter of the way towards it (IPVS's `avg += (rate - avg) >> 2`). A burst
// shows within a sample or two; after traffic stops the rate falls by a quarter per sample (under 10%
// of what it was after 9 samples: 18 s at 2 s).
import { RATE_NAMES, TRAFFIC_COUNT_NAMES, type TrafficCounts, type TrafficRates } from "./trafficCounts";

export interface RateEstimatorOptions {
  /** How far the average moves towards each sample's rate (0 < weight <= 1). Default 0.25, as IPVS. */
  weight?: number;
}

export const ZERO_RATES: Readonly<TrafficRates> = Object.freeze({
  connectionsPerSecond: 0, packetsInPerSecond: 0, packetsOutPerSecond: 0, bytesInPerSecond: 0, bytesOutPerSecond: 0,
});

interface Estimate {
  last: TrafficCounts;
  atMs: number;
  rates: TrafficRates;
}

/** Rates per key (a real, a service), from the samples it is given; the caller's clock drives it. */
export class RateEstimator<K> {
  private readonly weight: number;
  private readonly estimates = new Map<K, Estimate>();

  constructor(options: RateEstimatorOptions = {}) {
    this.weight = options.weight ?? 0.25;
    if (!(this.weight > 0 && this.weight <= 1)) throw new RangeError(`the estimator's weight must be in (0, 1], not ${this.weight}`);
  }

  /**
   * One sample of every key's counts at `nowMs` (a monotonic clock). A key seen for the first time
   * starts at rate 0; a key no longer sampled is forgotten; counts that went back start it again.
   */
  sample(nowMs: number, counts: Iterable<readonly [K, TrafficCounts]>): void {
    const seen = new Set<K>();
    for (const [key, current] of counts) {
      seen.add(key);
      const estimate = this.estimates.get(key);
      const wentBack = estimate !== undefined && TRAFFIC_COUNT_NAMES.some((name) => current[name] < estimate.last[name]);
      if (estimate === undefined || wentBack) {
        this.estimates.set(key, { last: { ...current }, atMs: nowMs, rates: { ...ZERO_RATES } });
        continue;
      }
      const seconds = (nowMs - estimate.atMs) / 1000;
      if (seconds <= 0) continue;
      for (const name of TRAFFIC_COUNT_NAMES) {
        const rate = (current[name] - estimate.last[name]) / seconds;
        const rateName = RATE_NAMES[name];
        estimate.rates[rateName] += (rate - estimate.rates[rateName]) * this.weight;
      }
      estimate.last = { ...current };
      estimate.atMs = nowMs;
    }
    for (const key of [...this.estimates.keys()]) if (!seen.has(key)) this.estimates.delete(key);
  }

  /** The key's rates per second (0 before its second sample). */
  ratesOf(key: K): TrafficRates {
    const rates = this.estimates.get(key)?.rates ?? ZERO_RATES;
    return { ...rates };
  }
}
