// The flood lab: do new clients still get through while spoofed floods hit the VIP? One lab with a
// flood host (lab/topology.ts, floodHost), 3 reals, offloads on. For each flood kind (spoofed
// SYNs to VIP:81, spoofed UDP to VIP:53) and each rate of the ladder, every variant (kernel NAT,
// natlb) in turn, the order rotated each step:
//   flush conntrack -> set up -> probes before (must all succeed) -> flood for floodSeconds while the
//   client probes -> probes right after (recovery) -> diagnostics -> tear down -> gateway bare?
// Each step sets its variant up afresh (and flushes the gateway's conntrack table) rather than
// waiting for recovery: both natlb's flow map and conntrack keep a flood's spoofed entries for 60 s
// or more (SYN_RECV) or until their table is full, so a bounded wait would leave each step the
// previous step's fill, and the result would depend on the ladder's order.
import { readMachineTicks, readProcessTicks } from "../lab/benchTools";
import { startBlobServer } from "../lab/blobServer";
import { startFlood, type FloodKind, type FloodSummary } from "../lab/flood";
import { SPOOF_RANGE } from "../lab/labAddresses";
import { linkCountersDelta, readLinkCounters } from "../lab/netCounters";
import { runPacedProbes, type ProbeSummary } from "../lab/pacedProbes";
import { createLab, type Lab } from "../lab/topology";
import { startUdpEcho } from "../lab/udpEcho";
import { conntrackCount, ensureConntrackTool, flushConntrack } from "./conntrack";
import type { ConnTool } from "./connTool";
import { stepPassed } from "./floodReport";
import {
  SERVICES_PORTS, addClientAddresses, clientIpFor, labServerSeconds, newVariantTurn, runThenDestroy, runVariantTurn,
  type LabOutcome, type VariantTurn,
} from "./labRounds";
import type { ResolvedOptions } from "./options";
import { formatNumber } from "./stats";
import type { ActiveVariant, BenchServices, Variant, VariantId } from "./variants";

export const FLOOD_KINDS: readonly FloodKind[] = ["syn", "udp"];
export const FLOOD_SERVICES_PORTS = { ...SERVICES_PORTS, udp: { vport: 53, realPort: 5353 } } as const;
const REALS = 3;

/** CPU over one flood, from its first packet to its end. */
export interface FloodCpu {
  seconds: number;
  /** The balancer process's CPU-seconds per second (1 = one core busy); null for kernel NAT (softirq). */
  balancerCores: number | null;
  /** Busy share of all the machine's CPUs, 0..1: generator, probes, servers and kernel included. */
  machineBusy: number;
}

/** One variant under one flood at one rate (kept whole in the JSON report). */
export interface FloodStep extends VariantTurn {
  kind: FloodKind;
  variant: VariantId;
  /** The rate asked of the generator, packets per second. */
  pps: number;
  /** Position in the lab's sequence of steps (0 = first). */
  index: number;
  clientIp: string;
  /** Probes before the flood: the path works (every one must succeed, else the step is void). */
  before: ProbeSummary | null;
  /** Probes started while the flood ran. */
  during: ProbeSummary | null;
  /** Probes started right after the flood ended (recovery). */
  after: ProbeSummary | null;
  /** The generator's summary: what was actually sent, at what rate. */
  flood: FloodSummary | null;
  cpu: FloodCpu | null;
  /** Ms after the flood's first packet: when the during-probes were launched and when they ended, and when the flood ended. */
  timing: { probesLaunchedMs: number; probesEndMs: number; floodMs: number } | null;
  /** Frames that came back to the flood host (replies to spoofed sources) during flood and recovery. */
  repliesToFloodHost: number | null;
  /** Entries of the gateway's conntrack table: left over before this step's flush, and right after the flood. */
  conntrack: { beforeFlush: number | null; afterFlood: number | null };
}

/** A step before it runs: nothing measured yet. */
export function newFloodStep(kind: FloodKind, variant: VariantId, pps: number, index: number, clientIp: string): FloodStep {
  return {
    kind, variant, pps, index, clientIp,
    before: null, during: null, after: null, flood: null, cpu: null, timing: null, repliesToFloodHost: null,
    conntrack: { beforeFlush: null, afterFlood: null },
    ...newVariantTurn(),
  };
}

export interface FloodLabResult extends LabOutcome {
  lab: "flood";
  labId: string | null;
  steps: FloodStep[];
  /** How conntrack was reset between steps (or why it was not). */
  conntrackReset: string;
}

export interface FloodLabContext {
  options: ResolvedOptions;
  /** The flood variants to run (kernelNat, natlb), in base order. */
  variants: Variant[];
  variantIndex: (id: VariantId) => number;
  deadline: number;
  clockTicksPerSecond: number;
  connTool: ConnTool;
}

export async function runFloodLab(ctx: FloodLabContext): Promise<FloodLabResult> {
  const o = ctx.options;
  const log = (line: string): void => o.log(`[flood] ${line}`);
  const result: FloodLabResult = { lab: "flood", labId: null, steps: [], errors: [], stoppedEarly: null, conntrackReset: "" };
  let conntrack: string | null = null;
  try {
    conntrack = await ensureConntrackTool(log);
    result.conntrackReset = "conntrack -F in the gateway before every step";
  } catch (e) {
    result.conntrackReset = `not reset (${(e as Error).message}): steps after the first inherit earlier steps' conntrack entries`;
    result.errors.push(`flood: ${result.conntrackReset}`);
    log(result.conntrackReset);
  }
  log(`creating lab (offloads on, ${REALS} reals, flood host, prefix fb)`);
  const lab = await createLab({ reals: REALS, offloads: true, prefix: "fb", floodHost: true });
  result.labId = lab.id;
  await runThenDestroy(lab, "flood", result, log, async () => {
    await prepareFloodLab(lab, ctx);
    const services: BenchServices = { vip: lab.vip, ...FLOOD_SERVICES_PORTS, reals: lab.reals.map((r) => r.ip) };
    let index = 0;
    for (const kind of FLOOD_KINDS) {
      for (const [rung, pps] of o.floodRates.entries()) {
        const order = ctx.variants.map((_, i) => ctx.variants[(i + rung) % ctx.variants.length] as Variant);
        for (const variant of order) {
          if (Date.now() > ctx.deadline) {
            result.stoppedEarly = `time bound of ${o.maxMinutes} min reached before step ${index + 1} (${kind} ${pps} pps ${variant.id})`;
            log(result.stoppedEarly);
            return;
          }
          const step = await runFloodStep(lab, { kind, pps, variant, index, services, conntrack }, ctx, log);
          index++;
          result.steps.push(step);
          for (const e of step.errors) result.errors.push(`flood ${kind} ${pps} pps ${variant.id}: ${e}`);
          if (step.leftovers !== null) throw new Error(step.leftovers);
        }
      }
    }
  });
  return result;
}

async function prepareFloodLab(lab: Lab, ctx: FloodLabContext): Promise<void> {
  await addClientAddresses(lab, ctx.variants, ctx.variantIndex);
  const maxSeconds = labServerSeconds(ctx.options);
  for (let i = 1; i <= REALS; i++) {
    await startBlobServer(lab, i, FLOOD_SERVICES_PORTS.bulk.realPort, { cacheMb: 8, maxSeconds });
    await ctx.connTool.startServer(lab, i, FLOOD_SERVICES_PORTS.small.realPort, maxSeconds);
    await startUdpEcho(lab, i, FLOOD_SERVICES_PORTS.udp.realPort, { quiet: true });
  }
}

interface StepPlan {
  kind: FloodKind;
  pps: number;
  variant: Variant;
  index: number;
  services: BenchServices;
  /** The conntrack binary, or null when conntrack cannot be flushed. */
  conntrack: string | null;
}

async function runFloodStep(lab: Lab, plan: StepPlan, ctx: FloodLabContext, log: (line: string) => void): Promise<FloodStep> {
  const { kind, pps, variant, services } = plan;
  const step = newFloodStep(kind, variant.id, pps, plan.index, clientIpFor(ctx.variantIndex(variant.id)));
  const say = (text: string): void => log(`${kind} ${formatNumber(pps / 1000)} k/s ${variant.id.padEnd(9)} ${text}`);
  try {
    step.conntrack.beforeFlush = await conntrackCount(lab);
    if (plan.conntrack !== null) await flushConntrack(lab, plan.conntrack);
  } catch (e) {
    step.errors.push(`conntrack flush: ${(e as Error).message}`);
  }
  await runVariantTurn(lab, variant, services, step, `flood step ${plan.index + 1}`, say, (active) => floodAndProbe(lab, plan, active, step, ctx, say));
  return step;
}

function share(counts: { attempted: number; succeeded: number } | null | undefined): string {
  if (counts === null || counts === undefined || counts.attempted === 0) return "n/a";
  return `${formatNumber((100 * counts.succeeded) / counts.attempted)} %`;
}

async function floodAndProbe(
  lab: Lab,
  plan: StepPlan,
  active: ActiveVariant,
  step: FloodStep,
  ctx: FloodLabContext,
  say: (text: string) => void,
): Promise<void> {
  const o = ctx.options;
  const floodHost = lab.floodHost;
  if (floodHost === null) throw new Error("the flood lab has no flood host");
  const { vip } = plan.services;
  const probes = {
    tcp: { ip: vip, port: FLOOD_SERVICES_PORTS.small.vport },
    ...(plan.kind === "udp" ? { udp: { ip: vip, port: FLOOD_SERVICES_PORTS.udp.vport } } : {}),
    rate: o.floodProbeRate,
    timeoutMs: o.floodProbeTimeoutMs,
    localAddress: step.clientIp,
  };

  // 1. Before: the path must work, or the step says nothing.
  step.before = await runPacedProbes(lab, { ...probes, durationMs: 1000 });
  const baselineOk = step.before.tcp.succeeded === step.before.tcp.attempted && (step.before.udp === null || step.before.udp.succeeded === step.before.udp.attempted);
  if (!baselineOk) {
    throw new Error(`not every probe succeeded before the flood (TCP ${share(step.before.tcp)}, UDP ${share(step.before.udp)}): step skipped`);
  }

  // 2. During: the flood runs floodSeconds (or until pps x floodSeconds packets are out), the client
  // probes from its first packet on; probes stop starting a timeout (and a margin for the probe
  // tool's start-up) before the flood's planned end, so every probe's whole life lies in the flood.
  const target = plan.kind === "syn" ? { ip: vip, port: FLOOD_SERVICES_PORTS.small.vport } : { ip: vip, port: FLOOD_SERVICES_PORTS.udp.vport };
  const floodHostBefore = await readLinkCounters(lab, floodHost.ns, floodHost.ifname);
  const flood = await startFlood(lab, { kind: plan.kind, target, sources: SPOOF_RANGE, rate: step.pps, count: step.pps * o.floodSeconds, seconds: o.floodSeconds });
  // CPU from the flood's first packet (its "started" line) to its end, read the moment it ends.
  const floodStart = performance.now();
  const [busy0, total0] = readMachineTicks();
  const balancer0 = active.pid === null ? null : readProcessTicks(active.pid);
  const floodEnd = flood.done.then((summary) => ({
    summary,
    ms: performance.now() - floodStart,
    machine: readMachineTicks(),
    balancer: active.pid === null ? null : readProcessTicks(active.pid),
  }));
  floodEnd.catch(() => undefined);
  const probesLaunchedMs = performance.now() - floodStart;
  const duringMs = o.floodSeconds * 1000 - o.floodProbeTimeoutMs - 500;
  let probesEndMs = NaN;
  try {
    step.during = await runPacedProbes(lab, { ...probes, durationMs: duringMs });
    probesEndMs = performance.now() - floodStart;
  } finally {
    await flood.done.catch(() => undefined);
  }
  const end = await floodEnd;
  step.flood = end.summary;
  const [busy1, total1] = end.machine;
  step.timing = { probesLaunchedMs: Math.round(probesLaunchedMs), probesEndMs: Math.round(probesEndMs), floodMs: Math.round(end.ms) };
  const seconds = end.ms / 1000;
  step.cpu = {
    seconds,
    balancerCores: balancer0 === null || end.balancer === null ? null : (end.balancer - balancer0) / ctx.clockTicksPerSecond / seconds,
    machineBusy: total1 > total0 ? (busy1 - busy0) / (total1 - total0) : NaN,
  };
  step.conntrack.afterFlood = await conntrackCount(lab);

  // 3. After: right away, the same probes (recovery).
  step.after = await runPacedProbes(lab, { ...probes, durationMs: o.floodRecoverySeconds * 1000 });
  step.repliesToFloodHost = linkCountersDelta(floodHostBefore, await readLinkCounters(lab, floodHost.ns, floodHost.ifname)).rxPackets;

  const f = step.flood;
  const cpu = step.cpu.balancerCores === null ? "" : `, balancer ${formatNumber(step.cpu.balancerCores, 2)} cores`;
  const udp = plan.kind === "udp" ? `; UDP ${share(step.during.udp)} during, ${share(step.after.udp)} after` : "";
  const verdict = stepPassed(step) ? "ok" : "FAIL";
  say(
    `sent ${formatNumber(f.rate / 1000)} k/s (${f.sent} in ${formatNumber(f.seconds)} s): conns ${share(step.during.tcp)} during, ` +
      `${share(step.after.tcp)} after${udp}; machine ${formatNumber(100 * step.cpu.machineBusy)} %${cpu} -> ${verdict}`,
  );
}
