// The control-plane case of issue #12: 1,000 services x 16 reals with TCP health checks and 1 M flows
// in the map. It measures `status` latency, the time from a health change to the new selection table
// in the data plane, and the event loop's lag while the checks run. Not a network-speed bench: no
// traffic goes through natlb, so it may run beside other work (the numbers then carry that noise).
//
// `natlb bench control-plane [--services N] [--reals N] [--flows N] [--interval-ms MS] [--seconds S] [--json FILE]`
// (as root). The outer part builds a lab (lab/topology.ts) and runs this file again inside the gateway
// namespace with --inside: there a Balancer runs in-process (so the event loop measured is natlb's),
// the reals' health-check listeners run in the real namespaces, and flows go into the map through
// the flow table's own insert (FlowTableForTests), as bench/flowLookup.cc does natively.
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import pino from "pino";
import { spawnIn } from "../lab/netns";
import { stopProcesses } from "../lab/processes";
import { createLab, type Lab } from "../lab/topology";
import { Balancer } from "../src/balancer";
import { parseConfig } from "../src/config";
import type { FlowMap } from "../src/flows/flowMap";
import { loadNative } from "../src/native";

/** The event-loop sampler's interval (ms); a sample of exactly this long means no lag. */
const LAG_RESOLUTION_MS = 10;
/** A sample (ns) as lag (ms): how much later than its interval the sampler ran. */
const lagOf = (sampleNs: number): number => Math.max(0, sampleNs / 1e6 - LAG_RESOLUTION_MS);

export interface ControlPlaneOptions {
  services: number;
  realsPerService: number;
  flows: number;
  /** Health-check interval of every service but the first (the one whose real is taken down and up). */
  intervalMs: number;
  /** Seconds of steady health checking during which the event loop's lag is recorded. */
  seconds: number;
  /** Status calls timed. */
  statusCalls: number;
  /** Down/up cycles of the first service's last real. */
  cycles: number;
}

export const DEFAULT_CONTROL_PLANE_OPTIONS: ControlPlaneOptions = {
  services: 1000, realsPerService: 16, flows: 1_000_000, intervalMs: 10_000, seconds: 20, statusCalls: 300, cycles: 5,
};

interface Percentiles {
  min: number;
  median: number;
  p99: number;
  max: number;
}

export interface ControlPlaneResult {
  options: ControlPlaneOptions;
  /** What the data plane's per-real counters sum to after the fill (must equal the flows inserted). */
  countedFlows: number;
  fillSeconds: number;
  startSeconds: number;
  /** Reals up once the checks had run a while (all of them, unless a listener failed). */
  realsUp: number;
  /** Health changes from the start until the measurements began (the first burst of checks). */
  changesBeforeMeasuring: number;
  statusMs: Percentiles;
  /** The check that saw the real go (or come back) to the engine's new snapshot, ms. */
  healthChangeToTableMs: Percentiles;
  /** The listener stopped (or started) to the new snapshot: includes the check interval, ms. */
  listenerToTableMs: Percentiles;
  /** A real that every service shares goes down: each service's change to its table, ms. */
  sharedRealChangeToTableMs: Percentiles & { changes: number };
  eventLoopLagMs: Percentiles & { mean: number };
  /** CPU the whole natlb process used while the checks ran (all threads), in percent of one core. */
  steadyCpuPercent: number;
  healthChecksPerSecond: number;
  load: number[];
  goalMs: number;
}

const GOAL_MS = 50;
const FIRST_REAL_PORT = 9000;
const TOGGLED_PORT = 9100;

function percentiles(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { min: sorted[0] ?? NaN, median: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? NaN };
}

// ---- inside the gateway namespace ---------------------------------------------------------------

interface InsideArgs {
  options: ControlPlaneOptions;
  vip: string;
  reals: Array<{ ns: string; ip: string }>;
}

/** A TCP listener in a real's namespace that accepts and closes: what a health check needs. */
const LISTENER = `
const net = require("node:net");
const ports = process.argv.slice(1).map(Number);
let ready = 0;
for (const port of ports) net.createServer((s) => s.destroy()).listen(port, "0.0.0.0", 4096, () => { if (++ready === ports.length) console.log("ready"); });
`;

async function startListener(ns: string, ports: number[]) {
  const child = spawnIn(ns, process.execPath, ["-e", LISTENER, ...ports.map(String)], { stdio: ["ignore", "pipe", "inherit"] });
  const [line] = (await Promise.race([once(child.stdout!, "data"), once(child, "exit")])) as [Buffer | number];
  if (!Buffer.isBuffer(line) || !line.toString().includes("ready")) throw new Error(`the listener in ${ns} did not start`);
  return child;
}

function configFor(args: InsideArgs) {
  const { options, vip, reals } = args;
  return {
    flowCapacity: Math.max(1024, Math.ceil(options.flows * 1.1)),
    kernelFastPath: false,
    services: Array.from({ length: options.services }, (_, s) => ({
      vip,
      port: 10_000 + s,
      protocol: "tcp",
      scheduler: "mh",
      // fall 3: the monitor starts every check at once, and a timeout in that first burst must not take a
      // real down (a refused connection still does at once).
      healthCheck: s === 0
        ? { type: "tcp", intervalMs: 200, timeoutMs: 1000, rise: 1, fall: 1 }
        : { type: "tcp", intervalMs: options.intervalMs, timeoutMs: 3000, rise: 1, fall: 3 },
      reals: Array.from({ length: options.realsPerService }, (_, r) => {
        const real = reals[r % reals.length]!;
        // The first service's last real is its own: taking it down changes one service.
        if (s === 0 && r === options.realsPerService - 1) return { ip: reals[0]!.ip, port: TOGGLED_PORT };
        return { ip: real.ip, port: FIRST_REAL_PORT + r };
      }),
    })),
  };
}

/** Fills the map through the flow table's insert: established, assured flows over every real. */
function fill(map: FlowMap, args: InsideArgs, realIdCount: number): void {
  const native = loadNative();
  const table = new native.FlowTableForTests(map.bytes);
  const { options, vip, reals } = args;
  const now = native.monotonicMs();
  for (let i = 0; i < options.flows; i++) {
    const realId = i % realIdCount;
    const service = Math.floor(realId / options.realsPerService);
    const r = realId % options.realsPerService;
    const ref = table.insert(
      {
        protocol: "tcp", clientIp: `198.19.${(i >>> 16) & 0xff}.${(i >>> 8) & 0xff}`, clientPort: 1024 + (i & 0xff), vip, vport: 10_000 + service,
        realIp: reals[r % reals.length]!.ip, realPort: FIRST_REAL_PORT + r, realId,
      },
      now,
    );
    if (ref === 0) throw new Error(`the flow map refused flow ${i}`);
    table.assure(ref);
  }
}

async function inside(args: InsideArgs): Promise<ControlPlaneResult> {
  const { options } = args;
  const progress = (line: string) => process.stderr.write(`control plane: ${line}\n`);
  // Each health change as the balancer logs it (in its onHealthChange, before the change queue), with
  // the data plane's snapshot number then: the change is in the data plane once that number moves on.
  const changes: Array<{ at: number; generation: number }> = [];
  let running: Balancer | undefined;
  const logger = pino({ level: "warn" }, {
    write(line: string) {
      if (line.includes('"real server health changed"')) changes.push({ at: performance.now(), generation: running?.dataPlaneGeneration() ?? 0 });
    },
  });
  const listeners = [];
  try {
    // Every real namespace answers on the reals' ports but the first, which has a listener of its own:
    // stopping it takes real 0 of every service down at once.
    for (const real of args.reals) {
      listeners.push(await startListener(real.ns, Array.from({ length: options.realsPerService - 1 }, (_, r) => FIRST_REAL_PORT + 1 + r)));
    }
    const shared = await startListener(args.reals[0]!.ns, [FIRST_REAL_PORT]);
    listeners.push(shared);
    let toggled = await startListener(args.reals[0]!.ns, [TOGGLED_PORT]);
    const started = performance.now();
    const balancer = await Balancer.start(parseConfig(configFor(args)), { kernelSetup: false, logger });
    running = balancer;
    const startSeconds = (performance.now() - started) / 1000;
    progress(`natlb started in ${startSeconds.toFixed(1)} s; filling the flow map`);
    try {
      // Tooling reaches the balancer's flow map to fill it without traffic.
      const map = (balancer as unknown as { flows: FlowMap }).flows;
      const filling = performance.now();
      fill(map, args, options.services * options.realsPerService);
      const fillSeconds = (performance.now() - filling) / 1000;
      progress(`${options.flows} flows in ${fillSeconds.toFixed(1)} s; ${changes.length} health changes so far; steady health checking`);
      const countedFlows = balancer.status().services.flatMap((s) => s.reals).reduce((sum, r) => sum + r.activeConns + r.inactiveConns, 0);

      // Every real checked at least once before the steady state is measured.
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs + 2000));
      const lag = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
      const checksBefore = checksDone(balancer);
      const cpuBefore = process.cpuUsage();
      lag.enable();
      await new Promise((resolve) => setTimeout(resolve, options.seconds * 1000));
      lag.disable();
      const cpu = process.cpuUsage(cpuBefore);
      const steadyCpuPercent = ((cpu.user + cpu.system) / 1e6 / options.seconds) * 100;
      const healthChecksPerSecond = (checksDone(balancer) - checksBefore) / options.seconds;
      const upAfterStart = balancer.status().services.flatMap((s) => s.reals).filter((r) => r.up).length;
      progress(`${healthChecksPerSecond.toFixed(0)} checks/s, ${upAfterStart} reals up, ${changes.length} health changes since start`);

      const changesBeforeMeasuring = changes.length;
      progress("status latency");
      const statusMs: number[] = [];
      for (let i = 0; i < options.statusCalls; i++) {
        const t0 = performance.now();
        balancer.status();
        statusMs.push(performance.now() - t0);
        await new Promise((resolve) => setImmediate(resolve));
      }

      progress("one real of one service down and up");
      // One service's real goes down and comes back, `cycles` times.
      const toTable: number[] = [];
      const fromListener: number[] = [];
      const waitForTable = async (since: number, seen: number) => {
        for (;;) {
          const change = changes[seen];
          if (change !== undefined && balancer.dataPlaneGeneration() > change.generation) {
            const at = performance.now();
            toTable.push(at - change.at);
            fromListener.push(at - since);
            return;
          }
          if (performance.now() - since > 30_000) throw new Error("no new table within 30 s of a listener change");
          await new Promise((resolve) => setImmediate(resolve));
        }
      };
      for (let cycle = 0; cycle < options.cycles; cycle++) {
        let [since, seen] = [performance.now(), changes.length];
        await stopProcesses([toggled]);
        await waitForTable(since, seen);
        [since, seen] = [performance.now(), changes.length];
        toggled = await startListener(args.reals[0]!.ns, [TOGGLED_PORT]);
        await waitForTable(since, seen);
      }

      progress("a real of every service down");
      // A real every service shares goes down: one change per service, handed over in batches.
      const sharedStart = changes.length;
      const sharedMs: number[] = [];
      await stopProcesses([shared]);
      const deadline = performance.now() + options.intervalMs * 3 + 20_000;
      let next = sharedStart;
      while (performance.now() < deadline && sharedMs.length < options.services) {
        const generation = balancer.dataPlaneGeneration();
        const now = performance.now();
        for (; next < changes.length && changes[next]!.generation < generation; next++) sharedMs.push(now - changes[next]!.at);
        await new Promise((resolve) => setImmediate(resolve));
      }
      const sharedChanges = changes.length - sharedStart;

      return {
        options, countedFlows, fillSeconds, startSeconds, realsUp: upAfterStart, changesBeforeMeasuring,
        statusMs: percentiles(statusMs),
        healthChangeToTableMs: percentiles(toTable),
        listenerToTableMs: percentiles(fromListener),
        sharedRealChangeToTableMs: { ...percentiles(sharedMs), changes: sharedChanges },
        // The histogram holds whole sampling intervals (the resolution plus the delay): the lag is the excess.
        eventLoopLagMs: {
          min: lagOf(lag.min), median: lagOf(lag.percentile(50)), p99: lagOf(lag.percentile(99)), max: lagOf(lag.max), mean: lagOf(lag.mean),
        },
        healthChecksPerSecond,
        steadyCpuPercent,
        load: loadavg(),
        goalMs: GOAL_MS,
      };
    } finally {
      await balancer.stop();
    }
  } finally {
    await stopProcesses(listeners);
  }
}

function checksDone(balancer: Balancer): number {
  const monitor = (balancer as unknown as { health: { status(): Array<{ checks: number }> } }).health;
  return monitor.status().reduce((sum, s) => sum + s.checks, 0);
}

// ---- outside: the lab -----------------------------------------------------------------------------

export async function runControlPlaneScale(
  options: ControlPlaneOptions, log: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<ControlPlaneResult> {
  if (process.getuid?.() !== 0) throw new Error("the control-plane bench builds network namespaces: run it as root");
  const lab: Lab = await createLab({ reals: 3, offloads: true, prefix: "cps" });
  try {
    const args: InsideArgs = { options, vip: lab.vip, reals: lab.reals.map((r) => ({ ns: r.ns, ip: r.ip })) };
    log(`control plane: ${options.services} services x ${options.realsPerService} reals, ${options.flows} flows, checks every ${options.intervalMs} ms (lab ${lab.id})`);
    const child = lab.spawn(lab.gateway.ns, process.execPath, ["--max-old-space-size=4096", __filename, "--inside", JSON.stringify(args)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let output = "";
    child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const [code] = (await once(child, "exit")) as [number | null];
    if (code !== 0) throw new Error(`the measurement inside the gateway namespace failed (exit ${code})`);
    return JSON.parse(output) as ControlPlaneResult;
  } finally {
    await lab.destroy();
  }
}

export function formatControlPlane(r: ControlPlaneResult): string {
  const ms = (p: Percentiles) => `min ${p.min.toFixed(2)}, median ${p.median.toFixed(2)} ms, p99 ${p.p99.toFixed(2)} ms, max ${p.max.toFixed(2)} ms`;
  const verdict = (value: number) => (value < r.goalMs ? "ok" : `over the ${r.goalMs} ms goal`);
  return [
    `control plane: ${r.options.services} services x ${r.options.realsPerService} reals (Maglev), ${r.countedFlows} flows counted, ` +
      `${r.healthChecksPerSecond.toFixed(0)} health checks/s, ${r.realsUp} reals up (${r.changesBeforeMeasuring} health changes before measuring); ` +
      `start ${r.startSeconds.toFixed(1)} s, fill ${r.fillSeconds.toFixed(1)} s; load ${r.load.map((l) => l.toFixed(1)).join(" ")}`,
    `  status:                        ${ms(r.statusMs)}  [${verdict(r.statusMs.p99)}]`,
    `  health change -> table:        ${ms(r.healthChangeToTableMs)}  [${verdict(r.healthChangeToTableMs.p99)}]`,
    `  listener change -> table:      ${ms(r.listenerToTableMs)}  (includes the 200 ms check interval)`,
    `  shared real down, per service: ${ms(r.sharedRealChangeToTableMs)} over ${r.sharedRealChangeToTableMs.changes} changes`,
    `  event-loop lag while checking: ${ms(r.eventLoopLagMs)}, mean ${r.eventLoopLagMs.mean.toFixed(2)} ms  [${verdict(r.eventLoopLagMs.p99)}]; ` +
      `natlb used ${r.steadyCpuPercent.toFixed(0)} % of a core meanwhile`,
  ].join("\n");
}

export function parseControlPlaneArgs(argv: readonly string[]): { options: ControlPlaneOptions; jsonPath?: string } {
  const options = { ...DEFAULT_CONTROL_PLANE_OPTIONS };
  let jsonPath: string | undefined;
  const names: Record<string, keyof ControlPlaneOptions> = {
    "--services": "services", "--reals": "realsPerService", "--flows": "flows", "--interval-ms": "intervalMs", "--seconds": "seconds",
    "--status-calls": "statusCalls", "--cycles": "cycles",
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = argv[++i];
    if (value === undefined) throw new Error(`${arg} needs a value`);
    if (arg === "--json") {
      jsonPath = value;
      continue;
    }
    const name = names[arg];
    if (name === undefined) throw new Error(`unknown argument "${arg}": control-plane takes ${[...Object.keys(names), "--json"].join(", ")}`);
    if (!/^\d+$/.test(value) || Number(value) < 1) throw new Error(`${arg} needs a positive integer, got "${value}"`);
    options[name] = Number(value);
  }
  return jsonPath === undefined ? { options } : { options, jsonPath };
}

/** `natlb bench control-plane ...` (bench/run.ts hands its arguments here). */
export async function controlPlaneMain(argv: readonly string[]): Promise<number> {
  let parsed: ReturnType<typeof parseControlPlaneArgs>;
  try {
    parsed = parseControlPlaneArgs(argv);
  } catch (e) {
    process.stderr.write(`bench control-plane: ${(e as Error).message}\n`);
    return 2;
  }
  try {
    const result = await runControlPlaneScale(parsed.options);
    process.stdout.write(`${formatControlPlane(result)}\n`);
    if (parsed.jsonPath) writeFileSync(parsed.jsonPath, `${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`bench control-plane: ${(e as Error).message}\n`);
    return 1;
  }
}

if (require.main === module && process.argv[2] === "--inside") {
  inside(JSON.parse(process.argv[3]!) as InsideArgs).then(
    (result) => {
      process.stdout.write(JSON.stringify(result));
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
      process.exit(1);
    },
  );
}
