// Paced probes: new TCP connections (and UDP requests) at a steady rate, each with its own timeout,
// counting how many succeed. They measure whether a service stays reachable for new clients while
// something else (a flood) loads the path, where a load tool would measure how fast it is.
//
//   node dist/src/lab/pacedProbes.js --tcp IP:PORT [--udp IP:PORT] --rate 20 --duration-ms D
//        [--timeout-ms 1000] [--local-address A]
//     Every 1/rate seconds, for D ms: one new TCP connection to --tcp (connect, "GET /s HTTP/1.0",
//     the whole response, which must start with "HTTP"; the tiny-response servers of bench/connLoad.c
//     and src/lab/benchTools.ts answer that) and, with --udp, one UDP request from a new socket (a new
//     flow each time) to an echo server (src/lab/udpEcho.ts), whose reply must carry the request.
//     An attempt succeeds when it completes within --timeout-ms of its start. Attempts do not wait
//     for each other. stdout:
//       {"event":"started","attempts":N}
//       {"event":"summary","seconds":..,"tcp":ProbeCounts,"udp":ProbeCounts|null}
//     Exit code 0 once the summary is printed, 2 on bad arguments.
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Lab } from './topology';
import { ToolArgs, UsageError, emit, isIpv4, runToolMain } from './toolArgs';
import { ToolError, launchTool } from './toolProcess';

export interface ProbeCounts {
  attempted: number;
  succeeded: number;
  /** Failure reasons (errno code, "timeout", "bad response") and their counts. */
  errors: Record<string, number>;
  /** Times of the successful attempts, ms; null when none succeeded. */
  latencyMs: { median: number; p90: number; max: number } | null;
}

export interface ProbeSummary {
  seconds: number;
  tcp: ProbeCounts;
  udp: ProbeCounts | null;
}

export interface PacedProbeOptions {
  tcp: { ip: string; port: number };
  udp?: { ip: string; port: number };
  /** Attempts per second of each protocol, 1..200. */
  rate: number;
  /** How long to keep starting attempts, 1..600 000 ms. */
  durationMs: number;
  /** Per-attempt bound, 1..10 000 ms. Default 1000. */
  timeoutMs?: number;
  localAddress?: string;
  /** Namespace to run in. Default: the lab's client. */
  ns?: string;
}

/** Successful share of the attempts, 0..1; null when nothing was attempted. */
export function successShare(c: ProbeCounts): number | null {
  return c.attempted === 0 ? null : c.succeeded / c.attempted;
}

/** Runs the probes (in the client namespace by default) and resolves with their summary. */
export async function runPacedProbes(lab: Lab, o: PacedProbeOptions): Promise<ProbeSummary> {
  const timeoutMs = o.timeoutMs ?? 1000;
  const args = ['--tcp', `${o.tcp.ip}:${o.tcp.port}`, '--rate', String(o.rate), '--duration-ms', String(o.durationMs)];
  args.push('--timeout-ms', String(timeoutMs));
  if (o.udp !== undefined) args.push('--udp', `${o.udp.ip}:${o.udp.port}`);
  if (o.localAddress !== undefined) args.push('--local-address', o.localAddress);
  const tool = launchTool(lab, o.ns ?? lab.client.ns, __filename, args, 'pacedProbes');
  const exit = await tool.waitForExit(o.durationMs + timeoutMs + 15_000);
  const summary = tool.events.find((e) => e.event === 'summary');
  if (summary === undefined) {
    throw new ToolError(`pacedProbes printed no summary (exit code ${exit.code}, signal ${exit.signal})${tool.stderrSuffix()}`);
  }
  const { event: _event, ...rest } = summary;
  return rest as unknown as ProbeSummary;
}

// ---------------------------------------------------------------------------------------------
// The program.

const USAGE = 'pacedProbes --tcp IP:PORT [--udp IP:PORT] --rate N --duration-ms D [--timeout-ms 1000] [--local-address A]';

interface Endpoint {
  ip: string;
  port: number;
}

function parseEndpoint(name: string, text: string): Endpoint {
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(text);
  if (m === null || !isIpv4(m[1] as string) || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new UsageError(`--${name} must be IPv4:port, got "${text}"`);
  }
  return { ip: m[1] as string, port: Number(m[2]) };
}

function elapsedMs(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** One new TCP connection with a one-line request; resolves with ms, or the reason it failed. */
function tcpAttempt(target: Endpoint, localAddress: string | undefined, timeoutMs: number): Promise<number | string> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    let head = '';
    let settled = false;
    const socket = net.connect({ host: target.ip, port: target.port, localAddress });
    const finish = (result: number | string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.once('connect', () => socket.write('GET /s HTTP/1.0\r\n\r\n'));
    socket.on('data', (chunk: Buffer) => {
      if (head.length < 4) head += chunk.toString('latin1', 0, Math.min(chunk.length, 4));
    });
    socket.once('end', () => finish(head.startsWith('HTTP') ? elapsedMs(t0) : 'bad response'));
    socket.once('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
  });
}

/** One UDP request from a new socket (a new flow); resolves with ms, or the reason it failed. */
function udpAttempt(target: Endpoint, localAddress: string | undefined, timeoutMs: number, marker: string): Promise<number | string> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const socket = dgram.createSocket('udp4');
    let settled = false;
    const finish = (result: number | string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      resolve(result);
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.on('message', (msg) => {
      if (msg.toString('latin1').includes(marker)) finish(elapsedMs(t0));
    });
    socket.once('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
    socket.bind({ port: 0, ...(localAddress !== undefined ? { address: localAddress } : {}) }, () => {
      socket.send(Buffer.from(`${marker} `, 'latin1'), target.port, target.ip, (err) => {
        if (err) finish((err as NodeJS.ErrnoException).code ?? err.message);
      });
    });
  });
}

function countsOf(results: Array<number | string>): ProbeCounts {
  const times = results.filter((r): r is number => typeof r === 'number').sort((a, b) => a - b);
  const errors: Record<string, number> = {};
  for (const r of results) if (typeof r === 'string') errors[r] = (errors[r] ?? 0) + 1;
  const at = (p: number): number => Math.round((times[Math.min(times.length - 1, Math.ceil(p * times.length) - 1)] as number) * 1000) / 1000;
  return {
    attempted: results.length,
    succeeded: times.length,
    errors,
    latencyMs: times.length === 0 ? null : { median: at(0.5), p90: at(0.9), max: at(1) },
  };
}

async function main(argv: string[]): Promise<void> {
  const a = new ToolArgs(argv);
  const tcp = parseEndpoint('tcp', a.requiredString('tcp'));
  const udpText = a.string('udp');
  const rate = a.int('rate', { min: 1, max: 200 }) ?? 0;
  const durationMs = a.int('duration-ms', { min: 1, max: 600_000 }) ?? 0;
  const timeoutMs = a.int('timeout-ms', { min: 1, max: 10_000 }, 1000);
  const localAddress = a.string('local-address');
  a.rejectUnknown();
  if (rate === 0) throw new UsageError('--rate is required');
  if (durationMs === 0) throw new UsageError('--duration-ms is required');
  if (localAddress !== undefined && !isIpv4(localAddress)) throw new UsageError('--local-address must be IPv4');
  const udp = udpText === undefined ? undefined : parseEndpoint('udp', udpText);

  const attempts = Math.max(1, Math.floor((durationMs * rate) / 1000));
  const intervalMs = 1000 / rate;
  const nonce = randomBytes(4).toString('hex');
  const tcpResults: Array<Promise<number | string>> = [];
  const udpResults: Array<Promise<number | string>> = [];
  emit({ event: 'started', attempts });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < attempts; i++) {
    // Absolute schedule: a late timer does not shift every later attempt.
    const wait = i * intervalMs - elapsedMs(t0);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    tcpResults.push(tcpAttempt(tcp, localAddress, timeoutMs));
    if (udp !== undefined) udpResults.push(udpAttempt(udp, localAddress, timeoutMs, `natlb-probe ${nonce} ${i}`));
  }
  const tcpDone = await Promise.all(tcpResults);
  const udpDone = await Promise.all(udpResults);
  const summary: ProbeSummary = {
    seconds: Math.round(elapsedMs(t0)) / 1000,
    tcp: countsOf(tcpDone),
    udp: udp === undefined ? null : countsOf(udpDone),
  };
  emit({ event: 'summary', ...summary });
}

if (require.main === module) runToolMain('pacedProbes', USAGE, main);
