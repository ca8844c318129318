// The modes lab in the report (issue #11): per forwarding mode the large-download rate, the machine's
// and the balancer process's CPU per GiB, each mode's rate against plain forwarding and natlb nat, and
// its balancer CPU against natlb nat's, with the kernel fast path (natlb's default) and in user space,
// all as medians of per-round ratios; and issue #11's goals (dr at least as fast as plain forwarding,
// dr's balancer CPU per GiB at most a tenth of nat's, judged against both kinds of nat).
import type { LabRunResult, MetricId, Sample } from "./labRounds";
import { pairedSummary, ratio, valuesOf } from "./pairedSamples";
import type { TargetResult } from "./report";
import { formatNumber, formatSummary, summarize, type Summary } from "./stats";
import type { VariantId } from "./variants";

/** How each mode reads in the modes table. */
export const MODE_TITLES: Partial<Record<VariantId, string>> = {
  plain: "plain forwarding (no balancer)",
  kernelNat: "kernel NAT (DNAT + SNAT)",
  natlb: "natlb nat (kernel fast path, the default)",
  natlbUserSpace: "natlb nat (user space, no fast path)",
  natlbDr: "natlb dr",
  natlbFullnat: "natlb fullnat",
  haproxy: "HAProxy (TCP proxy)",
};

/** The two nat references a mode's balancer CPU is compared with. */
const NAT_FAST_PATH: VariantId = "natlb";
const NAT_USER_SPACE: VariantId = "natlbUserSpace";

/** Why a variant has no balancer process to measure (kernel paths). */
const NO_BALANCER_PROCESS: Partial<Record<VariantId, string>> = {
  plain: "N/A: no balancer",
  kernelNat: "N/A: kernel (softirq, in machine CPU)",
};

export interface ModeRow {
  variant: VariantId;
  title: string;
  /** Why the mode did not run (e.g. "not available: ..."), or null. */
  skipped: string | null;
  dl1Gbps: Summary | null;
  dl4Gbps: Summary | null;
  /** Whole machine, 4 connections. */
  cpuMachinePerGiB: Summary | null;
  /** The balancer process, 4 connections; null for kernel paths (balancerNote says why). */
  cpuBalancerPerGiB: Summary | null;
  balancerNote: string | null;
  /** 4-connection rate / plain forwarding's, per round. */
  dl4VsPlain: Summary | null;
  /** 4-connection rate / natlb nat's (fast path), per round. */
  dl4VsNat: Summary | null;
  /** Balancer CPU per GiB / natlb nat's with the kernel fast path (4 connections), per round. */
  cpuBalancerVsNat: Summary | null;
  /** Balancer CPU per GiB / natlb nat's in user space (4 connections), per round. */
  cpuBalancerVsNatUserSpace: Summary | null;
}

export interface ModesReport {
  rows: ModeRow[];
}

const LAB = "modes";

function summaryOf(samples: readonly Sample[], metric: MetricId, variant: VariantId): Summary | null {
  return summarize([...valuesOf(samples, LAB, metric, variant).values()]);
}

const cpuVs = (samples: readonly Sample[], variant: VariantId, nat: VariantId): Summary | null =>
  pairedSummary(samples, LAB, "dl4CpuBalancer", variant, nat, ratio);

/** The modes table; null when the modes lab did not run. `variants` in table order, with why each was skipped. */
export function buildModes(labs: readonly LabRunResult[], variants: ReadonlyArray<{ id: VariantId; skipped: string | null }>): ModesReport | null {
  const lab = labs.find((l) => l.lab === LAB);
  if (lab === undefined) return null;
  const s = lab.samples;
  const rows = Object.keys(MODE_TITLES)
    .map((id) => variants.find((v) => v.id === id))
    .filter((v): v is { id: VariantId; skipped: string | null } => v !== undefined)
    .map(({ id, skipped }): ModeRow => ({
      variant: id,
      title: MODE_TITLES[id] ?? id,
      skipped: skipped ?? lab.unavailable[id] ?? null,
      dl1Gbps: summaryOf(s, "dl1Gbps", id),
      dl4Gbps: summaryOf(s, "dl4Gbps", id),
      cpuMachinePerGiB: summaryOf(s, "dl4CpuMachine", id),
      cpuBalancerPerGiB: summaryOf(s, "dl4CpuBalancer", id),
      balancerNote: NO_BALANCER_PROCESS[id] ?? null,
      dl4VsPlain: pairedSummary(s, LAB, "dl4Gbps", id, "plain", ratio),
      dl4VsNat: pairedSummary(s, LAB, "dl4Gbps", id, NAT_FAST_PATH, ratio),
      cpuBalancerVsNat: cpuVs(s, id, NAT_FAST_PATH),
      cpuBalancerVsNatUserSpace: cpuVs(s, id, NAT_USER_SPACE),
    }));
  return { rows };
}

/** dr's balancer CPU against one kind of nat, as a goal of issue #11. */
function drCpuTarget(samples: readonly Sample[], nat: VariantId, id: string, which: string): TargetResult {
  const cpu = cpuVs(samples, "natlbDr", nat);
  return {
    id,
    target: `dr balancer CPU-s/GiB <= 0.1 x natlb nat's, ${which} (modes lab, 4 conns)`,
    basis: `modes lab, balancer process CPU per GiB, 4 conns: median of per-round natlb dr / natlb nat ${which}`,
    value: cpu?.median ?? null,
    measured: cpu === null ? "not measured" : `${formatSummary(cpu, 2)} x natlb nat ${which}`,
    status: cpu === null ? "n/a" : cpu.median <= 0.1 ? "pass" : "fail",
  };
}

/** Issue #11's goals, from the modes lab's samples (n/a when it did not run). */
export function modesTargets(labs: readonly LabRunResult[]): TargetResult[] {
  const s = labs.find((l) => l.lab === LAB)?.samples ?? [];
  const speed = pairedSummary(s, LAB, "dl4Gbps", "natlbDr", "plain", ratio);
  return [
    {
      id: "modes-dr-speed",
      target: "dr, 4 conns >= 1.0 x plain forwarding (modes lab)",
      basis: "modes lab, download 4 conns: median of per-round natlb dr / plain forwarding",
      value: speed?.median ?? null,
      measured: speed === null ? "not measured" : `${formatSummary(speed, 2)} x plain forwarding`,
      status: speed === null ? "n/a" : speed.median >= 1.0 ? "pass" : "fail",
    },
    drCpuTarget(s, NAT_FAST_PATH, "modes-dr-cpu", "with the kernel fast path"),
    drCpuTarget(s, NAT_USER_SPACE, "modes-dr-cpu-user-space", "in user space"),
  ];
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + " ".repeat(width - text.length);
}

/** The modes table, then one line per mode answering the seed's claim about large files. */
export function formatModesReport(modes: ModesReport): string[] {
  const lines = [
    "forwarding modes, large downloads (direct-routing topology: client -> router -> natlb two-armed (its own link from the router; the LAN with the router and 3 reals))",
  ];
  const header = ["mode", "1 conn Gbit/s", "4 conns Gbit/s", "x plain", "x natlb nat", "machine CPU-s/GiB", "balancer CPU-s/GiB", "balancer CPU x nat", "x nat user space"];
  const rows = modes.rows.map((r) => {
    if (r.skipped !== null) return [r.title, r.skipped.startsWith("not available") ? "not available" : "skipped", "", "", "", "", "", "", ""];
    const kernel = r.cpuBalancerPerGiB === null;
    return [
      r.title,
      formatSummary(r.dl1Gbps),
      formatSummary(r.dl4Gbps),
      formatSummary(r.dl4VsPlain, 2),
      formatSummary(r.dl4VsNat, 2),
      formatSummary(r.cpuMachinePerGiB),
      kernel ? (r.balancerNote ?? "n/a") : formatSummary(r.cpuBalancerPerGiB),
      kernel ? "N/A" : formatSummary(r.cpuBalancerVsNat, 2),
      kernel ? "N/A" : formatSummary(r.cpuBalancerVsNatUserSpace, 2),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const render = (cells: string[]): string => `| ${cells.map((c, i) => pad(c, widths[i] ?? 0)).join(" | ")} |`;
  lines.push(render(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(render));
  lines.push(
    "(CPU columns: 4-connection downloads; ratios: median of per-round ratios, min..max; \"x nat\": natlb nat with the kernel fast path, \"x nat user space\": natlb nat with every frame through natlb)",
  );
  lines.push("large files, per mode (4 connections):");
  for (const r of modes.rows) {
    if (r.skipped !== null) {
      lines.push(`  ${r.title}: ${r.skipped}`);
      continue;
    }
    const rate = r.dl4Gbps === null ? "not measured" : `${formatNumber(r.dl4Gbps.median)} Gbit/s`;
    const vsPlain = r.dl4VsPlain === null ? "" : ` = ${formatNumber(r.dl4VsPlain.median, 2)} x plain forwarding`;
    const against = (s: Summary | null, nat: VariantId, what: string): string =>
      s === null || r.variant === nat ? "" : `, ${formatNumber(s.median, 2)} x ${what}`;
    const cpu =
      r.cpuBalancerPerGiB === null
        ? `balancer process ${r.balancerNote ?? "not measured"}`
        : `balancer ${formatNumber(r.cpuBalancerPerGiB.median)} CPU-s/GiB${against(r.cpuBalancerVsNat, NAT_FAST_PATH, "nat (fast path)")}${against(r.cpuBalancerVsNatUserSpace, NAT_USER_SPACE, "nat (user space)")}`;
    const machine = r.cpuMachinePerGiB === null ? "" : `, machine ${formatNumber(r.cpuMachinePerGiB.median)} CPU-s/GiB`;
    lines.push(`  ${r.title}: ${rate}${vsPlain}; ${cpu}${machine}`);
  }
  return lines;
}
