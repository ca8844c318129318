// The failover lab (`--labs failover`, issue 13's pair): per round, the HA pair (lab/haPair.ts: two
// natlb gateways with the flow sync, keepalived with adverts every 0.2 s, notify through its FIFO), a
// download of bulkBytes through the master (the reals' uplinks at 400 Mbit/s, so it is still running),
// then the master killed (natlb and keepalived SIGKILLed, links down): the gap from the kill until the
// download's bytes move again (lab/failoverGap.ts), when the backup's natlb became master, and whether
// the download completed with the right sha256.
import { blobSha256 } from "../lab/blobContent";
import { blobUrl, runDownload } from "../lab/download";
import { clientReceivedBytes } from "../lab/downloadProgress";
import { measureFailoverGap } from "../lab/failoverGap";
import { ADVERT_INTERVAL_S, HA_SERVICE_PORT, syncConfig, withHaPairRunning } from "../lab/haPair";
import { waitUntil } from "../lab/wait";
import type { ResolvedOptions } from "./options";

export const FAILOVER_REAL_RATE = "400mbit";

export interface FailoverRound {
  round: number;
  /** Kill to 1 MiB more at the client, ms (an upper bound: to the end of the reading that saw it). */
  gapMs: number;
  /** How long one reading of the client's counters took at most. */
  resolutionMs: number;
  /** Kill to the backup's natlb taking the master role (keepalived's detection and its notify). */
  masterAfterMs: number;
  /** The download completed, every byte, with the right sha256. */
  downloadIntact: boolean;
}

export interface FailoverLabResult {
  settings: { advertIntervalS: number; notify: "fifo"; realRate: string; bytes: number };
  rounds: FailoverRound[];
  errors: string[];
  stoppedEarly: string | null;
}

export async function runFailoverLab(options: ResolvedOptions, deadline: number): Promise<FailoverLabResult> {
  const bytes = options.bulkBytes;
  const result: FailoverLabResult = {
    settings: { advertIntervalS: ADVERT_INTERVAL_S, notify: "fifo", realRate: FAILOVER_REAL_RATE, bytes },
    rounds: [],
    errors: [],
    stoppedEarly: null,
  };
  for (let round = 1; round <= options.rounds; round++) {
    if (Date.now() > deadline) {
      result.stoppedEarly = `stopped after ${round - 1} round(s): the time bound was reached`;
      break;
    }
    try {
      const outcome = await withHaPairRunning(
        { realRate: FAILOVER_REAL_RATE, extraConfig: syncConfig, notifyVia: "fifo" },
        async ({ lab, natlb: [, g2] }) => {
          const seed = `failover-${round}`;
          const download = runDownload(lab, { url: blobUrl(lab.vip, HA_SERVICE_PORT, bytes, seed), timeoutMs: 600_000 });
          const received = clientReceivedBytes(lab);
          const start = (await received()) ?? 0;
          await waitUntil("the download to be under way", async () => ((await received()) ?? 0) - start > bytes / 8, 120_000, 50);
          const gap = await measureFailoverGap(lab, () => lab.killGateway(0));
          await waitUntil("g2 to be master", async () => (await g2.status()).ha?.role === "master", 10_000, 20);
          const masterAfterMs = Date.parse((await g2.status()).ha!.since) - gap.killedAt;
          const summary = await download;
          const first = summary.results[0];
          const downloadIntact = summary.ok === 1 && first?.bytes === bytes && first.sha256 === blobSha256(seed, bytes);
          return { round, gapMs: gap.gapMs, resolutionMs: gap.resolutionMs, masterAfterMs, downloadIntact };
        },
        (output) => result.errors.push(`round ${round} output: ${output.slice(-2000)}`),
      );
      result.rounds.push(outcome);
      options.log(`[failover] round ${round}: gap ${outcome.gapMs} ms, backup master after ${outcome.masterAfterMs} ms, download ${outcome.downloadIntact ? "intact" : "BROKEN"}`);
      if (!outcome.downloadIntact) result.errors.push(`round ${round}: the download did not complete intact`);
    } catch (e) {
      result.errors.push(`failover round ${round}: ${(e as Error).message}`);
      options.log(`[failover] round ${round} failed: ${(e as Error).message}`);
    }
  }
  return result;
}
