// From flood steps to the flood case's verdicts and tables: per variant and flood kind, the highest
// rate of the ladder up to which new connections kept getting through (>= 95 % during the flood,
// 100 % right after it), natlb's CPU there, and natlb's rate over kernel NAT's. Rates are compared
// as sent: in this lab the flood host shares the CPUs with the gateway, and a veth runs the
// receiving side's softirq in the sender's context, so a path that costs the kernel more per packet
// slows the generator down, and the rate asked of a step is not always the rate the path took.
import type { FloodKind } from "../lab/flood";
import type { ProbeCounts, ProbeSummary } from "../lab/pacedProbes";
import type { FloodLabResult, FloodStep } from "./floodLab";
import { formatNumber } from "./stats";
import type { VariantId } from "./variants";

/** Share of new connections that must succeed while the flood runs. */
export const DURING_SHARE_MIN = 0.95;
/** Share that must succeed right after it (recovery). */
export const AFTER_SHARE_MIN = 1;
/** A step whose generator sent less than this share of the asked rate is marked short. */
export const SHORT_SENT_SHARE = 0.9;

export const FLOOD_TITLES: Record<FloodKind, string> = {
  syn: "spoofed SYN flood -> VIP:81",
  ack: "spoofed ACK flood (no connection) -> VIP",
  udp: "spoofed UDP flood -> VIP:53",
};

export interface FloodVerdict {
  kind: FloodKind;
  variant: VariantId;
  /** Rates that ran for this variant and kind, ascending. */
  ladder: number[];
  /** Highest rate up to which every step passed (the climb stops at the first failure); null when the lowest failed. */
  highestOkPps: number | null;
  /** The first rate that failed (or measured nothing); null when every step passed. */
  firstFailPps: number | null;
  /** What the generator actually sent at highestOkPps, packets per second: the rate the comparison uses. */
  sentPps: number | null;
  /** The generator sent less than 90 % of highestOkPps. */
  short: boolean;
  /** What the generator sent at the lowest step (for the bound when that step failed). */
  lowestSentPps: number | null;
  /** The balancer's CPU at highestOkPps, cores (null for kernel NAT). */
  balancerCores: number | null;
  /** The whole machine's busy share at highestOkPps, 0..1. */
  machineBusy: number | null;
  /** UDP flood: share of the client's UDP requests answered at highestOkPps, during and after (reported, not judged). */
  udp: { during: number | null; after: number | null } | null;
}

export interface FloodComparison {
  kind: FloodKind;
  kernelNat: FloodVerdict | null;
  natlb: FloodVerdict | null;
  /** natlb / kernel NAT of the rates sent at their highestOkPps; null when one of them failed the lowest rate. */
  ratio: number | null;
  /** The ratio as it reads, with its bound: ">= 2" when natlb passed every step, "< 0.25" when it failed the lowest. */
  ratioText: string;
}

export interface FloodReport {
  settings: {
    rates: number[];
    floodSeconds: number;
    recoverySeconds: number;
    probeRate: number;
    probeTimeoutMs: number;
    sources: string;
    conntrackReset: string;
  };
  comparisons: FloodComparison[];
  steps: FloodStep[];
  stoppedEarly: string | null;
}

function shareOf(c: ProbeCounts | null | undefined): number | null {
  return c === null || c === undefined || c.attempted === 0 ? null : c.succeeded / c.attempted;
}

/**
 * true: >= 95 % of the new connections started during the flood succeeded, and all of those started
 * after it; false: fewer; null: the step measured nothing (set-up failed, or the path did not work
 * before the flood).
 */
export function stepPassed(step: { before: ProbeSummary | null; during: ProbeSummary | null; after: ProbeSummary | null }): boolean | null {
  const before = shareOf(step.before?.tcp);
  const during = shareOf(step.during?.tcp);
  const after = shareOf(step.after?.tcp);
  if (before !== 1 || during === null || after === null) return null;
  return during >= DURING_SHARE_MIN && after >= AFTER_SHARE_MIN;
}

/** Climbs the ladder of one variant and flood kind: the last rate before the first step that did not pass. */
export function floodVerdict(steps: readonly FloodStep[], variant: VariantId, kind: FloodKind): FloodVerdict | null {
  const mine = steps.filter((s) => s.variant === variant && s.kind === kind).sort((a, b) => a.pps - b.pps);
  if (mine.length === 0) return null;
  let highest: FloodStep | null = null;
  let firstFail: FloodStep | null = null;
  for (const s of mine) {
    if (stepPassed(s) === true) {
      highest = s;
      continue;
    }
    firstFail = s;
    break;
  }
  return {
    kind,
    variant,
    ladder: mine.map((s) => s.pps),
    highestOkPps: highest?.pps ?? null,
    firstFailPps: firstFail?.pps ?? null,
    sentPps: highest?.flood?.rate ?? null,
    short: highest !== null && isShort(highest),
    lowestSentPps: mine[0]?.flood?.rate ?? null,
    balancerCores: highest?.cpu?.balancerCores ?? null,
    machineBusy: highest?.cpu?.machineBusy ?? null,
    udp: highest?.during?.udp == null ? null : { during: shareOf(highest.during.udp), after: shareOf(highest.after?.udp) },
  };
}

/** The generator sent less than 90 % of the step's rate. */
export function isShort(step: Pick<FloodStep, "pps" | "flood">): boolean {
  return step.flood !== null && step.flood.rate < step.pps * SHORT_SENT_SHARE;
}

/** natlb against kernel NAT for one flood kind (rates as sent), with the ratio's bound spelled out. */
export function compareFlood(steps: readonly FloodStep[], kind: FloodKind): FloodComparison {
  const kernelNat = floodVerdict(steps, "kernelNat", kind);
  const natlb = floodVerdict(steps, "natlb", kind);
  const out: FloodComparison = { kind, kernelNat, natlb, ratio: null, ratioText: "n/a" };
  if (kernelNat === null || natlb === null) return out;
  const k = kernelNat.highestOkPps === null ? null : kernelNat.sentPps ?? kernelNat.highestOkPps;
  const n = natlb.highestOkPps === null ? null : natlb.sentPps ?? natlb.highestOkPps;
  if (k === null && n === null) {
    out.ratioText = "n/a (both failed the lowest rate)";
  } else if (k === null) {
    const kernelLowest = kernelNat.lowestSentPps ?? kernelNat.ladder[0] ?? NaN;
    out.ratioText = `> ${formatNumber((n as number) / kernelLowest, 2)} (kernel NAT failed the lowest rate)`;
  } else if (n === null) {
    const natlbLowest = natlb.lowestSentPps ?? natlb.ladder[0] ?? NaN;
    out.ratioText = `< ${formatNumber(natlbLowest / k, 2)} (natlb failed the lowest rate)`;
  } else {
    out.ratio = n / k;
    const natlbTop = natlb.firstFailPps === null;
    const kernelTop = kernelNat.firstFailPps === null;
    const r = formatNumber(out.ratio, 2);
    if (natlbTop && kernelTop) out.ratioText = `${r} (both passed every step)`;
    else if (natlbTop) out.ratioText = `>= ${r} (natlb passed every step)`;
    else if (kernelTop) out.ratioText = `<= ${r} (kernel NAT passed every step)`;
    else out.ratioText = r;
  }
  return out;
}

export function buildFloodReport(result: FloodLabResult, settings: Omit<FloodReport["settings"], "conntrackReset">): FloodReport {
  const kinds = [...new Set(result.steps.map((s) => s.kind))];
  return {
    settings: { ...settings, conntrackReset: result.conntrackReset },
    comparisons: kinds.map((kind) => compareFlood(result.steps, kind)),
    steps: result.steps,
    stoppedEarly: result.stoppedEarly,
  };
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + " ".repeat(width - text.length);
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const render = (cells: string[]): string => `| ${cells.map((c, i) => pad(c, widths[i] ?? 0)).join(" | ")} |`;
  return [render(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(render)];
}

function percent(c: ProbeCounts | null | undefined): string {
  const s = shareOf(c);
  return s === null || c === null || c === undefined ? "-" : `${formatNumber(100 * s)} % (${c.succeeded}/${c.attempted})`;
}

function pps(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "-";
  return x >= 1000 ? `${formatNumber(x / 1000)} k` : formatNumber(x);
}

const VARIANT_NAMES: Partial<Record<VariantId, string>> = { kernelNat: "kernel NAT", natlb: "natlb" };

/** Plain-text rendering: each step, then the verdicts. */
export function formatFloodReport(report: FloodReport): string[] {
  const s = report.settings;
  const lines: string[] = [
    `Flood (spoofed sources ${s.sources} from the flood host; ${s.floodSeconds} s per step; the client opens ${s.probeRate} new TCP ` +
      `connections/s to VIP:81 (and sends ${s.probeRate} UDP requests/s to VIP:53 in the UDP flood), each must finish within ` +
      `${s.probeTimeoutMs} ms; "after" = the ${s.recoverySeconds} s right after the flood; a step passes with >= ${100 * DURING_SHARE_MIN} % ` +
      `during and ${100 * AFTER_SHARE_MIN} % after; conntrack: ${s.conntrackReset})`,
  ];
  for (const kind of [...new Set(report.steps.map((x) => x.kind))]) {
    lines.push("", FLOOD_TITLES[kind]);
    const rows = report.steps
      .filter((x) => x.kind === kind)
      .sort((a, b) => a.pps - b.pps || a.index - b.index)
      .map((x) => {
        const passed = stepPassed(x);
        return [
          VARIANT_NAMES[x.variant] ?? x.variant,
          pps(x.pps),
          `${pps(x.flood?.rate)}${isShort(x) ? " *" : ""}`,
          percent(x.during?.tcp),
          percent(x.after?.tcp),
          ...(kind === "udp" ? [percent(x.during?.udp), percent(x.after?.udp)] : []),
          x.cpu?.balancerCores === null || x.cpu === null ? "-" : formatNumber(x.cpu.balancerCores, 2),
          x.cpu === null ? "-" : `${formatNumber(100 * x.cpu.machineBusy)} %`,
          passed === null ? `void${x.errors.length > 0 ? `: ${(x.errors[0] ?? "").slice(0, 60)}` : ""}` : passed ? "ok" : "FAIL",
        ];
      });
    const header = [
      "variant",
      "asked [pps]",
      "sent [pps]",
      "conns during",
      "conns after",
      ...(kind === "udp" ? ["UDP during", "UDP after"] : []),
      "balancer CPU [cores]",
      "machine CPU",
      "step",
    ];
    lines.push(...table(header, rows));
  }
  if (report.steps.some(isShort)) {
    lines.push(
      "* the generator sent < 90 % of the asked rate: the flood host shares the CPUs with the gateway, and a veth runs the gateway's " +
        "receive path in the sender's context, so a path that costs the kernel more per packet slows the flood down",
    );
  }
  if (report.comparisons.length > 0) {
    lines.push(
      "",
      "flood verdicts: highest rate with >= 95 % of new connections during the flood and 100 % after (every lower rate too), " +
        "as sent (asked); natlb / kernel NAT compares the rates sent",
    );
    const rows = report.comparisons.map((c) => [
      FLOOD_TITLES[c.kind],
      verdictText(c.kernelNat),
      verdictText(c.natlb),
      c.natlb?.balancerCores === null || c.natlb === null ? "-" : `${formatNumber(c.natlb.balancerCores, 2)} cores`,
      c.ratioText,
      `${udpText(c.kernelNat)} / ${udpText(c.natlb)}`,
    ]);
    lines.push(...table(["flood", "kernel NAT", "natlb", "natlb CPU there", "natlb / kernel NAT", "UDP requests there, kernel NAT / natlb"], rows));
  }
  if (report.stoppedEarly !== null) lines.push(`flood lab stopped early: ${report.stoppedEarly}`);
  return lines;
}

/** "during % / after %" of the UDP requests at the verdict's rate, or "-". */
function udpText(v: FloodVerdict | null): string {
  if (v?.udp == null) return "-";
  const p = (x: number | null): string => (x === null ? "-" : `${formatNumber(100 * x)} %`);
  return `${p(v.udp.during)} during, ${p(v.udp.after)} after`;
}

function verdictText(v: FloodVerdict | null): string {
  if (v === null) return "not run";
  if (v.highestOkPps === null) return `< ${pps(v.lowestSentPps ?? v.ladder[0])} (failed the lowest)`;
  const every = v.firstFailPps === null ? ", every step" : "";
  return `${pps(v.sentPps ?? v.highestOkPps)} (asked ${pps(v.highestOkPps)}${v.short ? ": generator short" : ""}${every})`;
}
