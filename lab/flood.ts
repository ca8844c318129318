// Spoofed floods in the lab: the TypeScript side of the C generator lab/spoofFlood.c. It checks
// the options (sources and target inside the lab range, packet count and seconds both given and
// bounded), builds the generator on demand, runs it in a lab namespace (the flood host by default)
// and resolves with its summary; past its time bound the generator is killed.
//
//   const summary = await runFlood(lab, { kind: 'syn', target: { ip: lab.vip, port: 81 }, rate: 50_000, count: 250_000, seconds: 5 });
//   // { sent, failed, seconds, rate, errors, stoppedBy, ... }
import { LAB_RANGE, SPOOF_RANGE } from './labAddresses';
import { cidrInside, ipInside, parseCidr } from './ipv4Cidr';
import { buildNativeTool } from './nativeTools';
import type { Lab } from './topology';
import { isIpv4 } from './toolArgs';
import { ToolError, ToolProcess } from './toolProcess';

export type FloodKind = 'syn' | 'ack' | 'udp';

/** Largest flood the generator accepts: packets, and seconds. */
export const MAX_FLOOD_PACKETS = 100_000_000;
export const MAX_FLOOD_SECONDS = 600;
export const MAX_FLOOD_RATE = 10_000_000;
export const MAX_UDP_FLOOD_PAYLOAD = 1472;

export interface FloodOptions {
  /** TCP SYNs (with an MSS option, as a real SYN), bare TCP ACKs of no connection, or UDP datagrams. */
  kind: FloodKind;
  target: { ip: string; port: number };
  /** Source addresses are drawn at random from this CIDR, inside 198.18.0.0/15. Default SPOOF_RANGE. */
  sources?: string;
  /** Packets per second (1..10 000 000), or 'max': as fast as the socket takes them. */
  rate: number | 'max';
  /** Packets at most (1..100 000 000). Required: every flood is bounded. */
  count: number;
  /** Seconds at most (0.001..600). Required: every flood is bounded. */
  seconds: number;
  /** UDP payload bytes, 0..1472 (default 64). UDP only. */
  payloadBytes?: number;
  /** Packets per sendmmsg call, 1..1024 (default 64). */
  batch?: number;
  /** Random seed (reproducible sources and ports). */
  seed?: number;
  /** Namespace to send from. Default: the lab's flood host. */
  ns?: string;
}

export interface FloodSummary {
  proto: 'tcp' | 'tcp-ack' | 'udp';
  target: string;
  sources: string;
  /** null for rate 'max'. */
  requestedRate: number | null;
  count: number;
  maxSeconds: number;
  /** Packets the kernel accepted. */
  sent: number;
  /** Packets whose send failed (errors counts them by errno). */
  failed: number;
  /** From the first send to the end of the last one. */
  seconds: number;
  /** Achieved packets per second: sent / seconds. */
  rate: number;
  errors: Record<string, number>;
  stoppedBy: 'count' | 'seconds' | 'signal';
}

/** Bad flood options: refused before anything is sent. */
export class FloodOptionsError extends Error {
  override readonly name = 'FloodOptionsError';
}

const LAB_CIDR = parseCidr(LAB_RANGE);

function integerIn(name: string, v: number, min: number, max: number): void {
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new FloodOptionsError(`${name} must be an integer in ${min}..${max}, got ${String(v)}`);
}

/** The generator's command line for `o`; throws FloodOptionsError for anything it would refuse. */
export function floodArguments(o: FloodOptions): string[] {
  if (o.kind !== 'syn' && o.kind !== 'ack' && o.kind !== 'udp') throw new FloodOptionsError(`kind must be "syn", "ack" or "udp", got "${String(o.kind)}"`);
  if (!isIpv4(o.target.ip) || !ipInside(o.target.ip, LAB_CIDR)) {
    throw new FloodOptionsError(`target must be an address inside the lab range ${LAB_RANGE}, got "${o.target.ip}"`);
  }
  integerIn('target port', o.target.port, 1, 65535);
  const sources = o.sources ?? SPOOF_RANGE;
  let inside: boolean;
  try {
    inside = cidrInside(parseCidr(sources), LAB_CIDR);
  } catch (e) {
    throw new FloodOptionsError(`sources: ${(e as Error).message}`);
  }
  if (!inside) throw new FloodOptionsError(`sources must lie inside the lab range ${LAB_RANGE}, got "${sources}"`);
  if (o.rate !== 'max') integerIn('rate', o.rate, 1, MAX_FLOOD_RATE);
  // Both bounds are required, also from JavaScript callers that bypass the types.
  if (o.count === undefined || o.seconds === undefined) throw new FloodOptionsError('count and seconds are both required: every flood is bounded');
  integerIn('count', o.count, 1, MAX_FLOOD_PACKETS);
  if (!Number.isFinite(o.seconds) || o.seconds < 0.001 || o.seconds > MAX_FLOOD_SECONDS) {
    throw new FloodOptionsError(`seconds must be a number in 0.001..${MAX_FLOOD_SECONDS}, got ${String(o.seconds)}`);
  }
  const args = ['--proto', o.kind === 'syn' ? 'tcp' : o.kind === 'ack' ? 'tcp-ack' : 'udp', '--target', `${o.target.ip}:${o.target.port}`, '--sources', sources];
  args.push('--rate', String(o.rate), '--count', String(o.count), '--seconds', String(o.seconds));
  if (o.payloadBytes !== undefined) {
    if (o.kind !== 'udp') throw new FloodOptionsError('payloadBytes is for UDP floods only');
    integerIn('payloadBytes', o.payloadBytes, 0, MAX_UDP_FLOOD_PAYLOAD);
    args.push('--payload-bytes', String(o.payloadBytes));
  }
  if (o.batch !== undefined) {
    integerIn('batch', o.batch, 1, 1024);
    args.push('--batch', String(o.batch));
  }
  if (o.seed !== undefined) {
    integerIn('seed', o.seed, 0, Number.MAX_SAFE_INTEGER);
    args.push('--seed', String(o.seed));
  }
  return args;
}

/** Builds the generator (once; again when its source changes) and returns its path. */
export async function buildFloodGenerator(): Promise<string> {
  const built = await buildNativeTool({ name: 'spoofflood', compiler: 'cc', sources: ['lab/spoofFlood.c'], flags: ['-O2', '-Wall'] });
  if (!built.ok) throw new ToolError(`the flood generator could not be built: ${built.reason}`);
  return built.path;
}

export interface RunningFlood {
  readonly tool: ToolProcess;
  /** Resolves with the summary when the flood ends (count or seconds reached); kills it past its bound. */
  readonly done: Promise<FloodSummary>;
  /** Ends the flood early (SIGTERM) and resolves with its summary. */
  stop(): Promise<FloodSummary>;
}

/** Grace past the flood's own time bound before it is killed. */
const KILL_GRACE_MS = 10_000;

/** Starts a flood and resolves once packets are going out (the generator's "started" line). */
export async function startFlood(lab: Lab, o: FloodOptions): Promise<RunningFlood> {
  const args = floodArguments(o);
  const ns = o.ns ?? lab.floodHost?.ns;
  if (ns === undefined) throw new FloodOptionsError('the lab has no flood host (createLab({ floodHost: true })) and no ns was given');
  const binary = await buildFloodGenerator();
  const tool = new ToolProcess(lab.spawn(ns, binary, args), `spoofflood(${o.kind} -> ${o.target.ip}:${o.target.port})`);
  const summaryOf = async (): Promise<FloodSummary> => {
    const exit = await tool.waitForExit(o.seconds * 1000 + KILL_GRACE_MS);
    const summary = tool.events.find((e) => e.event === 'summary');
    if (exit.code !== 0 || summary === undefined) {
      throw new ToolError(`${tool.label} printed no summary (exit code ${exit.code}, signal ${exit.signal})${tool.stderrSuffix()}`);
    }
    const { event: _event, ...rest } = summary;
    return rest as unknown as FloodSummary;
  };
  try {
    await tool.waitForEvent((e) => e.event === 'started', 10_000, 'the started line');
  } catch (e) {
    await tool.stop();
    throw e;
  }
  const done = summaryOf();
  // The caller may only look at `done` later: never an unhandled rejection meanwhile.
  done.catch(() => undefined);
  return {
    tool,
    done,
    stop: async () => {
      await tool.stop(3000);
      return done;
    },
  };
}

/** Runs one bounded flood to its end and resolves with the generator's summary. */
export async function runFlood(lab: Lab, o: FloodOptions): Promise<FloodSummary> {
  return (await startFlood(lab, o)).done;
}
