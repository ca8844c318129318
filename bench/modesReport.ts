// The modes lab in the report (issue #11): per forwarding mode the large-download rate, the machine's
// and the balancer process's CPU per GiB, each mode's rate against plain forwarding and natlb nat, and
// its balancer CPU against natlb nat's, all as medians of per-round ratios; and issue #11's two goals
// (dr at least as fast as plain forwarding, dr's balancer CPU per GiB at most a tenth of nat's).
import type { LabRunResult, MetricId, Sample } from "./labRounds";
import { pairedSummary, ratio, valuesOf } from "./pairedSamples";
import type { LabKind } from "./options";
import type { TargetResult } from "./report";
import { formatNumber, formatSummary, summarize, type Summary } from "./stats";
import type { VariantId } from "./variants";

/** How each mode reads in the modes table (the modes lab's "natlb" is natlb's default, nat). */
export const MODE_TITLES: Partial<Record<VariantId, string>> = {
  plain: "plain forwarding (no balancer)",
  kernelNat: "kernel NAT (DNAT + SNAT)",
  natlb: "natlb nat",
  natlbDr: "natlb dr",
  natlbFullnat: "natlb fullnat",
  haproxy: "HAProxy (TCP proxy)",
};

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
  /** 4-connection rate / natlb nat's, per round. */
  dl4VsNat: Summary | null;
  /** Balancer CPU per GiB / natlb nat's (4 connections): per round, or one ratio of medians (NatCpuReference). */
  cpuBalancerVsNat: Summary | null;
}

/**
 * natlb nat's balancer CPU per GiB that the other modes are compared with: from the modes lab itself
 * (paired by round), or, where natlb does not run nat one-armed, from the gso lab (two-armed, the
 * same ~64 KB frames), compared as medians.
 */
export interface NatCpuReference {
  lab: "modes" | "gso";
  cpuPerGiB: Summary;
}

export interface ModesReport {
  rows: ModeRow[];
  natCpuReference: NatCpuReference | null;
  /**
   * natlb nat without the kernel fast path (natlbUserSpace in the gso lab), when it ran: with the fast
   * path nat's bytes go through the kernel, without it every frame crosses natlb as every client frame
   * crosses a dr balancer. Shown beside the reference, not used for the goal.
   */
  natUserSpaceCpuPerGiB: Summary | null;
}

const LAB = "modes";

function summaryOf(samples: readonly Sample[], metric: MetricId, variant: VariantId, lab: LabKind = LAB): Summary | null {
  return summarize([...valuesOf(samples, lab, metric, variant).values()]);
}

function natCpuReference(labs: readonly LabRunResult[]): NatCpuReference | null {
  for (const lab of [LAB, "gso"] as const) {
    const samples = labs.find((l) => l.lab === lab)?.samples ?? [];
    const s = summaryOf(samples, "dl4CpuBalancer", "natlb", lab);
    if (s !== null) return { lab, cpuPerGiB: s };
  }
  return null;
}

/** `variant`'s balancer CPU per GiB against natlb nat's (see NatCpuReference). */
function cpuVsNat(samples: readonly Sample[], variant: VariantId, ref: NatCpuReference | null): Summary | null {
  if (ref === null) return null;
  if (ref.lab === LAB) return pairedSummary(samples, LAB, "dl4CpuBalancer", variant, "natlb", ratio);
  const ours = summaryOf(samples, "dl4CpuBalancer", variant);
  return ours === null ? null : summarize([ratio(ours.median, ref.cpuPerGiB.median)]);
}

/** The modes table; null when the modes lab did not run. `variants` in table order, with why each was skipped. */
export function buildModes(labs: readonly LabRunResult[], variants: ReadonlyArray<{ id: VariantId; skipped: string | null }>): ModesReport | null {
  const lab = labs.find((l) => l.lab === LAB);
  if (lab === undefined) return null;
  const s = lab.samples;
  const reference = natCpuReference(labs);
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
      dl4VsNat: pairedSummary(s, LAB, "dl4Gbps", id, "natlb", ratio),
      cpuBalancerVsNat: cpuVsNat(s, id, reference),
    }));
  const gsoSamples = labs.find((l) => l.lab === "gso")?.samples ?? [];
  return { rows, natCpuReference: reference, natUserSpaceCpuPerGiB: summaryOf(gsoSamples, "dl4CpuBalancer", "natlbUserSpace", "gso") };
}

/** Issue #11's goals, from the modes lab's samples (n/a when it did not run). */
export function modesTargets(labs: readonly LabRunResult[]): TargetResult[] {
  const s = labs.find((l) => l.lab === LAB)?.samples ?? [];
  const speed = pairedSummary(s, LAB, "dl4Gbps", "natlbDr", "plain", ratio);
  const reference = natCpuReference(labs);
  const cpu = cpuVsNat(s, "natlbDr", reference);
  return [
    {
      id: "modes-dr-speed",
      target: "dr, 4 conns >= 1.0 x plain forwarding (modes lab)",
      basis: "modes lab, download 4 conns: median of per-round natlb dr / plain forwarding",
      value: speed?.median ?? null,
      measured: speed === null ? "not measured" : `${formatSummary(speed, 2)} x plain forwarding`,
      status: speed === null ? "n/a" : speed.median >= 1.0 ? "pass" : "fail",
    },
    {
      id: "modes-dr-cpu",
      target: "dr balancer CPU-s/GiB <= 0.1 x natlb nat's (modes lab, 4 conns)",
      basis:
        reference?.lab === "gso"
          ? "balancer process CPU per GiB, 4 conns: median of natlb dr (modes lab) / median of natlb nat (gso lab: natlb does not run nat one-armed)"
          : "modes lab, balancer process CPU per GiB, 4 conns: median of per-round natlb dr / natlb nat",
      value: cpu?.median ?? null,
      measured: cpu === null ? "not measured" : `${formatSummary(cpu, 2)} x natlb nat${reference?.lab === "gso" ? " (gso lab)" : ""}`,
      status: cpu === null ? "n/a" : cpu.median <= 0.1 ? "pass" : "fail",
    },
  ];
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + " ".repeat(width - text.length);
}

/** The modes table, then one line per mode answering the seed's claim about large files. */
export function formatModesReport(modes: ModesReport): string[] {
  const lines = ["forwarding modes, large downloads (direct-routing topology: client -> router -> LAN with natlb one-armed and 3 reals)"];
  const header = ["mode", "1 conn Gbit/s", "4 conns Gbit/s", "x plain", "x natlb nat", "machine CPU-s/GiB", "balancer CPU-s/GiB", "balancer CPU x nat"];
  const rows = modes.rows.map((r) => {
    if (r.skipped !== null) return [r.title, r.skipped.startsWith("not available") ? "not available" : "skipped", "", "", "", "", "", ""];
    const balancer = r.cpuBalancerPerGiB === null ? (r.balancerNote ?? "n/a") : formatSummary(r.cpuBalancerPerGiB);
    const balancerVsNat = r.cpuBalancerPerGiB === null ? "N/A" : formatSummary(r.cpuBalancerVsNat, 2);
    return [
      r.title,
      formatSummary(r.dl1Gbps),
      formatSummary(r.dl4Gbps),
      formatSummary(r.dl4VsPlain, 2),
      formatSummary(r.dl4VsNat, 2),
      formatSummary(r.cpuMachinePerGiB),
      balancer,
      balancerVsNat,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const render = (cells: string[]): string => `| ${cells.map((c, i) => pad(c, widths[i] ?? 0)).join(" | ")} |`;
  lines.push(render(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(render));
  lines.push("(CPU columns: 4-connection downloads; ratios: median of per-round ratios, min..max)");
  const ref = modes.natCpuReference;
  if (ref?.lab === "gso") {
    lines.push(
      `(balancer CPU x nat: against natlb nat in the gso lab, two-armed, same frames: ${formatSummary(ref.cpuPerGiB)} CPU-s/GiB; a ratio of medians, not paired by round)`,
    );
  } else if (ref === null) {
    lines.push("(balancer CPU x nat: n/a, natlb nat was measured in neither this lab nor the gso lab)");
  }
  const userSpace = modes.natUserSpaceCpuPerGiB;
  if (userSpace !== null) {
    lines.push(`(natlb nat without the kernel fast path, gso lab: ${formatSummary(userSpace)} CPU-s/GiB; "x nat user space" below is against its median)`);
  }
  lines.push("large files, per mode (4 connections):");
  for (const r of modes.rows) {
    if (r.skipped !== null) {
      lines.push(`  ${r.title}: ${r.skipped}`);
      continue;
    }
    const rate = r.dl4Gbps === null ? "not measured" : `${formatNumber(r.dl4Gbps.median)} Gbit/s`;
    const vsPlain = r.dl4VsPlain === null ? "" : ` = ${formatNumber(r.dl4VsPlain.median, 2)} x plain forwarding`;
    const cpu =
      r.cpuBalancerPerGiB === null
        ? `balancer process ${r.balancerNote ?? "not measured"}`
        : `balancer ${formatNumber(r.cpuBalancerPerGiB.median)} CPU-s/GiB${r.cpuBalancerVsNat === null || r.variant === "natlb" ? "" : ` = ${formatNumber(r.cpuBalancerVsNat.median, 2)} x natlb nat${ref?.lab === "gso" ? " (gso lab)" : ""}`}`;
    const vsUserSpace =
      r.cpuBalancerPerGiB === null || userSpace === null ? "" : `, ${formatNumber(ratio(r.cpuBalancerPerGiB.median, userSpace.median), 2)} x nat user space`;
    const machine = r.cpuMachinePerGiB === null ? "" : `, machine ${formatNumber(r.cpuMachinePerGiB.median)} CPU-s/GiB`;
    lines.push(`  ${r.title}: ${rate}${vsPlain}; ${cpu}${vsUserSpace}${machine}`);
  }
  return lines;
}
