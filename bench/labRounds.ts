// One lab (offloads on = "gso", off = "mtu"; "modes": the direct-routing topology, offloads on): its
// servers, then R rounds; each round runs every variant once (order rotated by the round number), one
// at a time, set up -> check -> measure -> tear down -> verify the gateway is bare again.
import { blobSha256 } from "../lab/blobContent";
import { startBlobServer } from "../lab/blobServer";
import { readPeakRssKiB, runBulkDownload, type DownloadRunSummary } from "../lab/benchTools";
import { clientReceivedBytes, withDownloadProgress } from "../lab/downloadProgress";
import { IP_BIN } from "../lab/netns";
import { createLab, type Lab } from "../lab/topology";
import { withTimeout } from "../lab/wait";
import type { ConnTool } from "./connTool";
import { MODES_VARIANT_IDS, type LabKind, type ResolvedOptions } from "./options";
import { formatNumber } from "./stats";
import { VariantUnavailableError, type ActiveVariant, type BenchServices, type Variant, type VariantId } from "./variants";
import { assertGatewayClean } from "./variants/gatewayState";

export type MetricId =
  | "dl1Gbps"
  | "dl4Gbps"
  | "dl1CpuMachine"
  | "dl4CpuMachine"
  | "dl1CpuBalancer"
  | "dl4CpuBalancer"
  | "shortConnsPerSec"
  | "serialMs"
  | "peakRssMiB";

export interface Sample {
  lab: LabKind;
  round: number;
  variant: VariantId;
  metric: MetricId;
  value: number;
}

export interface DownloadRecord {
  conns: number;
  gbps: number;
  seconds: number;
  totalBytes: number;
  /** Whole-machine CPU seconds per GiB moved. */
  cpuMachineSPerGiB: number;
  /** The balancer process's CPU seconds per GiB (null for kernel paths). */
  cpuBalancerSPerGiB: number | null;
  /** Which real answered each connection. */
  reals: Array<string | null>;
}

/** What every variant's turn in a lab records (a round's run, a flood step). */
export interface VariantTurn {
  setUpMs: number | null;
  diagnostics: Record<string, unknown>;
  errors: string[];
  /** What the variant left in the gateway after tear-down (the lab stops then); null when clean. */
  leftovers: string | null;
  /** Why the variant cannot run in this lab (VariantUnavailableError at set-up), or null. */
  unavailable: string | null;
}

/** A turn before it runs. */
export function newVariantTurn(): VariantTurn {
  return { setUpMs: null, diagnostics: {}, errors: [], leftovers: null, unavailable: null };
}

/** Everything one variant did in one round (kept in the JSON report). */
export interface VariantRun extends VariantTurn {
  lab: LabKind;
  round: number;
  /** Place in this round's order (0 = first). */
  position: number;
  variant: VariantId;
  clientIp: string;
  downloads: DownloadRecord[];
  shortConns: { perSecond: number; completed: number; failed: number; errors: Record<string, number> } | null;
  serial: { medianMs: number; p90Ms: number; minMs: number; maxMs: number; completed: number; failed: number } | null;
  peakRssKiB: number | null;
}

/** How a lab's run ended, in its result. */
export interface LabOutcome {
  errors: string[];
  /** Why the run stopped before its plan was done, or null. */
  stoppedEarly: string | null;
}

export interface LabRunResult extends LabOutcome {
  lab: LabKind;
  labId: string | null;
  /** Variants that could not run in this lab, and why (left out of its later rounds). */
  unavailable: Partial<Record<VariantId, string>>;
  samples: Sample[];
  runs: VariantRun[];
}

export const SERVICES_PORTS = { bulk: { vport: 80, realPort: 8080 }, small: { vport: 81, realPort: 8081 } } as const;
/** The modes lab's services: a direct-routing real gets the client's frame unchanged, so VIP port = real port. */
export const MODES_SERVICES_PORTS = { bulk: { vport: 8080, realPort: 8080 }, small: { vport: 8081, realPort: 8081 } } as const;
export const BLOB_SEED = "natlb-bench";
const GiB = 1024 * 1024 * 1024;
/** Real servers in every throughput lab. */
export const REALS = 3;

/**
 * Each variant's client source address: a TCP timestamp offset depends on (saddr, daddr) and real
 * servers keep TIME_WAIT, so a client ip:port that reached a real by another path gets its SYN
 * dropped (PAWS, docs/development.md, "Traps already met"). Own address per variant, own port range per download.
 */
export function clientIpFor(variantIndex: number): string {
  return `198.18.0.${21 + variantIndex}`;
}

/** Gives the lab's client the source address of every variant (clientIpFor). */
export async function addClientAddresses(lab: Lab, variants: readonly Variant[], variantIndex: (id: VariantId) => number): Promise<void> {
  for (const v of variants) {
    await lab.exec(lab.client.ns, IP_BIN, ["addr", "add", `${clientIpFor(variantIndex(v.id))}/24`, "dev", lab.client.ifname]);
  }
}

/** How long the lab's servers run: past the bench's own time bound, so none exits under a late step. */
export function labServerSeconds(o: ResolvedOptions): number {
  return o.maxMinutes * 60 + 600;
}

/**
 * Runs `body` in `lab`, then destroys the lab. An error stops this lab only: what it measured so far
 * is kept, and `outcome` says why it stopped.
 */
export async function runThenDestroy(lab: Lab, name: string, outcome: LabOutcome, log: (line: string) => void, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    const message = (e as Error).message;
    outcome.errors.push(`${name} lab aborted: ${message}`);
    outcome.stoppedEarly = `aborted: ${firstLine(message)}`;
    log(`lab aborted: ${message}`);
  } finally {
    log(`destroying lab ${lab.id}`);
    await lab.destroy();
  }
}

/**
 * One variant's turn in a lab: set it up (timed), `measure` with it, take its diagnostics (bounded: a
 * jammed variant must not hold up the bench), tear it down, and check that the gateway is bare again.
 * What fails lands in `turn.errors`; what the variant left behind in `turn.leftovers`, named by
 * `where` (leftovers would change what the next variant measures: the caller stops the lab).
 */
export async function runVariantTurn(
  lab: Lab,
  variant: Variant,
  services: BenchServices,
  turn: VariantTurn,
  where: string,
  say: (text: string) => void,
  measure: (active: ActiveVariant) => Promise<void>,
): Promise<void> {
  const t0 = Date.now();
  let active: ActiveVariant | undefined;
  try {
    active = await variant.setUp(lab, services);
    turn.setUpMs = Date.now() - t0;
  } catch (e) {
    if (e instanceof VariantUnavailableError) {
      turn.unavailable = e.message;
      say(e.message);
    } else {
      turn.errors.push(`set-up failed: ${(e as Error).message}`);
      say(`SET-UP FAILED: ${firstLine((e as Error).message)}`);
    }
  }
  if (active !== undefined) {
    try {
      await measure(active);
    } catch (e) {
      turn.errors.push((e as Error).message);
      say(`FAILED: ${firstLine((e as Error).message)}`);
    }
    turn.diagnostics = await withTimeout(active.diagnostics(), 15_000, "the variant's diagnostics").catch((e: unknown) => ({ error: (e as Error).message }));
    try {
      await active.tearDown();
    } catch (e) {
      turn.errors.push(`tear-down: ${(e as Error).message}`);
    }
  }
  try {
    await assertGatewayClean(lab, services.vip, `${variant.id} (${where})`);
  } catch (e) {
    turn.leftovers = (e as Error).message;
  }
}

function firstLine(message: string): string {
  return message.split("\n")[0] ?? "";
}

/** Hands out local port ranges that are never reused within a run. */
export class PortCursor {
  private next = 10_000;
  take(n: number): number {
    if (this.next + n > 32_000) throw new Error("benchmark ran out of client port ranges (10000..32000)");
    const p = this.next;
    this.next += n;
    return p;
  }
}

export interface LabRunContext {
  options: ResolvedOptions;
  variants: Variant[];
  /** Index of each variant in the full list (stable client address even when a subset runs). */
  variantIndex: (id: VariantId) => number;
  deadline: number;
  clockTicksPerSecond: number;
  ports: PortCursor;
  /** Short-connection server and client (C when a compiler exists). */
  connTool: ConnTool;
}

function downloadTimeoutMs(bytes: number): number {
  // Generous: 30 s plus the time at 0.25 Gbit/s. A path that slow has failed anyway.
  return Math.round(30_000 + ((bytes * 8) / 0.25e9) * 1000);
}

/** Whether `variant` runs in lab `kind`: the modes lab runs MODES_VARIANT_IDS only, the others what `labs` allows. */
export function variantRunsIn(variant: Pick<Variant, "id" | "labs">, kind: LabKind): boolean {
  if (kind === "modes") return MODES_VARIANT_IDS.includes(variant.id);
  return variant.labs === undefined || variant.labs.includes(kind);
}

/** How each throughput lab is built. */
const LAB_SHAPES: Record<LabKind, { offloads: boolean; directRouting: boolean; prefix: string; describe: string }> = {
  gso: { offloads: true, directRouting: false, prefix: "nb", describe: "offloads on: ~64 KB GSO frames" },
  mtu: { offloads: false, directRouting: false, prefix: "nb", describe: "offloads off: MTU-sized frames" },
  // The balancer arm: natlb runs nat and fullnat only two-armed (one-armed, an interface would be both
  // client and backend); every balancer of the lab gets the VIPs' traffic over it, dr included.
  modes: { offloads: true, directRouting: true, prefix: "bm", describe: "direct-routing topology, balancer two-armed (the router's VIP route on its own link), offloads on" },
};

export async function runLab(kind: LabKind, ctx: LabRunContext): Promise<LabRunResult> {
  const { options: o } = ctx;
  const variants = ctx.variants.filter((v) => variantRunsIn(v, kind));
  const log = (line: string): void => o.log(`[${kind}] ${line}`);
  const result: LabRunResult = { lab: kind, labId: null, unavailable: {}, samples: [], runs: [], errors: [], stoppedEarly: null };
  const shape = LAB_SHAPES[kind];
  log(`creating lab (${shape.describe}, ${REALS} reals, prefix ${shape.prefix})`);
  const lab = await createLab({ reals: REALS, offloads: shape.offloads, directRouting: shape.directRouting, balancerArm: shape.directRouting, prefix: shape.prefix });
  result.labId = lab.id;
  await runThenDestroy(lab, kind, result, log, async () => {
    await prepareLab(lab, ctx, log);
    const ports = kind === "modes" ? MODES_SERVICES_PORTS : SERVICES_PORTS;
    const services: BenchServices = { vip: lab.vip, ...ports, reals: lab.reals.map((r) => r.ip) };
    for (let round = 0; round < o.rounds; round++) {
      if (Date.now() > ctx.deadline) {
        result.stoppedEarly = `time bound of ${o.maxMinutes} min reached before round ${round + 1} of ${o.rounds}`;
        log(result.stoppedEarly);
        break;
      }
      const live = variants.filter((v) => result.unavailable[v.id] === undefined);
      const order = live.map((_, i) => live[(i + round) % live.length] as Variant);
      log(`round ${round + 1}/${o.rounds}: ${order.map((v) => v.id).join(" -> ")}`);
      for (const [position, variant] of order.entries()) {
        const run = await runVariant(lab, kind, round, position, variant, services, ctx, log);
        result.runs.push(run);
        result.samples.push(...samplesOf(run));
        for (const e of run.errors) result.errors.push(`${kind} round ${round + 1} ${variant.id}: ${e}`);
        if (run.unavailable !== null) result.unavailable[variant.id] = run.unavailable;
        if (run.leftovers !== null) throw new Error(run.leftovers);
      }
    }
  });
  return result;
}

async function prepareLab(lab: Lab, ctx: LabRunContext, log: (line: string) => void): Promise<void> {
  const o = ctx.options;
  await addClientAddresses(lab, ctx.variants, ctx.variantIndex);
  const cacheMb = Math.ceil(o.bulkBytes / (1024 * 1024)) + 8;
  const maxSeconds = labServerSeconds(o);
  for (let i = 1; i <= REALS; i++) {
    await startBlobServer(lab, i, SERVICES_PORTS.bulk.realPort, { cacheMb, maxSeconds });
    await ctx.connTool.startServer(lab, i, SERVICES_PORTS.small.realPort, maxSeconds);
  }
  // Fill every blob server's keystream cache, so no run pays for generating content.
  log(`filling the blob servers' caches (${REALS} x ${o.bulkBytes / (1024 * 1024)} MiB, direct)`);
  const fill = await runBulkDownload(lab, {
    targets: lab.reals.map((r) => ({ ip: r.ip, port: SERVICES_PORTS.bulk.realPort })),
    path: blobPath(o.bulkBytes),
    conns: REALS,
    timeoutMs: downloadTimeoutMs(o.bulkBytes * REALS),
  });
  if (fill.failed > 0) throw new Error(`filling the blob caches failed: ${firstError(fill)}`);
}

function blobPath(bytes: number): string {
  return `/blob?bytes=${bytes}&seed=${BLOB_SEED}`;
}

function firstError(s: DownloadRunSummary): string {
  const r = s.results.find((x) => x.error !== undefined);
  return r === undefined ? "none" : `${r.target} from port ${r.localPort}: ${r.error}`;
}

async function runVariant(
  lab: Lab,
  kind: LabKind,
  round: number,
  position: number,
  variant: Variant,
  services: BenchServices,
  ctx: LabRunContext,
  log: (line: string) => void,
): Promise<VariantRun> {
  const clientIp = clientIpFor(ctx.variantIndex(variant.id));
  const run: VariantRun = {
    lab: kind,
    round,
    position,
    variant: variant.id,
    clientIp,
    downloads: [],
    shortConns: null,
    serial: null,
    peakRssKiB: null,
    ...newVariantTurn(),
  };
  const say = (text: string): void => log(`r${round + 1} ${variant.id.padEnd(9)} ${text}`);
  await runVariantTurn(lab, variant, services, run, `round ${round + 1}`, say, async (active) => {
    try {
      await measure(lab, active, run, ctx, say);
    } finally {
      if (active.pid !== null) run.peakRssKiB = readPeakRssKiB(active.pid);
    }
  });
  return run;
}

async function measure(lab: Lab, active: ActiveVariant, run: VariantRun, ctx: LabRunContext, say: (text: string) => void): Promise<void> {
  const o = ctx.options;
  // 1. Does the path work, and is the content intact? 3 connections, 1 MiB each, sha256 checked.
  const checkBytes = 1024 * 1024;
  const check = await runBulkDownload(lab, {
    targets: active.bulkTargets,
    path: blobPath(checkBytes),
    conns: 3,
    localAddress: run.clientIp,
    localPortBase: ctx.ports.take(3),
    timeoutMs: 20_000,
    sha: true,
  });
  const want = blobSha256(BLOB_SEED, checkBytes);
  const bad = check.results.filter((r) => r.error !== undefined || r.sha256 !== want);
  if (bad.length > 0) {
    const r = bad[0];
    throw new Error(`check download failed (${bad.length}/3): ${r?.error ?? `sha256 ${r?.sha256} != ${want}`}`);
  }
  const smallCheck = await ctx.connTool.run(lab, { targets: active.smallTargets, concurrency: 4, count: 24, durationMs: 10_000, localAddress: run.clientIp });
  if (smallCheck.failed > 0 || smallCheck.completed !== 24) {
    throw new Error(`check short connections failed: ${smallCheck.completed}/24 ok, errors ${JSON.stringify(smallCheck.errors)}`);
  }

  // 2. Large downloads, 1 and 4 connections, bulkBytes in total each.
  for (const conns of [1, 4]) {
    const bytesPerConn = o.bulkBytes / conns;
    // The progress line samples once a second on a terminal (every 5 s otherwise): an `ip` call and,
    // for natlb, one status request, a small cost inside the CPU being measured (--no-progress: none).
    const bulkService = active.bulkTargets[0];
    const progress = {
      receivedBytes: clientReceivedBytes(lab),
      label: `${run.lab} r${run.round + 1} ${run.variant} ${conns} conn(s)`,
      bytesTotal: o.bulkBytes,
      enabled: o.progress,
      ...(active.controlSocket !== undefined && bulkService !== undefined
        ? { controlSocket: active.controlSocket, service: { vip: bulkService.ip, port: bulkService.port } }
        : {}),
    };
    const s = await withDownloadProgress(progress, () =>
      runBulkDownload(lab, {
        targets: active.bulkTargets,
        path: blobPath(bytesPerConn),
        conns,
        localAddress: run.clientIp,
        localPortBase: ctx.ports.take(conns),
        timeoutMs: downloadTimeoutMs(o.bulkBytes),
        ...(active.pid !== null ? { watchPid: active.pid } : {}),
      }),
    );
    if (s.failed > 0) {
      run.errors.push(`download ${conns} conn(s): ${s.failed} failed: ${firstError(s)}`);
      say(`download ${conns} conn(s) FAILED: ${firstError(s)}`);
      continue;
    }
    const gib = s.totalBytes / GiB;
    const record: DownloadRecord = {
      conns,
      gbps: s.gbps,
      seconds: s.seconds,
      totalBytes: s.totalBytes,
      cpuMachineSPerGiB: s.cpu.machineBusy / ctx.clockTicksPerSecond / gib,
      cpuBalancerSPerGiB: s.cpu.watched === null ? null : s.cpu.watched / ctx.clockTicksPerSecond / gib,
      reals: s.results.map((r) => r.real),
    };
    run.downloads.push(record);
    const balancerCpu = record.cpuBalancerSPerGiB === null ? "" : `, balancer ${formatNumber(record.cpuBalancerSPerGiB)} CPU-s/GiB`;
    say(`download ${conns} conn(s): ${formatNumber(s.gbps)} Gbit/s, machine ${formatNumber(record.cpuMachineSPerGiB)} CPU-s/GiB${balancerCpu}`);
  }

  // 3. Short connections: 32 at a time for a fixed time (count-bounded too).
  const sc = await ctx.connTool.run(lab, {
    targets: active.smallTargets,
    concurrency: o.shortConnsConcurrency,
    count: 1_000_000,
    durationMs: o.shortConnsMs,
    localAddress: run.clientIp,
    connTimeoutMs: 2000,
  });
  run.shortConns = { perSecond: sc.perSecond, completed: sc.completed, failed: sc.failed, errors: sc.errors };
  if (sc.failed > 0) run.errors.push(`short connections: ${sc.failed} of ${sc.completed + sc.failed} failed ${JSON.stringify(sc.errors)}`);
  say(`short conns (${o.shortConnsConcurrency} conc.): ${sc.perSecond}/s${sc.failed > 0 ? ` (${sc.failed} failed)` : ""}`);

  // 4. One connection at a time: the time of a whole connection (connect, request, response, close).
  const serial = await ctx.connTool.run(lab, {
    targets: active.smallTargets,
    concurrency: 1,
    count: o.serialCount,
    durationMs: 30_000,
    localAddress: run.clientIp,
    connTimeoutMs: 2000,
  });
  if (serial.latencyMs !== null) {
    run.serial = {
      medianMs: serial.latencyMs.median,
      p90Ms: serial.latencyMs.p90,
      minMs: serial.latencyMs.min,
      maxMs: serial.latencyMs.max,
      completed: serial.completed,
      failed: serial.failed,
    };
    say(`serial conn: median ${serial.latencyMs.median} ms (p90 ${serial.latencyMs.p90}, ${serial.completed} conns${serial.failed > 0 ? `, ${serial.failed} failed` : ""})`);
  }
  if (serial.failed > 0) run.errors.push(`serial connections: ${serial.failed} failed ${JSON.stringify(serial.errors)}`);
}

function samplesOf(run: VariantRun): Sample[] {
  const out: Sample[] = [];
  const add = (metric: MetricId, value: number | null | undefined): void => {
    if (value !== null && value !== undefined && Number.isFinite(value)) out.push({ lab: run.lab, round: run.round, variant: run.variant, metric, value });
  };
  for (const d of run.downloads) {
    const p = d.conns === 1 ? "dl1" : "dl4";
    add(`${p}Gbps`, d.gbps);
    add(`${p}CpuMachine`, d.cpuMachineSPerGiB);
    add(`${p}CpuBalancer`, d.cpuBalancerSPerGiB);
  }
  if (run.shortConns !== null) add("shortConnsPerSec", run.shortConns.perSecond);
  if (run.serial !== null) add("serialMs", run.serial.medianMs);
  if (run.peakRssKiB !== null) add("peakRssMiB", run.peakRssKiB / 1024);
  return out;
}
