// Benchmark settings: the full run (issue #3's numbers and the flood case) and --quick (a smoke run
// in < 6 minutes).
import type { VariantId } from "./variants";

/**
 * The throughput labs: offloads on (~64 KB GSO frames) or off (MTU frames), and "modes": natlb's
 * forwarding modes against the kernel and HAProxy in the direct-routing topology (offloads on).
 */
export type LabKind = "gso" | "mtu" | "modes";
/**
 * Every lab the benchmark can run: the throughput labs, the flood lab (bench/floodLab.ts) and the HA
 * pair's failover (bench/failoverLab.ts), which runs only when asked for.
 */
export type BenchLab = LabKind | "flood" | "failover";
export const ALL_LABS: readonly BenchLab[] = ["gso", "mtu", "modes", "flood", "failover"];
export const DEFAULT_LABS: readonly BenchLab[] = ["gso", "mtu", "modes", "flood"];

export interface BenchOptions {
  /** Fewer rounds, smaller downloads, shorter loads. */
  quick?: boolean;
  /** Rounds per lab (each round runs every variant once, order rotated). Full 5, quick 2. */
  rounds?: number;
  /** Bytes per large-download run (split over the connections). Full 1 GiB, quick 256 MiB. */
  bulkBytes?: number;
  /** Duration of the short-connection load. Full 3000 ms, quick 1000 ms. */
  shortConnsMs?: number;
  /** Concurrent short connections. Default 32. */
  shortConnsConcurrency?: number;
  /** Sequential tiny requests for the serial-connection time. Full 300, quick 60. */
  serialCount?: number;
  /**
   * Labs to run: "gso" (offloads on), "mtu" (offloads off), "modes" (forwarding modes), "flood" (spoofed
   * floods), "failover" (the HA pair's failover gap). Default all but "failover".
   */
  labs?: BenchLab[];
  /** Subset of variants (default all). */
  variants?: VariantId[];
  /** Seconds of lookups per flow-map size (0 skips the lookup measurement). Full 1, quick 0.3. */
  flowLookupSeconds?: number;
  /** Where to write the JSON report; null: do not write. Default bench/results/latest.json. */
  jsonPath?: string | null;
  /** Hard bound of the whole run; rounds stop (and the report says so) once it is reached. Full 90 min, quick 10 min. */
  maxMinutes?: number;
  /** Flood lab: the rate ladder, packets per second. Full 12.5 k, 25 k, 50 k, 100 k, 200 k; quick 12.5 k, 50 k, 200 k. */
  floodRates?: number[];
  /** Flood lab: seconds of flood per step (3..10). Full 6, quick 4. */
  floodSeconds?: number;
  /** Flood lab: seconds of probes right after each flood (recovery). Full 3, quick 2. */
  floodRecoverySeconds?: number;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
  /** A live progress line during the large downloads (default true; lab/downloadProgress.ts). */
  progress?: boolean;
}

export interface ResolvedOptions {
  quick: boolean;
  rounds: number;
  bulkBytes: number;
  shortConnsMs: number;
  shortConnsConcurrency: number;
  serialCount: number;
  labs: BenchLab[];
  variants: VariantId[];
  flowLookupSeconds: number;
  jsonPath: string | null;
  maxMinutes: number;
  floodRates: number[];
  floodSeconds: number;
  floodRecoverySeconds: number;
  /** New connections (and UDP requests) per second during every flood-lab probe. */
  floodProbeRate: number;
  /** Time a probe connection or request has to complete; 1 s leaves no room for a SYN retransmission. */
  floodProbeTimeoutMs: number;
  log: (line: string) => void;
  progress: boolean;
}

export const ALL_VARIANT_IDS: readonly VariantId[] = [
  "plain", "kernelNat", "haproxy", "nodeProxy", "natlb", "natlbUserSpace", "natlbAfPacket", "natlbThreadPerInterface", "natlbDr", "natlbFullnat",
];
/** What `npm run bench` runs: natlbAfPacket (AF_XDP against AF_PACKET) and natlbThreadPerInterface only when asked for. */
export const DEFAULT_VARIANT_IDS: readonly VariantId[] = ["plain", "kernelNat", "haproxy", "nodeProxy", "natlb", "natlbUserSpace", "natlbDr", "natlbFullnat"];
/**
 * The variants the modes lab runs (those of them in --variants); there "natlb" is natlb's nat mode with
 * the kernel fast path (the default) and "natlbUserSpace" nat with every frame through natlb.
 */
export const MODES_VARIANT_IDS: readonly VariantId[] = ["plain", "kernelNat", "natlb", "natlbUserSpace", "natlbDr", "natlbFullnat", "haproxy"];
/** The variants the flood lab runs (those of them in --variants). */
export const FLOOD_VARIANT_IDS: readonly VariantId[] = ["kernelNat", "natlb"];
export const FULL_FLOOD_RATES: readonly number[] = [12_500, 25_000, 50_000, 100_000, 200_000];
export const QUICK_FLOOD_RATES: readonly number[] = [12_500, 50_000, 200_000];
const GiB = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;

export class BenchUsageError extends Error {
  override readonly name = "BenchUsageError";
}

export function resolveOptions(o: BenchOptions, defaultJsonPath: string): ResolvedOptions {
  const quick = o.quick === true;
  const r: ResolvedOptions = {
    quick,
    rounds: o.rounds ?? (quick ? 2 : 5),
    bulkBytes: o.bulkBytes ?? (quick ? 256 * MiB : GiB),
    shortConnsMs: o.shortConnsMs ?? (quick ? 1000 : 3000),
    shortConnsConcurrency: o.shortConnsConcurrency ?? 32,
    serialCount: o.serialCount ?? (quick ? 60 : 300),
    labs: o.labs ?? [...DEFAULT_LABS],
    variants: o.variants ?? [...DEFAULT_VARIANT_IDS],
    flowLookupSeconds: o.flowLookupSeconds ?? (quick ? 0.3 : 1),
    jsonPath: o.jsonPath === undefined ? defaultJsonPath : o.jsonPath,
    maxMinutes: o.maxMinutes ?? (quick ? 10 : 90),
    floodRates: o.floodRates ?? [...(quick ? QUICK_FLOOD_RATES : FULL_FLOOD_RATES)],
    floodSeconds: o.floodSeconds ?? (quick ? 4 : 6),
    floodRecoverySeconds: o.floodRecoverySeconds ?? (quick ? 2 : 3),
    floodProbeRate: 20,
    floodProbeTimeoutMs: 1000,
    log: o.log ?? ((line) => process.stderr.write(`${line}\n`)),
    progress: o.progress ?? true,
  };
  const intIn = (name: string, v: number, min: number, max: number): void => {
    if (!Number.isInteger(v) || v < min || v > max) throw new BenchUsageError(`${name} must be an integer in ${min}..${max}, got ${v}`);
  };
  intIn("rounds", r.rounds, 1, 50);
  intIn("bulkBytes", r.bulkBytes, MiB, 16 * GiB);
  intIn("shortConnsMs", r.shortConnsMs, 100, 60_000);
  intIn("shortConnsConcurrency", r.shortConnsConcurrency, 1, 256);
  intIn("serialCount", r.serialCount, 1, 10_000);
  if (r.bulkBytes % 64 !== 0) throw new BenchUsageError("bulkBytes must be a multiple of 64");
  if (!(r.flowLookupSeconds >= 0 && r.flowLookupSeconds <= 30)) throw new BenchUsageError("flowLookupSeconds must be in 0..30");
  if (!(r.maxMinutes > 0 && r.maxMinutes <= 24 * 60)) throw new BenchUsageError("maxMinutes must be in (0, 1440]");
  if (r.labs.length === 0 || r.labs.some((l) => !ALL_LABS.includes(l))) throw new BenchUsageError(`labs must be among ${ALL_LABS.map((l) => `"${l}"`).join(", ")}`);
  if (r.floodRates.length === 0 || r.floodRates.length > 12) throw new BenchUsageError("floodRates must hold 1..12 rates");
  for (const rate of r.floodRates) intIn("each flood rate", rate, 1000, 1_000_000);
  // The during-probes stop a probe timeout and a start-up margin (1.5 s) before the flood ends.
  intIn("floodSeconds", r.floodSeconds, 3, 10);
  intIn("floodRecoverySeconds", r.floodRecoverySeconds, 1, 10);
  if (r.variants.length === 0 || r.variants.some((v) => !ALL_VARIANT_IDS.includes(v))) {
    throw new BenchUsageError(`variants must be among ${ALL_VARIANT_IDS.join(", ")}`);
  }
  r.labs = [...new Set(r.labs)];
  r.floodRates = [...new Set(r.floodRates)].sort((a, b) => a - b);
  r.variants = ALL_VARIANT_IDS.filter((v) => r.variants.includes(v));
  return r;
}
