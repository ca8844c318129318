// Live progress of a lab download (the demo, the benchmark's large downloads), drawn by progressLine.ts.
// Bytes come from the client's interface counters (the download itself runs in another process and
// reports only at its end); the reals' shares from the running natlb's status, asked over its control
// socket from this process (a unix socket path works across network namespaces), so no extra process
// starts per sample.
import type { BalancerStatus } from "../src/balancer";
import { requestControl } from "../src/control/client";
import { IP_BIN, runIn } from "./netns";
import { ProgressLine, sharesOf, shortRealNames, type ProgressStream, type RealShare } from "./progressLine";
import type { Lab } from "./topology";

/** Per received skb: Ethernet 14 + IPv4 20 + TCP with timestamps 32 bytes of headers (GRO/GSO skbs count once). */
const HEADER_BYTES_PER_PACKET = 66;

export interface DownloadProgressOptions {
  /** Bytes received so far by the downloading side (any origin; progress counts from the first reading). */
  readonly receivedBytes: () => Promise<number | null>;
  readonly label: string;
  readonly bytesTotal: number;
  /** The natlb daemon's control socket, for the reals' shares; without it no shares are shown. */
  readonly controlSocket?: string;
  /** The service whose reals are shown (default: every real of every service). */
  readonly service?: { readonly vip: string; readonly port: number };
  /** false: no progress at all (the body just runs). */
  readonly enabled?: boolean;
  /** Default stderr. */
  readonly stream?: ProgressStream;
  /** Sampling interval. Default 1 s on a terminal, 5 s otherwise. */
  readonly intervalMs?: number;
}

interface IpLinkJson {
  stats64?: { rx?: { bytes?: number; packets?: number } };
}

/** Received payload bytes (estimated: bytes minus headers) of the lab client's interface: a receivedBytes source. */
export function clientReceivedBytes(lab: Pick<Lab, 'client'>): () => Promise<number | null> {
  return () => clientPayloadBytes(lab);
}

async function clientPayloadBytes(lab: Pick<Lab, 'client'>): Promise<number | null> {
  const r = await runIn(null, IP_BIN, ["-n", lab.client.ns, "-j", "-s", "link", "show", "dev", lab.client.ifname], { timeoutMs: 2000 });
  if (r.code !== 0) return null;
  try {
    const rx = (JSON.parse(r.stdout) as IpLinkJson[])[0]?.stats64?.rx;
    if (rx?.bytes === undefined || rx.packets === undefined) return null;
    return rx.bytes - rx.packets * HEADER_BYTES_PER_PACKET;
  } catch {
    return null;
  }
}

/** Each real's share of the service's active connections, from the daemon's status; null when it cannot tell. */
async function realShares(socket: string, service: DownloadProgressOptions["service"]): Promise<RealShare[] | null> {
  try {
    const status = (await requestControl(socket, "GET /status", 2000)) as BalancerStatus;
    const reals = status.services.filter((s) => service === undefined || (s.vip === service.vip && s.port === service.port)).flatMap((s) => s.reals);
    const names = shortRealNames(reals.map((r) => r.ip));
    return sharesOf(reals.map((r, i) => ({ name: names[i]!, count: r.activeConns })));
  } catch {
    return null;
  }
}

/** Runs `body` (the download) with a progress line that samples every interval; the line is cleared at the end. */
export async function withDownloadProgress<T>(options: DownloadProgressOptions, body: () => Promise<T>): Promise<T> {
  if (options.enabled === false) return body();
  const stream = options.stream ?? process.stderr;
  const line = new ProgressLine(stream);
  const intervalMs = options.intervalMs ?? (line.redraws ? 1000 : 5000);
  const base = await options.receivedBytes();
  let previous: { bytes: number; at: number } | null = null;
  let shares: RealShare[] | null = null;
  let stopped = false;
  let sampling: Promise<void> = Promise.resolve();

  const sample = async (): Promise<void> => {
    const [bytes, newShares] = await Promise.all([
      options.receivedBytes(),
      options.controlSocket === undefined ? Promise.resolve(null) : realShares(options.controlSocket, options.service),
    ]);
    if (stopped || bytes === null || base === null) return;
    // Connections that have ended leave the active counts: keep the last shares that had any.
    if (newShares !== null && newShares.some((s) => s.share > 0)) shares = newShares;
    const at = performance.now();
    const done = bytes - base;
    const bitsPerSecond = previous === null || at <= previous.at ? null : ((done - previous.bytes) * 8 * 1000) / (at - previous.at);
    previous = { bytes: done, at };
    line.update({ label: options.label, bytesDone: done, bytesTotal: options.bytesTotal, bitsPerSecond, shares });
  };
  // One sample at a time: a slow `ip` must not pile samples up.
  const timer = setInterval(() => {
    sampling = sampling.then(sample).catch(() => undefined);
  }, intervalMs);
  try {
    return await body();
  } finally {
    stopped = true;
    clearInterval(timer);
    await sampling;
    line.clear();
  }
}
