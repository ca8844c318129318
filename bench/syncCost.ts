// The flow sync's cost (issue 13's bench): the sender's CPU per 10 k new flows/s and the bytes on the
// wire per flow. Two natlb daemons in the sync pair lab (lab/syncPairTopology.ts); the C connection
// load (bench/connTool.ts) makes short connections through A as fast as it can, once with A alone (no
// sync) and once with A syncing to B. Measured from /proc: A's whole process and its sync thread
// ("natlb-sync", native/sync/flow_sync.h), B's sync thread (the receiver applying); from A's and B's
// status: new flows, the sync's datagrams and bytes. A case of its own, not in the default run:
//   node dist/bench/run.js sync-cost [--seconds 5] [--concurrency 16] [--rounds 2] [--json out.json]
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startBalancer, type BalancerProcess } from "../lab/balancerProcess";
import { createSyncPairLab, PEER_GATEWAY_BACKEND_IP, type SyncPairLab } from "../lab/syncPairTopology";
import { prepareConnTool, type ConnTool } from "./connTool";

const SYNC_PORT = 8848;
const SMALL_PORT = 8081;
const SERVICE_PORT = 81;
/** Ethernet (14), IPv4 (20) and UDP (8) headers around each datagram's payload. */
const WIRE_OVERHEAD_BYTES = 42;
const SYNC_THREAD = "natlb-sync";

export interface SyncCostOptions {
  seconds: number;
  concurrency: number;
  rounds: number;
  log: (line: string) => void;
}

interface Sample {
  flows: number;
  seconds: number;
  processCpuS: number;
  syncThreadCpuS?: number;
  receiverThreadCpuS?: number;
  syncPayloadBytes?: number;
  syncDatagrams?: number;
  applied?: number;
}

export interface SyncCostResult {
  options: Omit<SyncCostOptions, "log">;
  connTool: "c" | "node";
  withoutSync: Sample[];
  withSync: Sample[];
  /** CPU seconds per second at 10 k new flows/s (1 = one core), medians over the rounds. */
  perTenThousandFlowsPerSecond: { processWithout: number; processWith: number; senderSyncThread: number; receiverSyncThread: number };
  bytesPerFlow: { payload: number; wire: number };
  recordsPerDatagram: number;
}

const CLOCK_TICKS = 100;  // USER_HZ: /proc's utime and stime unit on Linux

function cpuSecondsOf(statPath: string): number {
  const stat = readFileSync(statPath, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;  // utime, stime
}

function threadCpuSeconds(pid: number, name: string): number | undefined {
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    if (readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim() === name) return cpuSecondsOf(`/proc/${pid}/task/${tid}/stat`);
  }
  return undefined;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : (sorted[(sorted.length - 1) >> 1]! + sorted[sorted.length >> 1]!) / 2;
};

async function measure(pair: SyncPairLab, tool: ConnTool, o: SyncCostOptions, keyFile: string, withSync: boolean): Promise<Sample> {
  const { lab } = pair;
  const service = { vip: lab.vip, port: SERVICE_PORT, protocol: "tcp", scheduler: "rr", reals: lab.reals.map((r) => ({ ip: r.ip, port: SMALL_PORT })) };
  const syncOf = (listen: string, peer: string) => (withSync ? { sync: { listen: `${listen}:${SYNC_PORT}`, peers: [`${peer}:${SYNC_PORT}`], keyFile } } : {});
  let a: BalancerProcess | undefined;
  let b: BalancerProcess | undefined;
  try {
    a = await startBalancer(pair.fromA, { services: [service], kernelFastPath: false, ...syncOf(lab.gateway.backendIp, PEER_GATEWAY_BACKEND_IP) });
    if (withSync) b = await startBalancer(pair.fromPeer, { services: [service], kernelFastPath: false, ...syncOf(PEER_GATEWAY_BACKEND_IP, lab.gateway.backendIp) });
    await new Promise((resolve) => setTimeout(resolve, 1000));  // snapshots asked and answered
    const pidA = a.child.pid!, pidB = b?.child.pid;
    const before = {
      process: cpuSecondsOf(`/proc/${pidA}/stat`), thread: threadCpuSeconds(pidA, SYNC_THREAD),
      receiver: pidB ? threadCpuSeconds(pidB, SYNC_THREAD) : undefined,
      status: await a.status(), statusB: await b?.status(),
    };
    const load = await tool.run(lab, { targets: [{ ip: lab.vip, port: SERVICE_PORT }], concurrency: o.concurrency, count: 10_000_000, durationMs: o.seconds * 1000 });
    await new Promise((resolve) => setTimeout(resolve, 200));  // the last batch flushed (every 5 ms) and applied
    const after = {
      process: cpuSecondsOf(`/proc/${pidA}/stat`), thread: threadCpuSeconds(pidA, SYNC_THREAD),
      receiver: pidB ? threadCpuSeconds(pidB, SYNC_THREAD) : undefined,
      status: await a.status(), statusB: await b?.status(),
    };
    const flows = after.status.counters.newFlows - before.status.counters.newFlows;
    if (load.failed > 0) o.log(`  ${load.failed} connection(s) failed: ${JSON.stringify(load.errors)}`);
    const sample: Sample = { flows, seconds: load.seconds, processCpuS: after.process - before.process };
    if (withSync) {
      const sent = (s: typeof after.status, name: string) => s.sync?.counters[name] ?? 0;
      sample.syncThreadCpuS = (after.thread ?? NaN) - (before.thread ?? NaN);
      sample.receiverThreadCpuS = (after.receiver ?? NaN) - (before.receiver ?? NaN);
      sample.syncPayloadBytes = sent(after.status, "sentBytes") - sent(before.status, "sentBytes");
      sample.syncDatagrams = sent(after.status, "sentDatagrams") - sent(before.status, "sentDatagrams");
      sample.applied = (after.statusB?.sync?.counters.appliedInserted ?? 0) + (after.statusB?.sync?.counters.appliedUpdated ?? 0) -
        (before.statusB?.sync?.counters.appliedInserted ?? 0) - (before.statusB?.sync?.counters.appliedUpdated ?? 0);
    }
    o.log(`  ${withSync ? "with sync   " : "without sync"}: ${flows} flows in ${load.seconds.toFixed(1)} s (${Math.round(flows / load.seconds)}/s), ` +
      `natlb A ${sample.processCpuS.toFixed(2)} CPU-s` + (withSync ? `, its sync thread ${sample.syncThreadCpuS!.toFixed(2)} CPU-s, ` +
      `${sample.syncDatagrams} datagrams / ${sample.syncPayloadBytes} B; B applied ${sample.applied} in ${sample.receiverThreadCpuS!.toFixed(2)} CPU-s` : ""));
    return sample;
  } finally {
    await b?.stop().catch(() => undefined);
    await a?.stop().catch(() => undefined);
  }
}

export async function runSyncCost(o: SyncCostOptions): Promise<SyncCostResult> {
  const tool = await prepareConnTool(o.log);
  const pair = await createSyncPairLab({ reals: 3, offloads: true, prefix: "nb" });
  const keyDir = mkdtempSync(join(tmpdir(), "natlb-bench-sync-"));
  const keyFile = join(keyDir, "sync.key");
  writeFileSync(keyFile, randomBytes(32).toString("hex"), { mode: 0o600 });
  const servers: { stop(): Promise<void> }[] = [];
  try {
    for (let i = 1; i <= pair.lab.reals.length; i++) servers.push(await tool.startServer(pair.lab, i, SMALL_PORT, 3600));
    const withoutSync: Sample[] = [];
    const withSync: Sample[] = [];
    for (let round = 1; round <= o.rounds; round++) {
      o.log(`round ${round}/${o.rounds}`);
      // Alternating order: a slow phase of the host hits both alike.
      for (const sync of round % 2 === 1 ? [false, true] : [true, false]) (sync ? withSync : withoutSync).push(await measure(pair, tool, o, keyFile, sync));
    }
    const per10k = (samples: Sample[], cpu: (s: Sample) => number) => median(samples.map((s) => (cpu(s) / s.flows) * 10_000));
    const payload = median(withSync.map((s) => s.syncPayloadBytes! / s.flows));
    const datagramsPerFlow = median(withSync.map((s) => s.syncDatagrams! / s.flows));
    const records = median(withSync.map((s) => s.syncPayloadBytes! > 0 ? (s.syncPayloadBytes! - s.syncDatagrams! * 60) / 32 / s.syncDatagrams! : 0));
    return {
      options: { seconds: o.seconds, concurrency: o.concurrency, rounds: o.rounds },
      connTool: tool.kind,
      withoutSync,
      withSync,
      perTenThousandFlowsPerSecond: {
        processWithout: per10k(withoutSync, (s) => s.processCpuS),
        processWith: per10k(withSync, (s) => s.processCpuS),
        senderSyncThread: per10k(withSync, (s) => s.syncThreadCpuS!),
        receiverSyncThread: per10k(withSync, (s) => s.receiverThreadCpuS!),
      },
      bytesPerFlow: { payload, wire: payload + datagramsPerFlow * WIRE_OVERHEAD_BYTES },
      recordsPerDatagram: records,
    };
  } finally {
    for (const server of servers) await server.stop().catch(() => undefined);
    await pair.destroy();
    rmSync(keyDir, { recursive: true, force: true });
  }
}

export function formatSyncCost(r: SyncCostResult): string {
  const p = r.perTenThousandFlowsPerSecond;
  const cores = (v: number) => `${v.toFixed(3)} core`;
  return [
    `flow sync cost (${r.options.rounds} round(s) of ${r.options.seconds} s, ${r.options.concurrency} connections in flight, ${r.connTool} load tool; medians)`,
    `  per 10 k new flows/s: natlb A ${cores(p.processWithout)} without sync, ${cores(p.processWith)} with; ` +
      `its sync thread ${cores(p.senderSyncThread)}; B's sync thread (applying) ${cores(p.receiverSyncThread)}`,
    `  per flow on the wire: ${r.bytesPerFlow.payload.toFixed(1)} B of UDP payload, ${r.bytesPerFlow.wire.toFixed(1)} B with Ethernet/IP/UDP headers ` +
      `(${r.recordsPerDatagram.toFixed(1)} records per datagram)`,
  ].join("\n");
}

function parseArgs(argv: readonly string[]): { options: SyncCostOptions; jsonPath: string | undefined } {
  const options: SyncCostOptions = { seconds: 5, concurrency: 16, rounds: 2, log: (line) => process.stderr.write(`${line}\n`) };
  let jsonPath: string | undefined;
  const bounded = (name: string, text: string | undefined, min: number, max: number): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) throw new Error(`${name} takes an integer ${min}..${max}, got ${String(text)}`);
    return value;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--seconds") options.seconds = bounded(arg, argv[++i], 1, 60);
    else if (arg === "--concurrency") options.concurrency = bounded(arg, argv[++i], 1, 256);
    else if (arg === "--rounds") options.rounds = bounded(arg, argv[++i], 1, 10);
    else if (arg === "--json") jsonPath = argv[++i];
    else throw new Error(`unknown option ${arg} (sync-cost takes --seconds, --concurrency, --rounds, --json)`);
  }
  return { options, jsonPath };
}

export async function syncCostMain(argv: readonly string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`bench sync-cost: ${(e as Error).message}\n`);
    return 2;
  }
  try {
    const result = await runSyncCost(parsed.options);
    process.stdout.write(`${formatSyncCost(result)}\n`);
    if (parsed.jsonPath) writeFileSync(parsed.jsonPath, `${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`bench sync-cost: ${(e as Error).message}\n`);
    return 1;
  }
}
