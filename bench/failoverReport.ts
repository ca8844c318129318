// The failover lab's part of the report (bench/failoverLab.ts): the gap per round and its summary.
import type { FailoverLabResult, FailoverRound } from "./failoverLab";
import { formatSummary, summarize, type Summary } from "./stats";

export interface FailoverReport {
  settings: FailoverLabResult["settings"];
  rounds: FailoverRound[];
  /** Kill to the download's bytes moving again, ms. */
  gapMs: Summary | null;
  /** Kill to the backup's natlb being master, ms. */
  masterAfterMs: Summary | null;
  /** Rounds whose download completed with the right sha256. */
  intactDownloads: number;
}

export function buildFailoverReport(result: FailoverLabResult): FailoverReport {
  return {
    settings: result.settings,
    rounds: result.rounds,
    gapMs: summarize(result.rounds.map((r) => r.gapMs)),
    masterAfterMs: summarize(result.rounds.map((r) => r.masterAfterMs)),
    intactDownloads: result.rounds.filter((r) => r.downloadIntact).length,
  };
}

export function formatFailoverReport(report: FailoverReport): string[] {
  const s = report.settings;
  return [
    `failover (HA pair, keepalived advert_int ${s.advertIntervalS} s, notify ${s.notify}, reals at ${s.realRate}): master killed mid-download`,
    `  gap (kill -> bytes moving again) ${formatSummary(report.gapMs)} ms; backup master after ${formatSummary(report.masterAfterMs)} ms; ` +
      `downloads intact ${report.intactDownloads}/${report.rounds.length}`,
  ];
}
