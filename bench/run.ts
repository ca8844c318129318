// `npm run bench` / `natlb bench` / `node dist/bench/run.js [--quick] [--json out.json]`: natlb against
// plain forwarding, kernel NAT, HAProxy and a Node proxy in the same netns lab (bench/README.md).
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { dirname, join, resolve } from "node:path";
import { SPOOF_RANGE, VIP, realIp } from "../lab/labAddresses";
import { runIn } from "../lab/netns";
import { addonFingerprint } from "./addonFingerprint";
import { prepareConnTool } from "./connTool";
import { measureFlowMap, type FlowMapResult } from "./flowMap";
import { ecmpFailoverMain } from "./ecmpFailover";
import { runFloodLab, type FloodLabResult } from "./floodLab";
import { runFailoverLab, type FailoverLabResult } from "./failoverLab";
import { buildFailoverReport } from "./failoverReport";
import { controlPlaneMain } from "./controlPlaneScale";
import { syncCostMain } from "./syncCost";
import { buildFloodReport } from "./floodReport";
import { MODES_SERVICES_PORTS, PortCursor, REALS, runLab, variantRunsIn, type LabRunResult } from "./labRounds";
import { ALL_VARIANT_IDS, BenchUsageError, FLOOD_VARIANT_IDS, resolveOptions, type BenchLab, type BenchOptions, type LabKind } from "./options";
import { buildModes } from "./modesReport";
import { buildCases, evaluateTargets, formatReport, type BenchReport } from "./report";
import { ALL_VARIANTS, type Variant, type VariantId } from "./variants";
import { ensureHaproxy } from "./variants/haproxy";

export type { BenchOptions } from "./options";
export type { BenchReport, CaseResult, TargetResult } from "./report";
export { formatReport } from "./report";

export const DEFAULT_JSON_PATH = join(__dirname, "..", "..", "bench", "results", "latest.json");

async function clockTicksPerSecond(): Promise<number> {
  const r = await runIn(null, "getconf", ["CLK_TCK"], { timeoutMs: 5000 });
  const n = Number(r.stdout.trim());
  return r.code === 0 && Number.isInteger(n) && n > 0 ? n : 100;
}

/** Runs the whole benchmark; labs are always destroyed, also on failure. Writes the JSON unless jsonPath is null. */
export async function runBench(options: BenchOptions = {}): Promise<BenchReport> {
  const o = resolveOptions(options, DEFAULT_JSON_PATH);
  if (process.getuid?.() !== 0) throw new BenchUsageError("the benchmark builds network namespaces: run it as root");
  const startedAt = new Date();
  const deadline = startedAt.getTime() + o.maxMinutes * 60_000;
  const loadAtStart = loadavg();
  const addonAtStart = addonFingerprint();
  const errors: string[] = [];
  const skipped = new Map<VariantId, string>();

  if (o.variants.includes("haproxy")) {
    try {
      await ensureHaproxy(o.log);
    } catch (e) {
      skipped.set("haproxy", (e as Error).message);
      o.log(`haproxy variant skipped: ${(e as Error).message}`);
    }
  }
  // Variants this build cannot run (natlb refuses their configuration) are listed as not available.
  const throughputLabs = o.labs.filter((l): l is LabKind => l !== "flood" && l !== "failover");
  const modesServices = { vip: VIP, ...MODES_SERVICES_PORTS, reals: Array.from({ length: REALS }, (_, i) => realIp(i + 1)) };
  for (const v of ALL_VARIANTS) {
    if (!o.variants.includes(v.id) || v.unavailable === undefined || !throughputLabs.some((l) => variantRunsIn(v, l))) continue;
    const why = await v.unavailable(modesServices).catch((e: unknown) => `not available: ${(e as Error).message}`);
    if (why !== null) {
      skipped.set(v.id, why);
      o.log(`${v.id} skipped: ${why}`);
    }
  }
  const variants: Variant[] = ALL_VARIANTS.filter((v) => o.variants.includes(v.id) && !skipped.has(v.id));
  const ticks = await clockTicksPerSecond();
  const ports = new PortCursor();
  const connTool = await prepareConnTool(o.log);

  let flowMap: FlowMapResult | null = null;
  try {
    flowMap = await measureFlowMap({ secondsPerSize: o.flowLookupSeconds, log: o.log });
  } catch (e) {
    errors.push(`flow map: ${(e as Error).message}`);
  }

  const labs: LabRunResult[] = [];
  let flood: FloodLabResult | null = null;
  let failover: FailoverLabResult | null = null;
  const stoppedEarly: string[] = [];
  for (const kind of o.labs) {
    if (Date.now() > deadline) {
      stoppedEarly.push(`${kind}: not run, the time bound of ${o.maxMinutes} min was reached`);
      continue;
    }
    if (kind === "failover") {
      try {
        failover = await runFailoverLab(o, deadline);
        errors.push(...failover.errors);
        if (failover.stoppedEarly !== null) stoppedEarly.push(`failover: ${failover.stoppedEarly}`);
      } catch (e) {
        errors.push(`failover lab aborted: ${(e as Error).message}`);
        o.log(`[failover] lab aborted: ${(e as Error).message}`);
      }
      continue;
    }
    if (kind === "flood") {
      const floodVariants = variants.filter((v) => FLOOD_VARIANT_IDS.includes(v.id));
      if (floodVariants.length === 0) {
        o.log(`[flood] skipped: it runs ${FLOOD_VARIANT_IDS.join(" and ")}, and --variants has neither`);
        continue;
      }
      try {
        flood = await runFloodLab({
          options: o,
          variants: floodVariants,
          variantIndex: (id) => ALL_VARIANT_IDS.indexOf(id),
          deadline,
          clockTicksPerSecond: ticks,
          connTool,
        });
        errors.push(...flood.errors);
        if (flood.stoppedEarly !== null) stoppedEarly.push(`flood: ${flood.stoppedEarly}`);
      } catch (e) {
        errors.push(`flood lab aborted: ${(e as Error).message}`);
        o.log(`[flood] lab aborted: ${(e as Error).message}`);
      }
      continue;
    }
    try {
      const result = await runLab(kind, {
        options: o,
        variants,
        variantIndex: (id) => ALL_VARIANT_IDS.indexOf(id),
        deadline,
        clockTicksPerSecond: ticks,
        ports,
        connTool,
      });
      labs.push(result);
      errors.push(...result.errors);
      if (result.stoppedEarly !== null) stoppedEarly.push(`${kind}: ${result.stoppedEarly}`);
    } catch (e) {
      errors.push(`${kind} lab aborted: ${(e as Error).message}`);
      o.log(`[${kind}] lab aborted: ${(e as Error).message}`);
    }
  }

  // natlb builds that ran (each natlb start records one); more than one means mixed results.
  const runs = labs.flatMap((l) => l.runs);
  const natlbDiagnostics = [
    // Every natlb variant that started (one that was not available, or failed to start, has no addon).
    ...runs.filter((r) => r.variant.startsWith("natlb") && "addon" in r.diagnostics).map((r) => r.diagnostics),
    ...(flood?.steps ?? []).filter((s) => s.variant === "natlb").map((s) => s.diagnostics),
  ];
  const builds = [...new Set(natlbDiagnostics.map((d) => String(d["addon"] ?? "unknown")))];
  const warnings: string[] = [];
  if (builds.length > 1) {
    warnings.push(`the natlb addon was rebuilt during the run: natlb results mix builds ${builds.join(", ")} (see runs[].diagnostics.addon)`);
  }

  const report: BenchReport = {
    version: 1,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    quick: o.quick,
    host: {
      kernel: release(),
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      node: process.version,
      loadAverageAtStart: loadAtStart,
      loadAverageAtEnd: loadavg(),
    },
    settings: {
      rounds: o.rounds,
      bulkBytes: o.bulkBytes,
      shortConnsMs: o.shortConnsMs,
      shortConnsConcurrency: o.shortConnsConcurrency,
      serialCount: o.serialCount,
      labs: o.labs,
      variants: o.variants,
      clockTicksPerSecond: ticks,
      shortConnTool: connTool.kind === "c" ? "bench/connLoad.c" : `Node (lab/benchTools.ts): ${connTool.note ?? ""}`,
    },
    variants: ALL_VARIANTS.filter((v) => o.variants.includes(v.id)).map((v) => ({ id: v.id, label: v.label, skipped: skipped.get(v.id) ?? null })),
    cases: buildCases(labs, variants.map((v) => v.id)),
    modes: buildModes(labs, ALL_VARIANTS.filter((v) => o.variants.includes(v.id)).map((v) => ({ id: v.id, skipped: skipped.get(v.id) ?? null }))),
    targets: evaluateTargets(labs, flowMap),
    flowMap,
    flood:
      flood === null
        ? null
        : buildFloodReport(flood, {
            rates: o.floodRates,
            floodSeconds: o.floodSeconds,
            recoverySeconds: o.floodRecoverySeconds,
            probeRate: o.floodProbeRate,
            probeTimeoutMs: o.floodProbeTimeoutMs,
            sources: SPOOF_RANGE,
          }),
    failover: failover === null ? null : buildFailoverReport(failover),
    natlbAddon: { atStart: addonAtStart, seen: builds },
    runs,
    samples: labs.flatMap((l) => l.samples),
    errors,
    warnings,
    stoppedEarly,
  };
  if (o.jsonPath !== null) {
    mkdirSync(dirname(o.jsonPath), { recursive: true });
    writeFileSync(o.jsonPath, `${JSON.stringify(report, null, 2)}\n`);
    o.log(`JSON report written to ${o.jsonPath}`);
  }
  return report;
}

const USAGE = `usage: node dist/bench/run.js [--quick] [--json <file> | --no-json] [--no-progress] [--rounds N] [--mib N]
        [--labs gso,mtu,modes,flood,failover] [--variants plain,kernelNat,haproxy,nodeProxy,natlb,natlbUserSpace,natlbAfPacket,natlbThreadPerInterface,natlbDr,natlbFullnat]
        [--max-minutes M]
        [--flood-rates 12500,25000,50000,100000,200000] [--flood-seconds S] [--flood-recovery-seconds S]
   or: node dist/bench/run.js control-plane [--services N] [--reals N] [--flows N] [--interval-ms MS] [--seconds S]
        [--status-calls N] [--cycles N] [--json <file>]   (bench/controlPlaneScale.ts)
   or: node dist/bench/run.js ecmp-failover [--rounds N] [--json <file>]   (bench/ecmpFailover.ts)
   or: node dist/bench/run.js sync-cost [--seconds S] [--concurrency N] [--rounds N] [--json <file>]   (bench/syncCost.ts)`;

/** Parses the standalone command line (also usable by the CLI wrapper). */
export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const o: BenchOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new BenchUsageError(`${arg} needs a value`);
      return v;
    };
    const int = (): number => {
      const v = value();
      if (!/^\d+$/.test(v)) throw new BenchUsageError(`${arg} needs a positive integer, got "${v}"`);
      return Number(v);
    };
    switch (arg) {
      case "--quick":
        o.quick = true;
        break;
      case "--json":
        o.jsonPath = resolve(value());
        break;
      case "--no-json":
        o.jsonPath = null;
        break;
      case "--no-progress":
        o.progress = false;
        break;
      case "--rounds":
        o.rounds = int();
        break;
      case "--mib":
        o.bulkBytes = int() * 1024 * 1024;
        break;
      case "--max-minutes":
        o.maxMinutes = int();
        break;
      case "--labs":
        o.labs = value().split(",") as BenchLab[];
        break;
      case "--flood-rates":
        o.floodRates = value().split(",").map((r) => {
          if (!/^\d+$/.test(r)) throw new BenchUsageError(`--flood-rates needs positive integers, got "${r}"`);
          return Number(r);
        });
        break;
      case "--flood-seconds":
        o.floodSeconds = int();
        break;
      case "--flood-recovery-seconds":
        o.floodRecoverySeconds = int();
        break;
      case "--variants":
        o.variants = value().split(",") as VariantId[];
        break;
      case "-h":
      case "--help":
        throw new BenchUsageError("help");
      default:
        throw new BenchUsageError(`unknown argument "${arg}"`);
    }
  }
  return o;
}

/** Standalone entry point: progress on stderr, the table on stdout; exit code 1 on errors. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  if (argv[0] === "control-plane") return controlPlaneMain(argv.slice(1));
  if (argv[0] === "ecmp-failover") return ecmpFailoverMain(argv.slice(1));
  if (argv[0] === "sync-cost") return syncCostMain(argv.slice(1));
  let options: BenchOptions;
  try {
    options = parseBenchArgs(argv);
  } catch (e) {
    const help = (e as Error).message === "help";
    process.stderr.write(`${help ? "" : `bench: ${(e as Error).message}\n`}${USAGE}\n`);
    return help ? 0 : 2;
  }
  try {
    const report = await runBench(options);
    process.stdout.write(`${formatReport(report)}\n`);
    return report.errors.length === 0 && report.stoppedEarly.length === 0 ? 0 : 1;
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    return e instanceof BenchUsageError ? 2 : 1;
  }
}

if (require.main === module) {
  void main().then((code) => {
    process.exitCode = code;
  });
}
