// UDP echo server (for reals) and client (for the client), and the helpers that run them in the lab.
//
//   node dist/lab/udpEcho.js --mode server [--port 5353] [--host 0.0.0.0] [--ip <own ip>] [--max-seconds 3600] [--quiet]
//     Replies to every datagram with "<own ip> " + the datagram. stdout lines:
//       {"event":"listening","real":..,"port":..}   {"event":"echo","real":..,"peer":..,"peerPort":..,"bytes":..}
//
//   node dist/lab/udpEcho.js --mode client --target IP:PORT [--count 10] [--sockets 1]
//        [--local-port-base P] [--timeout-ms 1000] [--total-timeout-ms 60000] [--payload-bytes 64]
//     Sends request i from socket i % sockets (local port P + socket when given), waits for its reply
//     up to --timeout-ms, then sends the next. Prints one line:
//       {"event":"summary","target":..,"sent":..,"received":..,"lost":[seq..],"late":..,"replies":[..],"seconds":..}
//     Exit code 0 when every request got its reply, 1 otherwise, 2 on bad arguments.
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { realByIndex, type Lab, type LabHost } from './topology';
import { ToolArgs, UsageError, emit, emitThenExit, isIpv4, runToolMain } from './toolArgs';
import { ToolError, launchTool, type ToolProcess } from './toolProcess';

export const DEFAULT_UDP_PORT = 5353;

export interface UdpReply {
  seq: number;
  /** Index of the client socket that sent the request. */
  socket: number;
  localPort: number;
  /** "address:port" the reply came from (the VIP:port when NAT works). */
  from: string;
  fromAddress: string;
  fromPort: number;
  /** The real server that answered (prefix of the reply). */
  real: string;
  rttMs: number;
}

export interface UdpClientSummary {
  target: string;
  sent: number;
  received: number;
  /** Sequence numbers without a reply in time. */
  lost: number[];
  /** Replies that arrived after their request timed out, or did not match a request. */
  late: number;
  replies: UdpReply[];
  seconds: number;
}

export interface UdpEchoEvent {
  real: string;
  peer: string;
  peerPort: number;
  bytes: number;
}

export interface UdpEchoHandle {
  readonly real: LabHost;
  readonly port: number;
  readonly tool: ToolProcess;
  /** Datagrams echoed so far. */
  echoes(): UdpEchoEvent[];
  stop(): Promise<void>;
}

export interface UdpClientOptions {
  /** Destination address (VIP or a real). */
  host: string;
  port: number;
  count: number;
  sockets?: number;
  localPortBase?: number;
  /** Per-request reply timeout. Default 1000 ms. */
  timeoutMs?: number;
  /** Whole run. Default 60 000 ms. */
  totalTimeoutMs?: number;
  payloadBytes?: number;
  /** Namespace to run in. Default: the lab's client. */
  ns?: string;
}

export interface UdpEchoServerOptions {
  /** No line per echo (floods: a line per datagram would cost more than the echo). echoes() then stays empty. */
  quiet?: boolean;
  /** The address to bind (default 0.0.0.0). A direct-routing real binds the VIP, so its replies come from it. */
  host?: string;
}

/** Starts the UDP echo server in real `realIndex` (1-based) and resolves once it is bound. */
export async function startUdpEcho(
  lab: Lab,
  realIndex: number,
  port: number = DEFAULT_UDP_PORT,
  options: UdpEchoServerOptions = {},
): Promise<UdpEchoHandle> {
  const real = realByIndex(lab, realIndex);
  const args = ['--mode', 'server', '--port', String(port), '--ip', real.ip, ...(options.quiet === true ? ['--quiet'] : [])];
  if (options.host !== undefined) args.push('--host', options.host);
  const tool = launchTool(lab, real.ns, __filename, args, `udpEcho(r${realIndex}:${port})`);
  await tool.waitUntilListening();
  return {
    real,
    port,
    tool,
    echoes: () =>
      tool.events
        .filter((e) => e.event === 'echo')
        .map((e) => ({ real: String(e['real']), peer: String(e['peer']), peerPort: Number(e['peerPort']), bytes: Number(e['bytes']) })),
    stop: async () => {
      await tool.stop();
    },
  };
}

/** Runs the UDP client (in the client namespace by default) and returns its summary. */
export async function runUdpClient(lab: Lab, opts: UdpClientOptions): Promise<UdpClientSummary> {
  const totalTimeoutMs = opts.totalTimeoutMs ?? 60_000;
  const args = ['--mode', 'client', '--target', `${opts.host}:${opts.port}`, '--count', String(opts.count)];
  args.push('--total-timeout-ms', String(totalTimeoutMs));
  if (opts.sockets !== undefined) args.push('--sockets', String(opts.sockets));
  if (opts.localPortBase !== undefined) args.push('--local-port-base', String(opts.localPortBase));
  if (opts.timeoutMs !== undefined) args.push('--timeout-ms', String(opts.timeoutMs));
  if (opts.payloadBytes !== undefined) args.push('--payload-bytes', String(opts.payloadBytes));
  const tool = launchTool(lab, opts.ns ?? lab.client.ns, __filename, args, 'udpEcho client');
  const exit = await tool.waitForExit(totalTimeoutMs + 15_000);
  const summary = tool.events.find((e) => e.event === 'summary');
  if (summary === undefined) {
    throw new ToolError(`udpEcho client printed no summary (exit code ${exit.code}, signal ${exit.signal})${tool.stderrSuffix()}`);
  }
  return summary as unknown as UdpClientSummary;
}

// ---------------------------------------------------------------------------------------------
// The programs.

const USAGE =
  'udpEcho --mode server [--port 5353] [--host 0.0.0.0] [--ip A] [--max-seconds 3600] [--quiet]\n' +
  '       udpEcho --mode client --target IP:PORT [--count 10] [--sockets 1] [--local-port-base P] [--timeout-ms 1000] [--total-timeout-ms 60000] [--payload-bytes 64]';

function ownIp(): string | undefined {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

async function serverMain(a: ToolArgs): Promise<void> {
  const port = a.int('port', { min: 1, max: 65535 }, DEFAULT_UDP_PORT);
  const host = a.string('host', '0.0.0.0');
  const ip = a.string('ip') ?? ownIp();
  const maxSeconds = a.int('max-seconds', { min: 1, max: 7 * 86400 }, 3600);
  const quiet = a.flag('quiet');
  a.rejectUnknown();
  if (!isIpv4(host)) throw new UsageError(`--host must be IPv4, got "${host}"`);
  if (ip === undefined || !isIpv4(ip)) throw new UsageError('no IPv4 address found for the reply prefix: pass --ip');
  const sock = dgram.createSocket('udp4');
  const prefix = Buffer.from(`${ip} `, 'latin1');
  sock.on('message', (msg, rinfo) => {
    sock.send(Buffer.concat([prefix, msg]), rinfo.port, rinfo.address);
    if (!quiet) emit({ event: 'echo', real: ip, peer: rinfo.address, peerPort: rinfo.port, bytes: msg.length });
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, host, () => resolve());
  });
  emit({ event: 'listening', real: ip, port, pid: process.pid });
  const shutdown = (reason: string): void => {
    sock.close();
    emitThenExit({ event: 'exit', reason }, 0);
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  setTimeout(() => shutdown('max-seconds'), maxSeconds * 1000).unref();
}

async function clientMain(a: ToolArgs): Promise<void> {
  const target = a.requiredString('target');
  const count = a.int('count', { min: 1, max: 100_000 }, 10);
  const nSockets = a.int('sockets', { min: 1, max: 1024 }, 1);
  const localPortBase = a.int('local-port-base', { min: 1024, max: 65535 });
  const timeoutMs = a.int('timeout-ms', { min: 1, max: 60_000 }, 1000);
  const totalTimeoutMs = a.int('total-timeout-ms', { min: 1, max: 3_600_000 }, 60_000);
  const payloadBytes = a.int('payload-bytes', { min: 32, max: 8192 }, 64);
  a.rejectUnknown();
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(target);
  if (m === null || !isIpv4(m[1] as string) || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new UsageError(`--target must be IPv4:port, got "${target}"`);
  }
  if (localPortBase !== undefined && localPortBase + nSockets - 1 > 65535) {
    throw new UsageError(`--local-port-base ${localPortBase} + --sockets ${nSockets} runs past port 65535`);
  }
  const host = m[1] as string;
  const port = Number(m[2]);
  const nonce = randomBytes(4).toString('hex');
  const marker = new RegExp(`^(\\S+) natlb-udp ${nonce} (\\d+) `);

  const pending = new Map<number, (reply: Omit<UdpReply, 'seq' | 'socket' | 'localPort' | 'rttMs'>) => void>();
  let late = 0;
  const sockets: dgram.Socket[] = [];
  for (let j = 0; j < nSockets; j++) {
    const s = dgram.createSocket('udp4');
    s.on('message', (msg, rinfo) => {
      const mm = marker.exec(msg.toString('latin1'));
      const resolve = mm === null ? undefined : pending.get(Number(mm[2]));
      if (mm === null || resolve === undefined) {
        late++;
        return;
      }
      resolve({ from: `${rinfo.address}:${rinfo.port}`, fromAddress: rinfo.address, fromPort: rinfo.port, real: mm[1] as string });
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(localPortBase === undefined ? 0 : localPortBase + j, () => resolve());
    });
    sockets.push(s);
  }

  const replies: UdpReply[] = [];
  const lost: number[] = [];
  let sent = 0;
  const start = process.hrtime.bigint();
  const deadline = Date.now() + totalTimeoutMs;
  for (let seq = 0; seq < count; seq++) {
    const left = deadline - Date.now();
    if (left <= 0) {
      lost.push(seq);
      continue;
    }
    const socketIndex = seq % nSockets;
    const s = sockets[socketIndex] as dgram.Socket;
    const head = `natlb-udp ${nonce} ${seq} `;
    const payload = Buffer.alloc(Math.max(payloadBytes, head.length + 1), 'x');
    payload.write(head, 'latin1');
    const t0 = process.hrtime.bigint();
    const reply = await new Promise<Omit<UdpReply, 'seq' | 'socket' | 'localPort' | 'rttMs'> | undefined>((resolve) => {
      const timer = setTimeout(() => {
        pending.delete(seq);
        resolve(undefined);
      }, Math.min(timeoutMs, left));
      pending.set(seq, (r) => {
        clearTimeout(timer);
        pending.delete(seq);
        resolve(r);
      });
      s.send(payload, port, host, (err) => {
        if (err) {
          process.stderr.write(`udpEcho: send ${seq}: ${err.message}\n`);
        }
      });
      sent++;
    });
    if (reply === undefined) {
      lost.push(seq);
      continue;
    }
    const rttMs = Math.round((Number(process.hrtime.bigint() - t0) / 1e6) * 1000) / 1000;
    replies.push({ seq, socket: socketIndex, localPort: s.address().port, rttMs, ...reply });
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  for (const s of sockets) s.close();
  const summary: UdpClientSummary = { target, sent, received: replies.length, lost, late, replies, seconds: Math.round(seconds * 1e6) / 1e6 };
  emit({ event: 'summary', ...summary });
  process.exitCode = lost.length === 0 ? 0 : 1;
}

async function main(argv: string[]): Promise<void> {
  const a = new ToolArgs(argv, ['quiet']);
  const mode = a.requiredString('mode');
  if (mode === 'server') return serverMain(a);
  if (mode === 'client') return clientMain(a);
  throw new UsageError(`--mode must be "server" or "client", got "${mode}"`);
}

if (require.main === module) runToolMain('udpEcho', USAGE, main);
