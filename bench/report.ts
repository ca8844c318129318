// From samples to the report: per case and variant the median (min..max) over rounds, natlb's ratio
// to kernel NAT and to HAProxy (paired per round: both ran in the same round, minutes apart at most,
// so host noise largely cancels), and issue #3's targets with pass/fail.
import type { FlowMapResult } from "./flowMap";
import { SIZE_TARGET_BYTES } from "./flowMap";
import { formatFloodReport, type FloodReport } from "./floodReport";
import { formatFailoverReport, type FailoverReport } from "./failoverReport";
import type { LabRunResult, MetricId, Sample, VariantRun } from "./labRounds";
import type { LabKind, ResolvedOptions } from "./options";
import { formatModesReport, modesTargets, type ModesReport } from "./modesReport";
import { difference, pairedSummary, ratio, valuesOf } from "./pairedSamples";
import { formatNumber, formatSummary, summarize, type Summary } from "./stats";
import type { VariantId } from "./variants";

export interface CaseResult {
  /** "<lab>.<metric>", e.g. "gso.dl4Gbps". */
  id: string;
  lab: LabKind;
  metric: MetricId;
  title: string;
  unit: string;
  better: "higher" | "lower";
  byVariant: Partial<Record<VariantId, Summary | null>>;
  /** natlb / kernel NAT, one ratio per round in which both ran. */
  natlbVsKernelNat: Summary | null;
  /** natlb / HAProxy, one ratio per round in which both ran. */
  natlbVsHaproxy: Summary | null;
}

export interface TargetResult {
  id: string;
  /** The target as its issue (#3, #11) states it. */
  target: string;
  /** What was compared (which case, which statistic). */
  basis: string;
  /** The measured value compared with the limit (null: not measured). */
  value: number | null;
  /** How the value reads, e.g. "0.82 x kernel NAT (0.71..0.90)". */
  measured: string;
  status: "pass" | "fail" | "n/a";
}

export interface BenchReport {
  version: 1;
  startedAt: string;
  finishedAt: string;
  quick: boolean;
  host: { kernel: string; cpus: number; cpuModel: string; node: string; loadAverageAtStart: number[]; loadAverageAtEnd: number[] };
  settings: Pick<ResolvedOptions, "rounds" | "bulkBytes" | "shortConnsMs" | "shortConnsConcurrency" | "serialCount" | "labs" | "variants"> & {
    clockTicksPerSecond: number;
    /** Which short-connection client/server ran. */
    shortConnTool: string;
  };
  variants: Array<{ id: VariantId; label: string; skipped: string | null }>;
  cases: CaseResult[];
  /** The forwarding modes (bench/modesReport.ts); null when the modes lab did not run. */
  modes: ModesReport | null;
  targets: TargetResult[];
  flowMap: FlowMapResult | null;
  /** The flood case (bench/floodLab.ts, bench/floodReport.ts); null when the flood lab did not run. */
  flood: FloodReport | null;
  /** The HA pair's failover (bench/failoverLab.ts); null when the failover lab did not run (it runs only when asked for). */
  failover: FailoverReport | null;
  /** sha256 prefix of natlb's addon at the start, and of every build natlb ran with. */
  natlbAddon: { atStart: string | null; seen: string[] };
  /** Everything each variant did in each round. */
  runs: VariantRun[];
  samples: Sample[];
  errors: string[];
  /** Things that make results less comparable (e.g. natlb rebuilt during the run). */
  warnings: string[];
  /** Labs whose rounds stopped early, and why. */
  stoppedEarly: string[];
}

export const LAB_TITLES: Record<LabKind, string> = {
  gso: "GSO frames (offloads on)",
  mtu: "MTU frames (offloads off)",
  modes: "forwarding modes (direct-routing topology, offloads on), every case",
};

interface MetricInfo {
  title: string;
  unit: string;
  better: "higher" | "lower";
}

export const METRICS: Record<MetricId, MetricInfo> = {
  dl1Gbps: { title: "download, 1 conn", unit: "Gbit/s", better: "higher" },
  dl4Gbps: { title: "download, 4 conns", unit: "Gbit/s", better: "higher" },
  dl1CpuMachine: { title: "machine CPU, 1 conn", unit: "CPU-s/GiB", better: "lower" },
  dl4CpuMachine: { title: "machine CPU, 4 conns", unit: "CPU-s/GiB", better: "lower" },
  dl1CpuBalancer: { title: "balancer process CPU, 1 conn", unit: "CPU-s/GiB", better: "lower" },
  dl4CpuBalancer: { title: "balancer process CPU, 4 conns", unit: "CPU-s/GiB", better: "lower" },
  shortConnsPerSec: { title: "short conns (32 concurrent)", unit: "conn/s", better: "higher" },
  serialMs: { title: "serial connection time (median)", unit: "ms", better: "lower" },
  peakRssMiB: { title: "balancer peak RSS (VmHWM)", unit: "MiB", better: "lower" },
};

export const VARIANT_TITLES: Record<VariantId, string> = {
  plain: "plain fwd",
  kernelNat: "kernel NAT",
  haproxy: "HAProxy",
  nodeProxy: "Node proxy",
  natlb: "natlb",
  natlbUserSpace: "natlb user space",
  natlbAfPacket: "natlb AF_PACKET",
  natlbThreadPerInterface: "natlb thread/if",
  natlbDr: "natlb dr",
  natlbFullnat: "natlb fullnat",
};

/** natlb op ref per round where both have a value. */
function paired(samples: Sample[], lab: LabKind, metric: MetricId, ref: VariantId, op: (a: number, b: number) => number): Summary | null {
  return pairedSummary(samples, lab, metric, "natlb", ref, op);
}

export function buildCases(labs: LabRunResult[], variants: VariantId[]): CaseResult[] {
  const cases: CaseResult[] = [];
  const samples = labs.flatMap((l) => l.samples);
  for (const lab of labs.map((l) => l.lab)) {
    for (const metric of Object.keys(METRICS) as MetricId[]) {
      const info = METRICS[metric];
      const byVariant: Partial<Record<VariantId, Summary | null>> = {};
      let measured = false;
      for (const v of variants) {
        const s = summarize([...valuesOf(samples, lab, metric, v).values()]);
        byVariant[v] = s;
        measured ||= s !== null;
      }
      if (!measured) continue;
      cases.push({
        id: `${lab}.${metric}`,
        lab,
        metric,
        title: info.title,
        unit: info.unit,
        better: info.better,
        byVariant,
        natlbVsKernelNat: paired(samples, lab, metric, "kernelNat", ratio),
        natlbVsHaproxy: paired(samples, lab, metric, "haproxy", ratio),
      });
    }
  }
  return cases;
}

export function evaluateTargets(labs: LabRunResult[], flowMap: FlowMapResult | null): TargetResult[] {
  const samples = labs.flatMap((l) => l.samples);
  const out: TargetResult[] = [];
  const ratioTarget = (
    id: string,
    target: string,
    lab: LabKind,
    metric: MetricId,
    ref: "kernelNat" | "haproxy",
    limit: number,
    atLeast: boolean,
  ): void => {
    const s = paired(samples, lab, metric, ref, ratio);
    const refTitle = VARIANT_TITLES[ref];
    out.push({
      id,
      target,
      basis: `${LAB_TITLES[lab]}, ${METRICS[metric].title}: median of per-round natlb / ${refTitle}`,
      value: s?.median ?? null,
      measured: s === null ? "not measured" : `${formatSummary(s)} x ${refTitle}`,
      status: s === null ? "n/a" : (atLeast ? s.median >= limit : s.median <= limit) ? "pass" : "fail",
    });
  };
  ratioTarget("mtu-4conns", "MTU frames, 4 conns >= 1.0 x kernel NAT", "mtu", "dl4Gbps", "kernelNat", 1.0, true);
  ratioTarget("gso-4conns-nat", "GSO frames, 4 conns >= 0.75 x kernel NAT", "gso", "dl4Gbps", "kernelNat", 0.75, true);
  ratioTarget("gso-4conns-haproxy", "GSO frames, 4 conns >= 2 x HAProxy", "gso", "dl4Gbps", "haproxy", 2, true);
  for (const lab of ["gso", "mtu"] as const) {
    ratioTarget(`short-conns-${lab}`, `short conns >= 0.9 x kernel NAT (${lab})`, lab, "shortConnsPerSec", "kernelNat", 0.9, true);
  }
  for (const lab of ["gso", "mtu"] as const) {
    const s = paired(samples, lab, "serialMs", "kernelNat", difference);
    out.push({
      id: `serial-${lab}`,
      target: `serial conn <= +0.1 ms over kernel NAT (${lab})`,
      basis: `${LAB_TITLES[lab]}: median of per-round (natlb - kernel NAT) of the median connection time`,
      value: s?.median ?? null,
      measured: s === null ? "not measured" : `${s.median >= 0 ? "+" : ""}${formatSummary(s)} ms`,
      status: s === null ? "n/a" : s.median <= 0.1 ? "pass" : "fail",
    });
  }
  for (const lab of ["gso", "mtu"] as const) {
    ratioTarget(`cpu-${lab}`, `CPU-s/GiB <= 1.5 x kernel NAT (${lab}, whole machine, 4 conns)`, lab, "dl4CpuMachine", "kernelNat", 1.5, false);
  }
  out.push(...modesTargets(labs));
  const bytes = flowMap?.bytesFor1M ?? null;
  out.push({
    id: "flows-1m",
    target: "1 M flows <= 256 MiB",
    basis: "flowTableBytes(1 000 000) from the addon",
    value: bytes,
    measured: bytes === null ? "not measured" : `${formatNumber(bytes / (1024 * 1024))} MiB`,
    status: bytes === null ? "n/a" : bytes <= SIZE_TARGET_BYTES ? "pass" : "fail",
  });
  return out;
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + " ".repeat(width - text.length);
}

/** Plain-text rendering of the report: one table per lab, the flow map, the targets. */
export function formatReport(report: BenchReport): string {
  const lines: string[] = [];
  const variants = report.variants.filter((v) => v.skipped === null).map((v) => v.id);
  const throughputLabs = report.settings.labs.some((l) => l !== "flood" && l !== "failover");
  lines.push(
    `natlb benchmark${report.quick ? " (--quick)" : ""}: ` +
      (throughputLabs
        ? `${report.settings.rounds} round(s) per lab, median (min..max); ${formatNumber(report.settings.bulkBytes / 1024 ** 3)} GiB per download run; `
        : `${report.settings.labs.join(" and ")} lab only; `) +
      `kernel ${report.host.kernel}, ${report.host.cpus} CPUs; ` +
      `load average at start ${report.host.loadAverageAtStart.map((x) => x.toFixed(2)).join(" ")}` +
      ((report.host.loadAverageAtStart[0] ?? 0) > report.host.cpus * 0.5 ? " (host busy before the start: expect wide spreads)" : ""),
    `ratios: median of per-round natlb/x; short connections: ${report.settings.shortConnTool}; natlb addon ${report.natlbAddon.seen.join(", ") || "n/a"}`,
  );
  for (const v of report.variants) if (v.skipped !== null) lines.push(`skipped: ${v.label}: ${v.skipped}`);
  for (const lab of report.settings.labs) {
    if (lab === "flood" || lab === "failover") continue;
    const cases = report.cases.filter((c) => c.lab === lab);
    if (cases.length === 0) continue;
    if (lab === "modes" && report.modes !== null) lines.push("", ...formatModesReport(report.modes));
    lines.push("", `${LAB_TITLES[lab]}`);
    // Only the variants that ran in this lab (natlbDr runs in the modes lab only, nodeProxy not there).
    const ran = variants.filter((v) => cases.some((c) => (c.byVariant[v] ?? null) !== null));
    // The modes lab's ratios are in its own table (against plain and nat): here only the values.
    const ratios = lab !== "modes";
    const header = ["case", ...ran.map((v) => VARIANT_TITLES[v]), ...(ratios ? ["natlb/NAT", "natlb/HAProxy"] : [])];
    const rows = cases.map((c) => [
      `${c.title} [${c.unit}]`,
      ...ran.map((v) => formatSummary(c.byVariant[v] ?? null)),
      ...(ratios ? [formatSummary(c.natlbVsKernelNat, 2), formatSummary(c.natlbVsHaproxy, 2)] : []),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
    const render = (cells: string[]): string => `| ${cells.map((c, i) => pad(c, widths[i] ?? 0)).join(" | ")} |`;
    lines.push(render(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(render));
  }
  if (report.flowMap !== null) {
    const f = report.flowMap;
    lines.push("", "flow map");
    if (f.bytesFor1M !== null) {
      lines.push(`  1 000 000 flows: ${formatNumber(f.bytesFor1M / 1024 ** 2)} MiB (${formatNumber(f.bytesPerFlow ?? NaN)} bytes/flow)`);
    }
    if (f.lookups !== null) {
      for (const s of f.lookups.sizes) {
        lines.push(
          `  ${String(s.entries).padStart(7)} live flows: ${formatNumber(s.forwardLookupsPerSec / 1e6)} M forward, ` +
            `${formatNumber(s.reverseLookupsPerSec / 1e6)} M reverse lookups/s, ${formatNumber(s.insertNs)} ns/insert, misses ${s.misses}`,
        );
      }
    }
    lines.push(`  ${f.lookupNote}${f.error !== undefined ? `; error: ${f.error}` : ""}`);
  }
  if (report.flood !== null) lines.push("", ...formatFloodReport(report.flood));
  if (report.failover !== null) lines.push("", ...formatFailoverReport(report.failover));
  lines.push("", "targets (issues #3 and #11)");
  for (const t of report.targets) lines.push(`  ${t.status.toUpperCase().padEnd(4)} ${pad(t.target, 62)} measured ${t.measured}`);
  if (report.warnings.length > 0) lines.push("", ...report.warnings.map((w) => `WARNING: ${w}`));
  if (report.stoppedEarly.length > 0) lines.push("", ...report.stoppedEarly.map((s) => `stopped early: ${s}`));
  if (report.errors.length > 0) {
    lines.push("", `errors (${report.errors.length}):`);
    for (const e of report.errors.slice(0, 30)) lines.push(`  ${e.split("\n")[0] ?? ""}`);
    if (report.errors.length > 30) lines.push(`  ... ${report.errors.length - 30} more in the JSON report`);
  }
  return lines.join("\n");
}
