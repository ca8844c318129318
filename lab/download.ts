// HTTP download client for the client namespace, and the helper that runs it there.
//
//   node dist/lab/download.js --url http://198.18.0.100:8080/blob?bytes=N&seed=S
//        [--conns K] [--count M] [--local-port-base P] [--local-address A] [--timeout-ms T] [--no-sha]
//
// Runs M GET requests, K at a time, one connection each (request i from local port P+i when
// --local-port-base is given: benchmark variants use distinct ranges, see docs/development.md, "Traps already met": PAWS).
// All requests end by --timeout-ms (default 60 000). Prints one JSON line:
//   {"event":"summary","url":..,"results":[{index,localPort,status,bytes,sha256,real,ms,error?}],
//    "ok":M,"failed":0,"totalBytes":..,"seconds":..,"gbps":..}
// Exit code 0 when every request got a complete 2xx body, 1 otherwise, 2 on bad arguments.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { Lab } from './topology';
import { ToolArgs, UsageError, emit, isIpv4, runToolMain } from './toolArgs';
import { ToolError, launchTool } from './toolProcess';

export interface DownloadResult {
  index: number;
  /** Local port the connection used (null if it never got one). */
  localPort: number | null;
  status: number | null;
  bytes: number;
  /** sha256 (hex) of the body; null with --no-sha or when nothing arrived. */
  sha256: string | null;
  /** X-Real header of the response: which real server answered. */
  real: string | null;
  ms: number;
  error?: string;
}

export interface DownloadSummary {
  url: string;
  results: DownloadResult[];
  ok: number;
  failed: number;
  totalBytes: number;
  seconds: number;
  gbps: number;
}

export interface DownloadOptions {
  url: string;
  /** Parallel connections. Default 1. */
  conns?: number;
  /** Requests in total. Default = conns. */
  count?: number;
  /** Request i binds local port localPortBase + i. Default: ephemeral ports. */
  localPortBase?: number;
  localAddress?: string;
  /** Deadline for the whole run. Default 60 000 ms. */
  timeoutMs?: number;
  /** Hash bodies (default true); false saves client CPU in benchmarks. */
  sha?: boolean;
  /** Namespace to run in. Default: the lab's client. */
  ns?: string;
}

/** http://host:port/blob?bytes=N&seed=S */
export function blobUrl(host: string, port: number, bytes: number, seed: string): string {
  return `http://${host}:${port}/blob?bytes=${bytes}&seed=${encodeURIComponent(seed)}`;
}

/** Runs the download tool in the client namespace and returns its summary (also when some requests failed). */
export async function runDownload(lab: Pick<Lab, 'client' | 'spawn'>, opts: DownloadOptions): Promise<DownloadSummary> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const args = ['--url', opts.url, '--timeout-ms', String(timeoutMs)];
  if (opts.conns !== undefined) args.push('--conns', String(opts.conns));
  if (opts.count !== undefined) args.push('--count', String(opts.count));
  if (opts.localPortBase !== undefined) args.push('--local-port-base', String(opts.localPortBase));
  if (opts.localAddress !== undefined) args.push('--local-address', opts.localAddress);
  if (opts.sha === false) args.push('--no-sha');
  const tool = launchTool(lab, opts.ns ?? lab.client.ns, __filename, args, 'download');
  const exit = await tool.waitForExit(timeoutMs + 15_000);
  const summary = tool.events.find((e) => e.event === 'summary');
  if (summary === undefined) {
    throw new ToolError(`download printed no summary (exit code ${exit.code}, signal ${exit.signal})${tool.stderrSuffix()}`);
  }
  return summary as unknown as DownloadSummary;
}

// ---------------------------------------------------------------------------------------------
// The client program.

const USAGE =
  'download --url http://IP:PORT/PATH [--conns K] [--count M] [--local-port-base P] [--local-address A] [--timeout-ms T] [--no-sha]';

interface Plan {
  host: string;
  port: number;
  path: string;
  conns: number;
  count: number;
  localPortBase: number | undefined;
  localAddress: string | undefined;
  timeoutMs: number;
  sha: boolean;
}

function parse(argv: string[]): Plan & { url: string } {
  const a = new ToolArgs(argv, ['no-sha']);
  const url = a.requiredString('url');
  const conns = a.int('conns', { min: 1, max: 1024 }, 1);
  const count = a.int('count', { min: 1, max: 100_000 }, conns);
  const localPortBase = a.int('local-port-base', { min: 1024, max: 65535 });
  const localAddress = a.string('local-address');
  const timeoutMs = a.int('timeout-ms', { min: 1, max: 3_600_000 }, 60_000);
  const sha = !a.flag('no-sha');
  a.rejectUnknown();
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--url is not a URL: "${url}"`);
  }
  if (parsed.protocol !== 'http:' || !isIpv4(parsed.hostname)) {
    throw new UsageError(`--url must be http://<IPv4>:<port>/..., got "${url}"`);
  }
  if (localPortBase !== undefined && localPortBase + count - 1 > 65535) {
    throw new UsageError(`--local-port-base ${localPortBase} + --count ${count} runs past port 65535`);
  }
  if (localAddress !== undefined && !isIpv4(localAddress)) throw new UsageError(`--local-address must be IPv4, got "${localAddress}"`);
  return {
    url,
    host: parsed.hostname,
    port: parsed.port === '' ? 80 : Number(parsed.port),
    path: `${parsed.pathname}${parsed.search}`,
    conns,
    count,
    localPortBase,
    localAddress,
    timeoutMs,
    sha,
  };
}

function fetchOne(plan: Plan, index: number, inflight: Set<http.ClientRequest>): Promise<DownloadResult> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const hash = plan.sha ? createHash('sha256') : undefined;
    const requestedPort = plan.localPortBase === undefined ? undefined : plan.localPortBase + index;
    let localPort: number | null = requestedPort ?? null;
    let status: number | null = null;
    let real: string | null = null;
    let bytes = 0;
    let expected: number | undefined;
    let settled = false;
    const req = http.request({
      host: plan.host,
      port: plan.port,
      path: plan.path,
      method: 'GET',
      agent: false,
      localPort: requestedPort,
      localAddress: plan.localAddress,
      headers: { Connection: 'close' },
    });
    inflight.add(req);
    const done = (error?: string): void => {
      if (settled) return;
      settled = true;
      inflight.delete(req);
      const ms = Math.round((Number(process.hrtime.bigint() - t0) / 1e6) * 1000) / 1000;
      const sha256 = hash !== undefined && (bytes > 0 || error === undefined) ? hash.digest('hex') : null;
      const r: DownloadResult = { index, localPort, status, bytes, sha256, real, ms };
      if (error !== undefined) r.error = error;
      resolve(r);
    };
    req.on('socket', (s) => {
      s.once('connect', () => {
        localPort = s.localPort ?? localPort;
      });
    });
    req.on('response', (res) => {
      status = res.statusCode ?? null;
      const xr = res.headers['x-real'];
      real = typeof xr === 'string' ? xr : null;
      const cl = res.headers['content-length'];
      expected = cl === undefined ? undefined : Number(cl);
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash?.update(chunk);
      });
      res.on('end', () => {
        if (!res.complete) done('connection closed before the body was complete');
        else if (expected !== undefined && bytes !== expected) done(`short body: ${bytes} of ${expected} bytes`);
        else if (status === null || status < 200 || status > 299) done(`HTTP ${status}`);
        else done();
      });
      res.on('error', (e) => done(e.message));
      res.on('close', () => done(`connection closed after ${bytes} bytes`));
    });
    req.on('error', (e: NodeJS.ErrnoException) => done(e.code ? `${e.code}: ${e.message}` : e.message));
    req.on('close', () => {
      if (status === null) done('connection closed before a response');
    });
    req.end();
  });
}

async function clientMain(argv: string[]): Promise<void> {
  const plan = parse(argv);
  const results: DownloadResult[] = new Array<DownloadResult>(plan.count);
  const inflight = new Set<http.ClientRequest>();
  let timedOut = false;
  const start = process.hrtime.bigint();
  const timer = setTimeout(() => {
    timedOut = true;
    for (const r of inflight) r.destroy(new Error(`deadline of ${plan.timeoutMs} ms reached`));
  }, plan.timeoutMs);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (!timedOut && next < plan.count) {
      const i = next++;
      results[i] = await fetchOne(plan, i, inflight);
    }
  };
  await Promise.all(Array.from({ length: Math.min(plan.conns, plan.count) }, worker));
  clearTimeout(timer);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  for (let i = 0; i < plan.count; i++) {
    results[i] ??= {
      index: i,
      localPort: plan.localPortBase === undefined ? null : plan.localPortBase + i,
      status: null,
      bytes: 0,
      sha256: null,
      real: null,
      ms: 0,
      error: `not started: deadline of ${plan.timeoutMs} ms reached`,
    };
  }
  const totalBytes = results.reduce((s, r) => s + r.bytes, 0);
  const failed = results.filter((r) => r.error !== undefined).length;
  const summary: DownloadSummary = {
    url: plan.url,
    results,
    ok: plan.count - failed,
    failed,
    totalBytes,
    seconds: Math.round(seconds * 1e6) / 1e6,
    gbps: seconds > 0 ? Math.round(((totalBytes * 8) / seconds / 1e9) * 1000) / 1000 : 0,
  };
  emit({ event: 'summary', ...summary });
  process.exitCode = failed === 0 ? 0 : 1;
}

if (require.main === module) runToolMain('download', USAGE, clientMain);
