// Paced probes: new TCP connections (and UDP requests) at a steady rate, each with its own timeout,
// counting how many succeed. They measure whether a service stays reachable for new clients while
// something else (a flood) loads the path, where a load tool would measure how fast it is.
//
//   node dist/lab/pacedProbes.js --tcp IP:PORT [--udp IP:PORT] --rate 20 --duration-ms D
//        [--timeout-ms 1000] [--local-address A]
//     Every 1/rate seconds, for D ms: one new TCP connection to --tcp (connect, "GET /s HTTP/1.0",
//     the whole response, which must start with "HTTP"; the tiny-response servers of bench/connLoad.c
//     and lab/benchTools.ts answer that) and, with --udp, one UDP request from a new socket (a new
//     flow each time) to an echo server (lab/udpEcho.ts), whose reply must carry the request.
//     An attempt succeeds when it completes within --timeout-ms of its start. Attempts do not wait
//     for each other. stdout:
//       {"event":"started","attempts":N}
//       {"event":"summary","seconds":..,"tcp":ProbeCounts,"udp":ProbeCounts|null}
//     Exit code 0 once the summary is printed, 2 on bad arguments.
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { parseEndpoint, type Endpoint } from './endpoint';
import { latencySummary, type LatencySummary } from './latencySummary';
import { elapsedMs } from './monotonicClock';
import { shortConnection } from './shortConnection';
import { timedAttempt, type AttemptResult } from './timedAttempt';
import type { Lab } from './topology';
import { ToolArgs, UsageError, emit, isIpv4, runToolMain } from './toolArgs';
import { runToSummary } from './toolSummary';

export interface ProbeCounts {
  attempted: number;
  succeeded: number;
  /** Failure reasons (errno code, "timeout", "bad response") and their counts. */
  errors: Record<string, number>;
  /** Times of the successful attempts, ms; null when none succeeded. */
  latencyMs: LatencySummary | null;
}

export interface ProbeSummary {
  seconds: number;
  tcp: ProbeCounts;
  udp: ProbeCounts | null;
}

export interface PacedProbeOptions {
  tcp: Endpoint;
  udp?: Endpoint;
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
  return runToSummary<ProbeSummary>(lab, o.ns ?? lab.client.ns, __filename, args, 'pacedProbes', o.durationMs + timeoutMs);
}

// ---------------------------------------------------------------------------------------------
// The program.

const USAGE = 'pacedProbes --tcp IP:PORT [--udp IP:PORT] --rate N --duration-ms D [--timeout-ms 1000] [--local-address A]';

/** One UDP request from a new socket (a new flow); resolves with ms, or the reason it failed. */
function udpAttempt(target: Endpoint, localAddress: string | undefined, timeoutMs: number, marker: string): Promise<AttemptResult> {
  return timedAttempt(timeoutMs, (finish, elapsed) => {
    const socket = dgram.createSocket('udp4');
    socket.on('message', (msg) => {
      if (msg.toString('latin1').includes(marker)) finish(elapsed());
    });
    socket.once('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
    socket.bind({ port: 0, ...(localAddress !== undefined ? { address: localAddress } : {}) }, () => {
      socket.send(Buffer.from(`${marker} `, 'latin1'), target.port, target.ip, (err) => {
        if (err) finish((err as NodeJS.ErrnoException).code ?? err.message);
      });
    });
    return () => socket.close();
  });
}

function countsOf(results: AttemptResult[]): ProbeCounts {
  const times = results.filter((r): r is number => typeof r === 'number');
  const errors: Record<string, number> = {};
  for (const r of results) if (typeof r === 'string') errors[r] = (errors[r] ?? 0) + 1;
  return { attempted: results.length, succeeded: times.length, errors, latencyMs: latencySummary(times) };
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
  const tcpResults: Array<Promise<AttemptResult>> = [];
  const udpResults: Array<Promise<AttemptResult>> = [];
  emit({ event: 'started', attempts });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < attempts; i++) {
    // Absolute schedule: a late timer does not shift every later attempt.
    const wait = i * intervalMs - elapsedMs(t0);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    tcpResults.push(shortConnection(tcp, localAddress, timeoutMs));
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
