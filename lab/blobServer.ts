// HTTP server for a real server's namespace, and the helper that starts it there.
//
//   node dist/lab/blobServer.js [--port 8080] [--host 0.0.0.0] [--ip <own ip>] [--max-seconds 3600] [--cache-mb 256]
//
//   GET /blob?bytes=N&seed=S  N deterministic bytes (see blobContent.ts), header X-Real: <own ip>
//   GET /id                   "<own ip>\n"
//   GET /health               "ok\n" (for health checkers)
//
// stdout, one JSON object per line:
//   {"event":"listening","real":"198.18.1.11","port":8080,"pid":123}
//   {"event":"served","path":"/blob","real":"198.18.1.11","peer":"198.18.0.2","peerPort":40001,"bytes":N,"sha256":"..","ms":12.3}
//   {"event":"aborted", ...same fields, bytes = bytes written before the connection closed}
//   {"event":"health","real":..,"peer":..,"peerPort":..}
import { createHash, type Hash } from 'node:crypto';
import http from 'node:http';
import { networkInterfaces } from 'node:os';
import { BLOB_CHUNK, BlobChunkCache, BlobGenerator } from './blobContent';
import { realByIndex, type Lab, type LabHost } from './topology';
import { ToolArgs, UsageError, emit, emitThenExit, isIpv4, runToolMain } from './toolArgs';
import { launchTool, type ToolEvent, type ToolProcess } from './toolProcess';
import { waitUntil } from './wait';

export const DEFAULT_BLOB_PORT = 8080;
/** Largest blob a request may ask for (1 TiB): bounds every response. */
export const MAX_BLOB_BYTES = 2 ** 40;

export interface ServedEvent {
  event: 'served' | 'aborted';
  path: string;
  real: string;
  peer: string;
  peerPort: number;
  bytes: number;
  sha256: string;
  ms: number;
}

export interface BlobServerHandle {
  readonly real: LabHost;
  readonly port: number;
  readonly tool: ToolProcess;
  /** Completed responses so far (in completion order). */
  served(): ServedEvent[];
  /** Responses whose connection closed before the body was complete. */
  aborted(): ServedEvent[];
  /** Resolves with served() once it holds at least `count` events; throws after `timeoutMs`. */
  waitForServed(count: number, timeoutMs: number): Promise<ServedEvent[]>;
  /** Stops the server (SIGTERM, then SIGKILL after 2 s). */
  stop(): Promise<void>;
}

export interface BlobServerOptions {
  /** Server exits by itself after this long. Default 3600. */
  maxSeconds?: number;
  /** How long to wait for the listening line. Default 15 000 ms. */
  readyTimeoutMs?: number;
  /** Keystream kept in memory so repeated downloads cost no AES (MiB, 0 = none). Default 256. */
  cacheMb?: number;
}

/**
 * Starts the blob server in real `realIndex` (1-based: 1 = r1 = 198.18.1.11) and resolves once it
 * listens.
 */
export async function startBlobServer(
  lab: Pick<Lab, 'reals' | 'spawn'>,
  realIndex: number,
  port: number = DEFAULT_BLOB_PORT,
  opts: BlobServerOptions = {},
): Promise<BlobServerHandle> {
  const real = realByIndex(lab, realIndex);
  const args = ['--port', String(port), '--ip', real.ip, '--max-seconds', String(opts.maxSeconds ?? 3600)];
  if (opts.cacheMb !== undefined) args.push('--cache-mb', String(opts.cacheMb));
  const tool = launchTool(lab, real.ns, __filename, args, `blobServer(r${realIndex}:${port})`);
  await tool.waitUntilListening(opts.readyTimeoutMs ?? 15_000);
  const pick = (kind: ServedEvent['event']): ServedEvent[] =>
    tool.events.filter((e) => e.event === kind).map((e) => toServedEvent(e));
  return {
    real,
    port,
    tool,
    served: () => pick('served'),
    aborted: () => pick('aborted'),
    waitForServed: async (count, timeoutMs) => {
      await waitUntil(
        `${count} served responses from ${real.ip}:${port}`,
        () => {
          if (!tool.running && pick('served').length < count) {
            throw new Error(`the server exited${tool.stderrSuffix()}`);
          }
          return pick('served').length >= count;
        },
        timeoutMs,
        20,
      );
      return pick('served');
    },
    stop: async () => {
      await tool.stop();
    },
  };
}

function toServedEvent(e: ToolEvent): ServedEvent {
  return {
    event: e.event === 'aborted' ? 'aborted' : 'served',
    path: String(e['path']),
    real: String(e['real']),
    peer: String(e['peer']),
    peerPort: Number(e['peerPort']),
    bytes: Number(e['bytes']),
    sha256: String(e['sha256']),
    ms: Number(e['ms']),
  };
}

// ---------------------------------------------------------------------------------------------
// The server program.

const USAGE = 'blobServer [--port 8080] [--host 0.0.0.0] [--ip <address for X-Real>] [--max-seconds 3600] [--cache-mb 256]';

/** First non-internal IPv4 address of this namespace (eth0 preferred). */
function ownIp(): string | undefined {
  const ifs = networkInterfaces();
  const names = ['eth0', ...Object.keys(ifs).filter((n) => n !== 'eth0')];
  for (const name of names) {
    for (const a of ifs[name] ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

/** sha256 of (seed, bytes) blobs already served in full: repeated downloads cost no hashing. */
const shaCache = new Map<string, string>();
/** Keystream kept in memory per seed (shared budget, --cache-mb): repeated downloads cost no AES. */
const chunkCaches = new Map<string, BlobChunkCache>();
const cacheBudget = { bytes: 0 };

function chunkCache(seed: string): BlobChunkCache {
  let c = chunkCaches.get(seed);
  if (c === undefined) {
    c = new BlobChunkCache(seed, cacheBudget);
    chunkCaches.set(seed, c);
  }
  return c;
}

async function serveBlob(req: http.IncomingMessage, res: http.ServerResponse, url: URL, ip: string): Promise<void> {
  const bytesParam = url.searchParams.get('bytes') ?? '';
  const seed = url.searchParams.get('seed') ?? 'natlb';
  if (!/^\d+$/.test(bytesParam) || Number(bytesParam) > MAX_BLOB_BYTES) {
    res.writeHead(400, { 'Content-Type': 'text/plain', 'X-Real': ip });
    res.end(`bytes must be an integer in 0..${MAX_BLOB_BYTES}\n`);
    return;
  }
  const bytes = Number(bytesParam);
  const key = `${bytes}:${seed}`;
  const cached = shaCache.get(key);
  const hash: Hash | undefined = cached === undefined ? createHash('sha256') : undefined;
  const started = process.hrtime.bigint();
  const peer = req.socket.remoteAddress ?? '';
  const peerPort = req.socket.remotePort ?? 0;
  let written = 0;
  let finished = false;
  const report = (event: 'served' | 'aborted'): void => {
    const sha256 = event === 'served' ? (cached ?? hash?.digest('hex') ?? '') : '';
    if (event === 'served' && cached === undefined) shaCache.set(key, sha256);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    emit({ event, path: '/blob', real: ip, peer, peerPort, bytes: written, sha256, ms: Math.round(ms * 1000) / 1000 });
  };
  res.once('finish', () => {
    finished = true;
    report('served');
  });
  res.once('close', () => {
    if (!finished) report('aborted');
  });
  res.writeHead(200, {
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(bytes),
    'X-Real': ip,
    'X-Blob-Seed': seed,
  });
  const cache = chunkCache(seed);
  let gen: BlobGenerator | undefined;
  for (let index = 0; written < bytes; index++) {
    if (res.destroyed) return;
    const n = Math.min(BLOB_CHUNK, bytes - written);
    let chunk = gen === undefined ? cache.chunk(index) : undefined;
    if (chunk === undefined) {
      // Past the cached prefix (always at a chunk boundary, so `written` is a multiple of 16).
      gen ??= new BlobGenerator(seed, written);
      chunk = gen.next(n);
    } else if (n < chunk.length) {
      chunk = chunk.subarray(0, n);
    }
    hash?.update(chunk);
    written += chunk.length;
    if (!res.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    }
  }
  res.end();
}

function serveSmall(req: http.IncomingMessage, res: http.ServerResponse, ip: string, path: string, body: string): void {
  const peer = req.socket.remoteAddress ?? '';
  const peerPort = req.socket.remotePort ?? 0;
  const started = process.hrtime.bigint();
  res.once('finish', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (path === '/health') emit({ event: 'health', real: ip, peer, peerPort });
    else {
      const sha256 = createHash('sha256').update(body).digest('hex');
      emit({ event: 'served', path, real: ip, peer, peerPort, bytes: Buffer.byteLength(body), sha256, ms: Math.round(ms * 1000) / 1000 });
    }
  });
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': String(Buffer.byteLength(body)), 'X-Real': ip });
  res.end(body);
}

async function serverMain(argv: string[]): Promise<void> {
  const a = new ToolArgs(argv);
  const port = a.int('port', { min: 1, max: 65535 }, DEFAULT_BLOB_PORT);
  const host = a.string('host', '0.0.0.0');
  const ip = a.string('ip') ?? ownIp();
  const maxSeconds = a.int('max-seconds', { min: 1, max: 7 * 86400 }, 3600);
  cacheBudget.bytes = a.int('cache-mb', { min: 0, max: 16384 }, 256) * 1024 * 1024;
  a.rejectUnknown();
  if (!isIpv4(host)) throw new UsageError(`--host must be an IPv4 address, got "${host}"`);
  if (ip === undefined || !isIpv4(ip)) throw new UsageError('no IPv4 address found for X-Real: pass --ip');

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET') {
      res.writeHead(405, { 'Content-Type': 'text/plain', 'X-Real': ip });
      res.end('only GET\n');
    } else if (url.pathname === '/blob') {
      serveBlob(req, res, url, ip).catch((e: unknown) => {
        process.stderr.write(`blobServer: ${(e as Error).message}\n`);
        res.destroy();
      });
    } else if (url.pathname === '/id') {
      serveSmall(req, res, ip, '/id', `${ip}\n`);
    } else if (url.pathname === '/health') {
      serveSmall(req, res, ip, '/health', 'ok\n');
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain', 'X-Real': ip });
      res.end('try /blob?bytes=N&seed=S, /id or /health\n');
    }
  });
  server.keepAliveTimeout = 5000;
  server.on('clientError', (_e, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: 4096 }, () => resolve());
  });
  emit({ event: 'listening', real: ip, port, pid: process.pid });

  const shutdown = (reason: string): void => {
    server.closeAllConnections();
    server.close();
    emitThenExit({ event: 'exit', reason }, 0);
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  setTimeout(() => shutdown('max-seconds'), maxSeconds * 1000).unref();
}

if (require.main === module) runToolMain('blobServer', USAGE, serverMain);
