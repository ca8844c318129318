// The failover gap as clients see it: K UDP sockets (K flows, each its own source port), each sending
// a datagram every I ms to an echo server (lab/udpEcho.ts) for D ms; for each socket, the longest time
// without a reply between its first reply and the end. A flow whose path broke and came back shows the
// gap; the others show about I.
//
//   node dist/lab/udpGapProbe.js --target IP:PORT --sockets K --interval-ms I --duration-ms D --local-port-base P
//
// stdout: {"event":"started","t"} then {"event":"summary","startedAt","sockets":[{localPort,sent,received,
// firstReplyMs,longestGapMs,gapEndsAt,reals}]}: firstReplyMs is from the start to the first reply (null:
// none came), gapEndsAt is the wall-clock ms of the reply that ended the longest gap
// (or stoppedAt, the last send, when no reply came back), reals the addresses that answered it. Bounded by D.
import dgram from 'node:dgram';
import type { NamespaceSpawner, ToolProcess } from './toolProcess';
import { launchTool } from './toolProcess';
import { parseEndpoint } from './endpoint';
import { ToolArgs, emit, runToolMain } from './toolArgs';

export interface SocketGap {
  localPort: number;
  sent: number;
  received: number;
  firstReplyMs: number | null;
  longestGapMs: number;
  gapEndsAt: number;
  reals: string[];
}

export interface GapProbeSummary {
  startedAt: number;
  /** When the last datagrams were sent: a flow whose gapEndsAt is this never answered again. */
  stoppedAt: number;
  sockets: SocketGap[];
}

export interface GapProbeOptions {
  host: string;
  port: number;
  sockets: number;
  intervalMs: number;
  durationMs: number;
  localPortBase: number;
  ns: string;
}

/** Starts the probe in `ns`; `summary()` resolves when it ends. */
export function startGapProbe(lab: NamespaceSpawner, o: GapProbeOptions): { tool: ToolProcess; summary(): Promise<GapProbeSummary> } {
  const args = ['--target', `${o.host}:${o.port}`, '--sockets', String(o.sockets), '--interval-ms', String(o.intervalMs),
    '--duration-ms', String(o.durationMs), '--local-port-base', String(o.localPortBase)];
  const tool = launchTool(lab, o.ns, __filename, args, 'udpGapProbe');
  return {
    tool,
    summary: async () => {
      const e = await tool.waitForEvent((ev) => ev.event === 'summary', o.durationMs + 15_000, 'the gap probe summary');
      const { event: _event, ...rest } = e;
      return rest as unknown as GapProbeSummary;
    },
  };
}

const USAGE = 'udpGapProbe --target IP:PORT --sockets K --interval-ms I --duration-ms D --local-port-base P';

async function main(argv: string[]): Promise<void> {
  const a = new ToolArgs(argv);
  const target = parseEndpoint('target', a.requiredString('target'));
  const count = a.int('sockets', { min: 1, max: 256 }, 16);
  const intervalMs = a.int('interval-ms', { min: 1, max: 10_000 }, 10);
  const durationMs = a.int('duration-ms', { min: 100, max: 600_000 }, 10_000);
  const base = a.int('local-port-base', { min: 1024, max: 65_000 }, 50_000);
  a.rejectUnknown();
  let startedAt = Date.now();
  const sockets = await Promise.all(Array.from({ length: count }, (_, i) => new Promise<{ socket: dgram.Socket; stats: SocketGap; lastReply: number }>((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const stats: SocketGap = { localPort: base + i, sent: 0, received: 0, firstReplyMs: null, longestGapMs: 0, gapEndsAt: 0, reals: [] };
    const entry = { socket, stats, lastReply: 0 };
    socket.on('message', (msg) => {
      const now = Date.now();
      const real = msg.toString('latin1').split(' ')[0] ?? '';
      if (!entry.stats.reals.includes(real)) entry.stats.reals.push(real);
      entry.stats.received++;
      if (entry.stats.firstReplyMs === null) entry.stats.firstReplyMs = now - startedAt;
      else if (now - entry.lastReply > entry.stats.longestGapMs) {
        entry.stats.longestGapMs = now - entry.lastReply;
        entry.stats.gapEndsAt = now;
      }
      entry.lastReply = now;
    });
    socket.once('error', reject);
    socket.bind(base + i, () => resolve(entry));
  })));
  startedAt = Date.now();
  emit({ event: 'started', t: startedAt });
  let seq = 0;
  const timer = setInterval(() => {
    seq++;
    for (const s of sockets) {
      s.stats.sent++;
      s.socket.send(`${seq}`, target.port, target.ip);
    }
  }, intervalMs);
  await new Promise((resolve) => setTimeout(resolve, durationMs));
  clearInterval(timer);
  const stoppedAt = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 200));  // the last replies
  for (const s of sockets) {
    // A flow that went silent and never answered again: its gap runs to the last send.
    const since = s.stats.firstReplyMs === null ? startedAt : s.lastReply;
    if (stoppedAt - since > s.stats.longestGapMs) {
      s.stats.longestGapMs = stoppedAt - since;
      s.stats.gapEndsAt = stoppedAt;
    }
    s.socket.close();
  }
  emit({ event: 'summary', startedAt, stoppedAt, sockets: sockets.map((s) => s.stats) });
}

if (require.main === module) runToolMain('udpGapProbe', USAGE, main);
