// The ECMP failover gap (issue #13): in the ECMP lab (lab/ecmpTopology.ts: a BIRD router with kernel
// ECMP and an L4 hash, 3 natlb instances with their own BIRD, dr + mh with a shared seed), UDP flows
// echoed by the reals (lab/udpGapProbe.ts); one instance is killed (SIGKILL to natlb and its BIRD,
// links left up) while they run, and later comes back. Per round it measures:
// - routeMs: from the kill until the router's kernel route to the VIP has lost that nexthop;
// - the longest time without a reply of each flow that moved (longer than 5 probe intervals):
//   the failover gap clients see, max and median over those flows;
// - the same at the rejoin (its BIRD starts while the flows run; natlb already runs).
//
//   node dist/bench/run.js ecmp-failover [--rounds 3] [--json out.json]     (~1 min a round)
//
// Not part of `npm run bench`: it needs BIRD, and no e2e test may run beside it.
import { writeFileSync } from "node:fs";
import { createEcmpLab, type EcmpLab } from "../lab/ecmpTopology";
import { killInstance, startInstance, startInstanceBird, startInstanceNatlb, waitForNexthops, type RunningInstance } from "../lab/ecmpInstances";
import { startGapProbe, type GapProbeSummary } from "../lab/udpGapProbe";
import { startUdpEcho } from "../lab/udpEcho";
import { sleep } from "../lab/wait";

const UDP_PORT = 53;
const SERVICES = [{ port: UDP_PORT, protocol: "udp" }] as const;
const FLOWS = 24;
const INTERVAL_MS = 10;
const PROBE_MS = 6000;
const EVENT_AT_MS = 2000;

export interface GapStep {
  /** The flows whose longest gap exceeded 5 intervals: they crossed the change. */
  movedFlows: number;
  maxGapMs: number | null;
  medianGapMs: number | null;
  /** Flows that never answered again before the probe ended. */
  lostFlows: number;
}

export interface EcmpFailoverRound {
  killed: string;
  routeMs: number;
  failover: GapStep;
  rejoin: GapStep;
}

export interface EcmpFailoverResult {
  flows: number;
  intervalMs: number;
  rounds: EcmpFailoverRound[];
}

function gapStep(summary: GapProbeSummary): GapStep {
  const moved = summary.sockets.filter((s) => s.longestGapMs > 5 * INTERVAL_MS);
  const gaps = moved.map((s) => s.longestGapMs).sort((a, b) => a - b);
  return {
    movedFlows: moved.length,
    maxGapMs: gaps.length > 0 ? gaps[gaps.length - 1]! : null,
    medianGapMs: gaps.length > 0 ? gaps[Math.floor(gaps.length / 2)]! : null,
    lostFlows: moved.filter((s) => s.gapEndsAt >= summary.stoppedAt).length,
  };
}

async function probeAcross(lab: EcmpLab, portBase: number, event: () => Promise<void>): Promise<GapProbeSummary> {
  const probe = startGapProbe(lab, { host: lab.vip, port: UDP_PORT, sockets: FLOWS, intervalMs: INTERVAL_MS, durationMs: PROBE_MS, localPortBase: portBase, ns: lab.client.ns });
  await probe.tool.waitForEvent((e) => e.event === "started", 10_000, "the probe start");
  await sleep(EVENT_AT_MS);
  await event();
  return probe.summary();
}

export async function runEcmpFailover(rounds: number, log: (line: string) => void): Promise<EcmpFailoverResult> {
  const lab = await createEcmpLab({ instances: 3, reals: 3, offloads: true, prefix: "ecbn" });
  const instances: RunningInstance[] = lab.instances.map((instance) => ({ instance, natlb: undefined, bird: undefined }));
  try {
    await Promise.all(lab.reals.map((_, i) => startUdpEcho(lab, i + 1, UDP_PORT, { host: lab.vip, quiet: true })));
    for (const running of instances) await startInstance(lab, running, SERVICES);
    await waitForNexthops(lab, lab.vip, lab.instances);
    const result: EcmpFailoverResult = { flows: FLOWS, intervalMs: INTERVAL_MS, rounds: [] };
    for (let r = 0; r < rounds; r++) {
      const victim = instances[r % instances.length]!;
      const survivors = instances.filter((i) => i !== victim).map((i) => i.instance);
      let routeMs = NaN;
      const failover = await probeAcross(lab, 50_000 + r * 100, async () => {
        const killedAt = Date.now();
        await killInstance(victim);
        await waitForNexthops(lab, lab.vip, survivors, 20_000);
        routeMs = Date.now() - killedAt;
      });
      const rejoin = await probeAcross(lab, 50_050 + r * 100, async () => {
        await startInstanceNatlb(lab, victim, SERVICES);
        await startInstanceBird(lab, victim);
        await waitForNexthops(lab, lab.vip, lab.instances, 20_000);
      });
      const round = { killed: `g${victim.instance.index}`, routeMs, failover: gapStep(failover), rejoin: gapStep(rejoin) };
      log(`[ecmp] round ${r + 1}: ${JSON.stringify(round)}`);
      result.rounds.push(round);
    }
    return result;
  } finally {
    for (const { natlb } of instances) await natlb?.stop().catch(() => undefined);
    await lab.destroy();
  }
}

export function formatEcmpFailover(result: EcmpFailoverResult): string {
  const ms = (v: number | null) => (v === null ? "-" : `${v}`);
  const lines = [
    `ECMP failover gap: ${result.flows} UDP flows, one datagram each per ${result.intervalMs} ms; one of 3 instances killed (SIGKILL natlb + BIRD), then back`,
    "round  killed  route withdrawn ms  moved  max gap ms  median gap ms  lost | rejoin: moved  max gap ms  median gap ms  lost",
  ];
  result.rounds.forEach((r, i) => {
    lines.push(
      `${String(i + 1).padStart(5)}  ${r.killed.padEnd(6)}  ${String(r.routeMs).padStart(18)}  ${String(r.failover.movedFlows).padStart(5)}  ${ms(r.failover.maxGapMs).padStart(10)}  ${ms(r.failover.medianGapMs).padStart(13)}  ${String(r.failover.lostFlows).padStart(4)} | ` +
        `${String(r.rejoin.movedFlows).padStart(13)}  ${ms(r.rejoin.maxGapMs).padStart(10)}  ${ms(r.rejoin.medianGapMs).padStart(13)}  ${String(r.rejoin.lostFlows).padStart(4)}`,
    );
  });
  return lines.join("\n");
}

/** `natlb bench ecmp-failover ...` (bench/run.ts hands its arguments here). */
export async function ecmpFailoverMain(argv: readonly string[]): Promise<number> {
  let rounds = 3;
  let jsonPath: string | undefined;
  for (let i = 0; i < argv.length; i += 2) {
    const [arg, value] = [argv[i], argv[i + 1]];
    if (arg === "--rounds" && value !== undefined && /^\d+$/.test(value) && Number(value) >= 1 && Number(value) <= 20) rounds = Number(value);
    else if (arg === "--json" && value !== undefined) jsonPath = value;
    else {
      process.stderr.write(`bench ecmp-failover: unknown or bad argument "${arg ?? ""}": it takes --rounds 1..20 and --json <file>\n`);
      return 2;
    }
  }
  try {
    const result = await runEcmpFailover(rounds, (line) => process.stderr.write(`${line}\n`));
    process.stdout.write(`${formatEcmpFailover(result)}\n`);
    if (jsonPath) writeFileSync(jsonPath, `${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`bench ecmp-failover: ${(e as Error).message}\n`);
    return 1;
  }
}
