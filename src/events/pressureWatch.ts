// Once a second, reads the flow map's fill and the drop counters (both O(1): header fields and
// per-worker counters, no flow-map walk) and publishes the moments that need an operator: the map
// filling up, and a drop reason jumping far above its usual rate (a flood, a lost route, a full ring).

import type { NatlbEventBody } from "./natlbEvent";

export interface PressureSample {
  readonly live: number;
  readonly capacity: number;
  /** Flows refused because the map was full, since start. */
  readonly fullDrops: number;
  /** Drop counters by reason, since start. */
  readonly drops: Readonly<Record<string, number>>;
}

/** The levels and rates that make an event. */
export const PRESSURE_LIMITS = Object.freeze({
  highFill: 0.8,
  normalFill: 0.7,
  /** A reason's drops per second below this never make a spike. */
  spikeMinPerSecond: 100,
  /** ...and must be this many times the usual rate. */
  spikeFactor: 10,
  /** Seconds before the same reason can spike again. */
  spikeQuietS: 10,
  /** Weight of a new second in the usual rate (exponential average). */
  usualWeight: 0.1,
});

export class PressureWatch {
  private level: "normal" | "high" | "full" = "normal";
  private previous: PressureSample | undefined;
  private readonly usual = new Map<string, number>();
  private readonly lastSpike = new Map<string, number>();

  /** Feeds the sample taken `seconds` after the previous one; returns what to publish. */
  observe(sample: PressureSample, seconds: number, nowS: number): NatlbEventBody[] {
    const events: NatlbEventBody[] = [];
    const before = this.previous;
    this.previous = sample;
    const fill = sample.capacity > 0 ? sample.live / sample.capacity : 0;
    const refused = before !== undefined && sample.fullDrops > before.fullDrops;
    // Between the two fills the level holds (no flapping around one value); "full" lasts while flows are refused.
    const level = refused
      ? "full"
      : fill >= PRESSURE_LIMITS.highFill
        ? "high"
        : fill < PRESSURE_LIMITS.normalFill
          ? "normal"
          : this.level === "full" ? "high" : this.level;
    if (level !== this.level) {
      this.level = level;
      events.push({ type: "flowMapPressure", level, live: sample.live, capacity: sample.capacity });
    }
    if (before === undefined || seconds <= 0) return events;
    for (const [reason, total] of Object.entries(sample.drops)) {
      const rate = Math.max(0, total - (before.drops[reason] ?? 0)) / seconds;
      const usual = this.usual.get(reason) ?? 0;
      const quiet = nowS - (this.lastSpike.get(reason) ?? -Infinity) >= PRESSURE_LIMITS.spikeQuietS;
      if (rate >= PRESSURE_LIMITS.spikeMinPerSecond && rate >= PRESSURE_LIMITS.spikeFactor * usual && quiet) {
        this.lastSpike.set(reason, nowS);
        events.push({ type: "dropSpike", reason, perSecond: Math.round(rate), usualPerSecond: Math.round(usual * 10) / 10 });
      }
      this.usual.set(reason, usual + PRESSURE_LIMITS.usualWeight * (rate - usual));
    }
    return events;
  }
}
