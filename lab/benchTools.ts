// Lean traffic tools for the benchmark (bench/), and the helpers that run them in a lab. They avoid
// per-request logging and HTTP-library overhead so that the client and the real servers cost as
// little CPU as possible: on a 2-core host every cycle they save is left to the path under test.
//
//   node dist/lab/benchTools.js --mode small-server [--port 8081] [--ip <own ip>] [--max-seconds 3600]
//     Answers every connection's first request with a tiny HTTP response and closes (server closes
//     first, so TIME_WAIT stays on the real, not on the client). stdout:
//       {"event":"listening","real":..,"port":..,"pid":..}     and on exit {"event":"exit","served":N}
//
//   node dist/lab/benchTools.js --mode download --targets IP:PORT[,IP:PORT..] --path /blob?bytes=N&seed=S
//        [--conns K] [--local-address A] [--local-port-base P] [--timeout-ms T] [--sha] [--watch-pid PID]
//     K connections at once, connection i to target i % targets from local port P + i. Reads with a
//     reused buffer (no allocation per read). CPU ticks of the whole machine (/proc/stat) and of
//     process PID are taken right before the first connect and after the last byte, so the tool's
//     own start-up is not counted. One line: {"event":"summary",..DownloadRunSummary}.
//
//   node dist/lab/benchTools.js --mode conns --targets IP:PORT[,..] [--concurrency C] [--count N]
//        [--duration-ms D] [--local-address A] [--conn-timeout-ms T] [--latencies]
//     Short connections (connect, one request, tiny response, close), C at a time, until N are done or
//     D ms have passed. One line: {"event":"summary",..ConnRunSummary}.
import { createHash, type Hash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { parseEndpoint, type Endpoint } from './endpoint';
import { latencySummary, type LatencySummary } from './latencySummary';
import { elapsedMs } from './monotonicClock';
import { shortConnection } from './shortConnection';
import { realByIndex, type Lab, type LabHost } from './topology';
import { ToolArgs, UsageError, emit, isIpv4, runToolMain } from './toolArgs';
import { launchTool, type ToolProcess } from './toolProcess';
import { runToSummary } from './toolSummary';

export type { Endpoint } from './endpoint';

export const DEFAULT_SMALL_PORT = 8081;

// ---------------------------------------------------------------------------------------------
// Helpers seen from the bench process.

export interface SmallServerHandle {
  readonly real: LabHost;
  readonly port: number;
  readonly tool: ToolProcess;
  stop(): Promise<void>;
}

/** Starts the tiny-response server in real `realIndex` (1-based) and resolves once it listens. */
export async function startSmallServer(lab: Lab, realIndex: number, port = DEFAULT_SMALL_PORT, maxSeconds = 7200): Promise<SmallServerHandle> {
  const real = realByIndex(lab, realIndex);
  const args = ['--mode', 'small-server', '--port', String(port), '--ip', real.ip, '--max-seconds', String(maxSeconds)];
  const tool = launchTool(lab, real.ns, __filename, args, `smallServer(r${realIndex}:${port})`);
  await tool.waitUntilListening();
  return { real, port, tool, stop: async () => void (await tool.stop()) };
}

export interface DownloadConnResult {
  target: string;
  localPort: number | null;
  status: number | null;
  /** Body bytes received. */
  bytes: number;
  /** Content-Length announced by the server. */
  expected: number | null;
  /** X-Real header: which real server answered. */
  real: string | null;
  /** sha256 of the body (hex), with --sha only. */
  sha256: string | null;
  ms: number;
  error?: string;
}

/** CPU ticks (USER_HZ, 100 per second on Linux) spent during a run. */
export interface CpuTicks {
  /** Whole machine: every non-idle tick of every CPU (/proc/stat). */
  machineBusy: number;
  /** Whole machine: all ticks of every CPU, idle included (CPUs x seconds x USER_HZ). */
  machineTotal: number;
  /** utime + stime of the watched process and its threads; null when none was watched or it vanished. */
  watched: number | null;
}

export interface DownloadRunSummary {
  ok: number;
  failed: number;
  totalBytes: number;
  /** From the first connect to the last byte. */
  seconds: number;
  gbps: number;
  cpu: CpuTicks;
  results: DownloadConnResult[];
}

export interface BulkDownloadOptions {
  targets: Endpoint[];
  /** Request path, e.g. /blob?bytes=N&seed=S */
  path: string;
  conns: number;
  localAddress?: string;
  localPortBase?: number;
  timeoutMs: number;
  sha?: boolean;
  /** Process whose CPU ticks the summary reports (the balancer). */
  watchPid?: number;
  /** Namespace to run in. Default: the lab's client. */
  ns?: string;
}

/** Runs the download tool in the client namespace and returns its summary (also when some connections failed). */
export async function runBulkDownload(lab: Lab, o: BulkDownloadOptions): Promise<DownloadRunSummary> {
  const args = ['--mode', 'download', '--targets', joinTargets(o.targets), '--path', o.path, '--conns', String(o.conns)];
  args.push('--timeout-ms', String(o.timeoutMs));
  if (o.localAddress !== undefined) args.push('--local-address', o.localAddress);
  if (o.localPortBase !== undefined) args.push('--local-port-base', String(o.localPortBase));
  if (o.sha === true) args.push('--sha');
  if (o.watchPid !== undefined) args.push('--watch-pid', String(o.watchPid));
  return runToSummary<DownloadRunSummary>(lab, o.ns ?? lab.client.ns, __filename, args, 'bench download', o.timeoutMs);
}

export interface ConnRunSummary {
  completed: number;
  failed: number;
  /** Failure reasons and their counts. */
  errors: Record<string, number>;
  seconds: number;
  perSecond: number;
  /** Milliseconds per connection (connect to end of response) of completed connections. */
  latencyMs: LatencySummary | null;
  /** Every completed connection's time in ms (with --latencies only). */
  samples?: number[];
}

export interface ConnLoadOptions {
  targets: Endpoint[];
  concurrency: number;
  /** Stop after this many connections... */
  count: number;
  /** ...or after this long, whichever comes first. */
  durationMs: number;
  localAddress?: string;
  connTimeoutMs?: number;
  latencies?: boolean;
  ns?: string;
}

/** Runs the short-connection client in the client namespace and returns its summary. */
export async function runConnLoad(lab: Lab, o: ConnLoadOptions): Promise<ConnRunSummary> {
  const args = ['--mode', 'conns', '--targets', joinTargets(o.targets), '--concurrency', String(o.concurrency)];
  args.push('--count', String(o.count), '--duration-ms', String(o.durationMs));
  if (o.localAddress !== undefined) args.push('--local-address', o.localAddress);
  if (o.connTimeoutMs !== undefined) args.push('--conn-timeout-ms', String(o.connTimeoutMs));
  if (o.latencies === true) args.push('--latencies');
  const bound = o.durationMs + (o.connTimeoutMs ?? 2000);
  return runToSummary<ConnRunSummary>(lab, o.ns ?? lab.client.ns, __filename, args, 'bench conns', bound);
}

// ---------------------------------------------------------------------------------------------
// /proc readers (the pid namespace is the host's, so they work from any network namespace).

/** [busy, total] ticks of all CPUs since boot, from the first line of /proc/stat. */
export function readMachineTicks(): [number, number] {
  const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0] ?? '';
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user already)
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((s, v) => s + v, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return [total - idle, total];
}

/** utime + stime ticks of process `pid` (all its threads), or null when it does not exist. */
export function readProcessTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(after[11]) + Number(after[12]);
  } catch {
    return null;
  }
}

/** Peak resident set size (VmHWM) of process `pid` in KiB, or null when it does not exist. */
export function readPeakRssKiB(pid: number): number | null {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

function joinTargets(targets: Endpoint[]): string {
  if (targets.length === 0) throw new RangeError('at least one target is needed');
  return targets.map((t) => `${t.ip}:${t.port}`).join(',');
}

// ---------------------------------------------------------------------------------------------
// The programs.

const USAGE =
  'benchTools --mode small-server [--port 8081] [--ip A] [--max-seconds 3600]\n' +
  '       benchTools --mode download --targets IP:PORT[,..] --path P [--conns K] [--local-address A] [--local-port-base P] [--timeout-ms T] [--sha] [--watch-pid PID]\n' +
  '       benchTools --mode conns --targets IP:PORT[,..] [--concurrency C] [--count N] [--duration-ms D] [--local-address A] [--conn-timeout-ms T] [--latencies]';

function ownIp(): string | undefined {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

function parseTargets(text: string): Endpoint[] {
  const targets = text.split(',').map((t) => parseEndpoint('targets', t));
  if (targets.length > 64) throw new UsageError('--targets: at most 64');
  return targets;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

async function smallServerMain(a: ToolArgs): Promise<void> {
  const port = a.int('port', { min: 1, max: 65535 }, DEFAULT_SMALL_PORT);
  const ip = a.string('ip') ?? ownIp();
  const maxSeconds = a.int('max-seconds', { min: 1, max: 7 * 86400 }, 3600);
  a.rejectUnknown();
  if (ip === undefined || !isIpv4(ip)) throw new UsageError('no IPv4 address found: pass --ip');
  const body = `${ip}\n`;
  const response = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\nX-Real: ${ip}\r\n\r\n${body}`, 'latin1');
  let served = 0;
  const server = net.createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.setTimeout(10_000, () => socket.destroy());
    socket.once('data', () => {
      served++;
      socket.end(response);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: '0.0.0.0', backlog: 4096 }, () => resolve());
  });
  emit({ event: 'listening', real: ip, port, pid: process.pid });
  const shutdown = (reason: string): void => {
    emit({ event: 'exit', reason, served });
    process.exit(0);
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  setTimeout(() => shutdown('max-seconds'), maxSeconds * 1000).unref();
}

const HEADER_LIMIT = 16 * 1024;
const READ_BUFFER = Buffer.allocUnsafe(1024 * 1024);

interface DownloadPlan {
  targets: Endpoint[];
  path: string;
  conns: number;
  localAddress: string | undefined;
  localPortBase: number | undefined;
  timeoutMs: number;
  sha: boolean;
}

/** One download on its own connection; the body is counted (and hashed with --sha), never kept. */
function downloadOne(plan: DownloadPlan, index: number, sockets: Set<net.Socket>): Promise<DownloadConnResult> {
  const target = plan.targets[index % plan.targets.length] as Endpoint;
  const localPort = plan.localPortBase === undefined ? undefined : plan.localPortBase + index;
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    let header: Buffer | null = Buffer.alloc(0);
    let status: number | null = null;
    let expected: number | null = null;
    let real: string | null = null;
    let bytes = 0;
    let settled = false;
    const hash: Hash | undefined = plan.sha ? createHash('sha256') : undefined;
    const onBody = (chunk: Buffer): void => {
      bytes += chunk.length;
      hash?.update(chunk);
    };
    const socket = net.connect({
      host: target.ip,
      port: target.port,
      localAddress: plan.localAddress,
      localPort,
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Uint8Array): boolean => {
          const data = Buffer.from(buf.buffer, buf.byteOffset, n);
          if (header === null) {
            onBody(data);
            return true;
          }
          header = Buffer.concat([header, data]);
          const end = header.indexOf('\r\n\r\n');
          if (end < 0) {
            if (header.length > HEADER_LIMIT) finish('response header too long');
            return true;
          }
          const text = header.subarray(0, end).toString('latin1');
          const rest = header.subarray(end + 4);
          header = null;
          const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
          status = m === null ? null : Number(m[1]);
          const cl = /\r\ncontent-length:\s*(\d+)/i.exec(text);
          expected = cl === null ? null : Number(cl[1]);
          const xr = /\r\nx-real:\s*(\S+)/i.exec(text);
          real = xr === null ? null : (xr[1] as string);
          if (rest.length > 0) onBody(rest);
          return true;
        },
      },
    });
    sockets.add(socket);
    const finish = (error?: string): void => {
      if (settled) return;
      settled = true;
      sockets.delete(socket);
      socket.destroy();
      const r: DownloadConnResult = {
        target: `${target.ip}:${target.port}`,
        localPort: socket.localPort ?? localPort ?? null,
        status,
        bytes,
        expected,
        real,
        sha256: hash !== undefined && error === undefined ? hash.digest('hex') : null,
        ms: round3(elapsedMs(t0)),
      };
      if (error !== undefined) r.error = error;
      resolve(r);
    };
    socket.once('connect', () => {
      socket.write(`GET ${plan.path} HTTP/1.1\r\nHost: ${target.ip}:${target.port}\r\nConnection: close\r\n\r\n`);
    });
    socket.once('end', () => {
      if (status === null) finish('connection closed before a response');
      else if (status < 200 || status > 299) finish(`HTTP ${status}`);
      else if (expected !== null && bytes !== expected) finish(`short body: ${bytes} of ${expected} bytes`);
      else finish();
    });
    socket.once('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
    socket.once('close', () => finish(`connection closed after ${bytes} bytes`));
  });
}

async function downloadMain(a: ToolArgs): Promise<void> {
  const plan: DownloadPlan = {
    targets: parseTargets(a.requiredString('targets')),
    path: a.requiredString('path'),
    conns: a.int('conns', { min: 1, max: 256 }, 1),
    localAddress: a.string('local-address'),
    localPortBase: a.int('local-port-base', { min: 1024, max: 65535 }),
    timeoutMs: a.int('timeout-ms', { min: 1, max: 3_600_000 }, 60_000),
    sha: a.flag('sha'),
  };
  const watchPid = a.int('watch-pid', { min: 1, max: 2 ** 22 });
  a.rejectUnknown();
  if (!plan.path.startsWith('/')) throw new UsageError('--path must start with /');
  if (plan.localAddress !== undefined && !isIpv4(plan.localAddress)) throw new UsageError('--local-address must be IPv4');
  if (plan.localPortBase !== undefined && plan.localPortBase + plan.conns - 1 > 65535) {
    throw new UsageError(`--local-port-base ${plan.localPortBase} + --conns ${plan.conns} runs past port 65535`);
  }
  const sockets = new Set<net.Socket>();
  const timer = setTimeout(() => {
    for (const s of sockets) s.destroy(new Error(`deadline of ${plan.timeoutMs} ms reached`));
  }, plan.timeoutMs);
  const [busy0, total0] = readMachineTicks();
  const watched0 = watchPid === undefined ? null : readProcessTicks(watchPid);
  const t0 = process.hrtime.bigint();
  const results = await Promise.all(Array.from({ length: plan.conns }, (_, i) => downloadOne(plan, i, sockets)));
  const seconds = elapsedMs(t0) / 1000;
  const [busy1, total1] = readMachineTicks();
  const watched1 = watchPid === undefined ? null : readProcessTicks(watchPid);
  clearTimeout(timer);
  const cpu: CpuTicks = {
    machineBusy: busy1 - busy0,
    machineTotal: total1 - total0,
    watched: watched0 === null || watched1 === null ? null : watched1 - watched0,
  };
  const totalBytes = results.reduce((s, r) => s + r.bytes, 0);
  const failed = results.filter((r) => r.error !== undefined).length;
  const summary: DownloadRunSummary = {
    ok: results.length - failed,
    failed,
    totalBytes,
    seconds: Math.round(seconds * 1e6) / 1e6,
    gbps: seconds > 0 ? round3((totalBytes * 8) / seconds / 1e9) : 0,
    cpu,
    results,
  };
  emit({ event: 'summary', ...summary });
  process.exitCode = failed === 0 ? 0 : 1;
}

async function connsMain(a: ToolArgs): Promise<void> {
  const targets = parseTargets(a.requiredString('targets'));
  const concurrency = a.int('concurrency', { min: 1, max: 1024 }, 32);
  const count = a.int('count', { min: 1, max: 10_000_000 }, 10_000);
  const durationMs = a.int('duration-ms', { min: 1, max: 3_600_000 }, 5000);
  const localAddress = a.string('local-address');
  const connTimeoutMs = a.int('conn-timeout-ms', { min: 1, max: 60_000 }, 2000);
  const keepSamples = a.flag('latencies');
  a.rejectUnknown();
  if (localAddress !== undefined && !isIpv4(localAddress)) throw new UsageError('--local-address must be IPv4');

  const samples: number[] = [];
  const errors: Record<string, number> = {};
  let started = 0;
  let failed = 0;
  const t0 = process.hrtime.bigint();
  const deadline = Date.now() + durationMs;
  const worker = async (): Promise<void> => {
    while (started < count && Date.now() < deadline) {
      const target = targets[started++ % targets.length] as Endpoint;
      const r = await shortConnection(target, localAddress, connTimeoutMs);
      if (typeof r === 'number') samples.push(r);
      else {
        failed++;
        errors[r] = (errors[r] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = elapsedMs(t0) / 1000;
  const summary: ConnRunSummary = {
    completed: samples.length,
    failed,
    errors,
    seconds: Math.round(seconds * 1e6) / 1e6,
    perSecond: seconds > 0 ? Math.round(samples.length / seconds) : 0,
    latencyMs: latencySummary(samples),
  };
  if (keepSamples) summary.samples = samples.map(round3);
  emit({ event: 'summary', ...summary });
  process.exitCode = failed === 0 ? 0 : 1;
}

async function main(argv: string[]): Promise<void> {
  const a = new ToolArgs(argv, ['sha', 'latencies']);
  const mode = a.requiredString('mode');
  if (mode === 'small-server') return smallServerMain(a);
  if (mode === 'download') return downloadMain(a);
  if (mode === 'conns') return connsMain(a);
  throw new UsageError(`--mode must be small-server, download or conns, got "${mode}"`);
}

if (require.main === module) runToolMain('benchTools', USAGE, main);
