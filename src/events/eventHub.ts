// Fan-out of natlb's events to any number of watchers, each with a bounded queue: a watcher that
// stops reading loses the oldest events (and is told how many) instead of growing natlb's memory.
// The last events are kept, so a watcher can start from a sequence number it already saw.

import type { NatlbEvent, NatlbEventBody } from "./natlbEvent";

export interface EventHubOptions {
  /** Events kept for watchers that start from an earlier sequence number. */
  readonly history?: number;
  /** Events queued per watcher before the oldest are dropped. */
  readonly queue?: number;
}

export interface WatchOptions {
  /** Replay the kept events with a sequence number above this one first. */
  readonly after?: number;
  /** Ends the watch. */
  readonly signal?: AbortSignal;
}

interface Watcher {
  readonly queue: NatlbEvent[];
  missed: number;
  wake: (() => void) | undefined;
  closed: boolean;
}

export class EventHub {
  private seq = 0;
  private readonly history: NatlbEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly historySize: number;
  private readonly queueSize: number;

  constructor(options: EventHubOptions = {}) {
    this.historySize = options.history ?? 1000;
    this.queueSize = options.queue ?? 1000;
  }

  get lastSeq(): number {
    return this.seq;
  }

  publish(body: NatlbEventBody): NatlbEvent {
    const event: NatlbEvent = { ...body, seq: ++this.seq, at: new Date().toISOString() };
    this.history.push(event);
    if (this.history.length > this.historySize) this.history.shift();
    for (const watcher of this.watchers) this.deliver(watcher, event);
    return event;
  }

  /** The events from now on (after `after`'s replay), until the signal aborts or close(). */
  async *watch(options: WatchOptions = {}): AsyncGenerator<NatlbEvent, void, undefined> {
    const watcher: Watcher = { queue: [], missed: 0, wake: undefined, closed: false };
    if (options.after !== undefined) {
      const after = options.after;
      for (const event of this.history) if (event.seq > after) this.deliver(watcher, event);
      const oldest = this.history[0]?.seq ?? this.seq + 1;
      if (after < oldest - 1 && this.seq > 0) watcher.missed += oldest - 1 - after;
    }
    this.watchers.add(watcher);
    const stop = () => {
      watcher.closed = true;
      watcher.wake?.();
    };
    options.signal?.addEventListener("abort", stop, { once: true });
    try {
      while (!watcher.closed && !options.signal?.aborted) {
        if (watcher.missed > 0) {
          const missed = watcher.missed;
          watcher.missed = 0;
          yield { type: "lagged", missed, seq: this.seq, at: new Date().toISOString() };
          continue;
        }
        const next = watcher.queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => {
          watcher.wake = resolve;
        });
        watcher.wake = undefined;
      }
    } finally {
      options.signal?.removeEventListener("abort", stop);
      this.watchers.delete(watcher);
    }
  }

  /** Ends every watch (natlb stopping). */
  close(): void {
    for (const watcher of this.watchers) {
      watcher.closed = true;
      watcher.wake?.();
    }
  }

  private deliver(watcher: Watcher, event: NatlbEvent): void {
    watcher.queue.push(event);
    if (watcher.queue.length > this.queueSize) {
      watcher.queue.shift();
      watcher.missed += 1;
    }
    watcher.wake?.();
  }
}
