// A progress line for long downloads (the demo, the benchmark): bytes done of the total, the rate,
// and each real server's share of the balancer's connections. On a terminal one line is redrawn in
// place; otherwise (a log file, CI) a plain line is written at most every few seconds, so logs stay
// short. The formatting is a pure function; the sampling lives in downloadProgress.ts.

/** One real server's share, 0..1, under a short name (see shortRealNames). */
export interface RealShare {
  readonly name: string;
  readonly share: number;
}

export interface ProgressSnapshot {
  /** What is running, e.g. "download" or "gso r1 natlb 4 conns". */
  readonly label: string;
  readonly bytesDone: number;
  readonly bytesTotal: number;
  /** Over the last interval; null before there are two samples. */
  readonly bitsPerSecond: number | null;
  /** Share of each real; null when no balancer can tell (kernel NAT, HAProxy in the bench). */
  readonly shares: readonly RealShare[] | null;
}

const MiB = 1024 * 1024;
const BAR_WIDTH = 20;

/** 1536 MiB -> "1.50 GiB", smaller amounts in MiB. */
export function formatBytes(bytes: number): string {
  return bytes >= 1024 * MiB ? `${(bytes / (1024 * MiB)).toFixed(2)} GiB` : `${(bytes / MiB).toFixed(0)} MiB`;
}

export function formatRate(bitsPerSecond: number | null): string {
  if (bitsPerSecond === null || !Number.isFinite(bitsPerSecond)) return "-- Gbit/s";
  return bitsPerSecond >= 1e9 ? `${(bitsPerSecond / 1e9).toFixed(2)} Gbit/s` : `${(bitsPerSecond / 1e6).toFixed(0)} Mbit/s`;
}

/**
 * Short names for dotted addresses: what they have in common in front is dropped, so
 * 198.18.1.11, 198.18.1.12 become ".11", ".12". A single address keeps its name.
 */
export function shortRealNames(addresses: readonly string[]): string[] {
  if (addresses.length < 2) return [...addresses];
  const parts = addresses.map((a) => a.split("."));
  let common = 0;
  while (common < parts[0]!.length - 1 && parts.every((p) => p[common] === parts[0]![common] && p.length > common + 1)) common++;
  return parts.map((p) => (common === 0 ? p.join(".") : `.${p.slice(common).join(".")}`));
}

/** Shares from counts (connections per real); all zero gives all zero shares. */
export function sharesOf(counts: readonly { readonly name: string; readonly count: number }[]): RealShare[] {
  const total = counts.reduce((sum, c) => sum + c.count, 0);
  return counts.map((c) => ({ name: c.name, share: total > 0 ? c.count / total : 0 }));
}

/**
 * The progress line: `download [########------------] 412 MiB/1.00 GiB  40%  3.21 Gbit/s  reals .11 50% .12 25% .13 25%`.
 * Cut to `width` characters (the terminal's), never wrapped: a wrapped line cannot be redrawn in place.
 */
export function formatProgressLine(snapshot: ProgressSnapshot, width = 120): string {
  const total = Math.max(snapshot.bytesTotal, 0);
  const done = Math.min(Math.max(snapshot.bytesDone, 0), total);
  const fraction = total > 0 ? done / total : 0;
  const filled = Math.round(fraction * BAR_WIDTH);
  const bar = `[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}]`;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  const parts = [snapshot.label, bar, `${formatBytes(done)}/${formatBytes(total)}`, percent, formatRate(snapshot.bitsPerSecond)];
  if (snapshot.shares !== null && snapshot.shares.length > 0) {
    parts.push(`reals ${snapshot.shares.map((s) => `${s.name} ${Math.round(s.share * 100)}%`).join(" ")}`);
  }
  const line = parts.join("  ");
  return line.length <= width ? line : `${line.slice(0, Math.max(width - 1, 0))}…`;
}

/** Where the line goes: stderr, normally (stdout keeps the results). */
export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(text: string): boolean;
}

export interface ProgressLineOptions {
  /** Minimum time between plain (not redrawn) lines. Default 5 s. */
  readonly plainEveryMs?: number;
  /** Clock, for tests. */
  readonly now?: () => number;
}

/** Draws snapshots: redrawn in place on a terminal, plain lines at most every plainEveryMs otherwise. */
export class ProgressLine {
  private drawn = false;
  private lastPlainAt = Number.NEGATIVE_INFINITY;
  private readonly plainEveryMs: number;
  private readonly now: () => number;

  constructor(
    private readonly stream: ProgressStream,
    options: ProgressLineOptions = {},
  ) {
    this.plainEveryMs = options.plainEveryMs ?? 5000;
    this.now = options.now ?? Date.now;
  }

  get redraws(): boolean {
    return this.stream.isTTY === true;
  }

  update(snapshot: ProgressSnapshot): void {
    if (this.redraws) {
      // \r and "erase line": the new line replaces the old one, whatever their lengths.
      this.stream.write(`\r\x1b[2K${formatProgressLine(snapshot, Math.max((this.stream.columns ?? 120) - 1, 20))}`);
      this.drawn = true;
      return;
    }
    const now = this.now();
    if (now - this.lastPlainAt < this.plainEveryMs) return;
    this.lastPlainAt = now;
    this.stream.write(`${formatProgressLine(snapshot, 200)}\n`);
  }

  /** Erases a redrawn line, so what is printed next starts on a clean line. */
  clear(): void {
    if (this.drawn) this.stream.write("\r\x1b[2K");
    this.drawn = false;
  }
}
