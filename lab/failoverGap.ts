// The failover gap: from the moment a gateway is killed until a download's bytes move again at the
// client (RESUMED_BYTES more than when its links were down: nothing can be in flight then). The
// client's interface counters are sampled every few ms while the gateway dies and the other takes
// over; a reading counts from when it was asked for (a reading that began before the links were down
// may still grow with frames that were on their way).
import { clientReceivedBytes } from "./downloadProgress";
import type { Lab } from "./topology";
import { waitUntil } from "./wait";

/** Bytes the download must move after the kill to count as moving again. */
export const RESUMED_BYTES = 1024 * 1024;

export interface FailoverGap {
  /** Kill to RESUMED_BYTES more at the client, ms (to the end of the reading that saw them: an upper bound). */
  readonly gapMs: number;
  /** How long one reading of the counters took, at most: the gap's resolution. */
  readonly resolutionMs: number;
  /** When the kill began (Date.now()). */
  readonly killedAt: number;
  /** The client's bytes once the dead gateway's links were down. */
  readonly bytesAtKill: number;
}

/**
 * Calls `kill` (which must return once the gateway's links are down) while sampling the client's
 * received bytes, and resolves with the gap once the bytes moved again; rejects when they did not
 * within `timeoutMs`. Sampling is bounded by that time too.
 */
export async function measureFailoverGap(lab: Pick<Lab, "client">, kill: () => Promise<void>, timeoutMs = 30_000): Promise<FailoverGap> {
  const read = clientReceivedBytes(lab);
  const samples: Array<{ askedAt: number; at: number; bytes: number }> = [];
  let running = true;
  const until = Date.now() + timeoutMs + 1000;
  const sampling = (async () => {
    while (running && Date.now() < until) {
      const askedAt = Date.now();
      const bytes = await read();
      if (bytes !== null) samples.push({ askedAt, at: Date.now(), bytes });
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  })();
  try {
    await waitUntil("samples before the kill", async () => samples.length >= 3, 5_000, 5);
    const killedAt = Date.now();
    await kill();
    const cutAt = Date.now();
    const atKill = await waitUntil("a reading after the links went down", async () => samples.find((s) => s.askedAt >= cutAt), 5_000, 2);
    const resumed = await waitUntil(
      "the download's bytes to move again",
      async () => samples.find((s) => s.askedAt >= atKill.at && s.bytes - atKill.bytes >= RESUMED_BYTES),
      timeoutMs,
      10,
    );
    const resolutionMs = Math.max(...samples.map((s) => s.at - s.askedAt));
    return { gapMs: resumed.at - killedAt, resolutionMs, killedAt, bytesAtKill: atKill.bytes };
  } finally {
    running = false;
    await sampling;
  }
}
