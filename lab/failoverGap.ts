// The failover gap: from the moment a gateway is killed until a download's bytes move again at the
// client (RESUMED_BYTES more than at the kill: more than can have been in flight). The client's
// interface counters are sampled every few ms while the gateway dies and the other takes over.
import { clientReceivedBytes } from "./downloadProgress";
import type { Lab } from "./topology";
import { waitUntil } from "./wait";

/** Bytes the download must move after the kill to count as moving again. */
export const RESUMED_BYTES = 1024 * 1024;

export interface FailoverGap {
  /** Kill to RESUMED_BYTES more at the client, ms. */
  readonly gapMs: number;
  readonly bytesAtKill: number;
}

/**
 * Calls `kill` while sampling the client's received bytes, and resolves with the gap once the bytes
 * moved again; rejects when they did not within `timeoutMs`. Sampling is bounded by that time too.
 */
export async function measureFailoverGap(lab: Pick<Lab, "client">, kill: () => Promise<void>, timeoutMs = 30_000): Promise<FailoverGap> {
  const read = clientReceivedBytes(lab);
  const samples: Array<{ at: number; bytes: number }> = [];
  let running = true;
  const until = Date.now() + timeoutMs + 1000;
  const sampling = (async () => {
    while (running && Date.now() < until) {
      const bytes = await read();
      if (bytes !== null) samples.push({ at: Date.now(), bytes });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  try {
    await waitUntil("samples before the kill", async () => samples.length >= 3, 5_000, 5);
    const killedAt = Date.now();
    const bytesAtKill = samples[samples.length - 1]!.bytes;
    await kill();
    const resumed = await waitUntil(
      "the download's bytes to move again",
      async () => samples.find((s) => s.at > killedAt && s.bytes - bytesAtKill >= RESUMED_BYTES),
      timeoutMs,
      10,
    );
    return { gapMs: resumed.at - killedAt, bytesAtKill };
  } finally {
    running = false;
    await sampling;
  }
}
