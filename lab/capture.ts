// Packet capture (libpcap through the `cap` package) inside a lab namespace, and its helper.
//
//   node dist/lab/capture.js --if eth0 [--filter "<bpf>"] [--max-packets 10000] [--seconds 30]
//        [--snaplen 65535] [--buffer-mb 16] [--out file.json]
//
// Prints {"event":"ready",...} once the capture is open (packets from then on are seen), stops after
// --max-packets decoded packets, --seconds, or SIGTERM/SIGINT (after a 100 ms flush), writes the
// packets (see CapturedPacket in packetDecode.ts) as a JSON array to --out, prints
// {"event":"done","reason":..,"packets":N,...} (with "data": [packets] when there is no --out) and exits 0.
import type { EventEmitter } from 'node:events';
import { rename, writeFile } from 'node:fs/promises';
import { decodeFrame, type CapturedPacket, type LinkType } from './packetDecode';
import type { Lab } from './topology';
import { ToolArgs, UsageError, emit, emitThenExit, runToolMain } from './toolArgs';
import { ToolError, launchTool, type ToolProcess } from './toolProcess';

export type { CapturedPacket, L4ChecksumState } from './packetDecode';

export interface CaptureOptions {
  /** Interface inside the namespace. Default "eth0". */
  ifname?: string;
  /** BPF filter (pcap-filter syntax). Default: everything. */
  filter?: string;
  /** Stop after this many packets. Default 10 000. */
  maxPackets?: number;
  /** Stop after this long. Default 60. */
  seconds?: number;
  /** Bytes kept of each frame. Default 65535. */
  snaplen?: number;
}

export interface CaptureHandle {
  readonly ns: string;
  readonly ifname: string;
  readonly tool: ToolProcess;
  /** Ends the capture (SIGTERM: it flushes) and returns the packets. */
  stop(): Promise<CapturedPacket[]>;
  /** Waits until the capture ends by itself (max packets / seconds) and returns the packets. */
  finished(timeoutMs: number): Promise<CapturedPacket[]>;
}

/** Starts a capture in `ns` and resolves once the capture is open. */
export async function startCapture(lab: Pick<Lab, 'spawn'>, ns: string, opts: CaptureOptions = {}): Promise<CaptureHandle> {
  const ifname = opts.ifname ?? 'eth0';
  // No --out: the packets come back in the final stdout line, so no temporary file can be left over.
  const args = ['--if', ifname];
  if (opts.filter !== undefined) args.push('--filter', opts.filter);
  args.push('--max-packets', String(opts.maxPackets ?? 10_000));
  args.push('--seconds', String(opts.seconds ?? 60));
  if (opts.snaplen !== undefined) args.push('--snaplen', String(opts.snaplen));
  const tool = launchTool(lab, ns, __filename, args, `capture(${ns}:${ifname})`);
  try {
    await tool.waitForEvent((e) => e.event === 'ready', 15_000, 'the ready line');
  } catch (e) {
    await tool.stop();
    throw e;
  }
  const collect = async (): Promise<CapturedPacket[]> => {
    const exit = await tool.exit;
    const done = tool.events.find((e) => e.event === 'done');
    if (exit.code !== 0 || done === undefined || !Array.isArray(done['data'])) {
      throw new ToolError(`${tool.label} failed (exit code ${exit.code}, signal ${exit.signal})${tool.stderrSuffix()}`);
    }
    return done['data'] as CapturedPacket[];
  };
  let result: Promise<CapturedPacket[]> | undefined;
  return {
    ns,
    ifname,
    tool,
    stop: () => {
      result ??= tool.stop(10_000).then(collect);
      return result;
    },
    finished: async (timeoutMs) => {
      await tool.waitForExit(timeoutMs);
      result ??= collect();
      return result;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The capture program.

const USAGE =
  'capture --if IFNAME [--filter "<bpf>"] [--max-packets 10000] [--seconds 30] [--snaplen 65535] [--buffer-mb 16] [--out file.json]';

/** The part of the `cap` package (no bundled types) this tool uses. */
interface CapSession extends EventEmitter {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  close(): void;
}
interface CapModule {
  Cap: new () => CapSession;
}

async function captureMain(argv: string[]): Promise<void> {
  const a = new ToolArgs(argv);
  const ifname = a.requiredString('if');
  const filter = a.string('filter', '');
  const maxPackets = a.int('max-packets', { min: 1, max: 1_000_000 }, 10_000);
  const seconds = a.int('seconds', { min: 1, max: 3600 }, 30);
  const snaplen = a.int('snaplen', { min: 64, max: 65535 }, 65535);
  const bufferMb = a.int('buffer-mb', { min: 1, max: 1024 }, 16);
  const out = a.string('out');
  a.rejectUnknown();
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(ifname)) throw new UsageError(`--if is not an interface name: "${ifname}"`);

  // Loaded here so that importing the helper does not need the native module.
  const { Cap } = require('cap') as CapModule;
  const session = new Cap();
  const buffer = Buffer.alloc(snaplen);
  let linkType: string;
  try {
    linkType = session.open(ifname, filter, bufferMb * 1024 * 1024, buffer);
  } catch (e) {
    throw new Error(`cannot capture on ${ifname} with filter "${filter}": ${(e as Error).message}`);
  }
  if (linkType !== 'ETHERNET' && linkType !== 'LINUX_SLL') {
    session.close();
    throw new Error(`unsupported link type ${linkType} on ${ifname}`);
  }
  const link: LinkType = linkType;
  const packets: CapturedPacket[] = [];
  let skipped = 0;
  let truncatedFrames = 0;
  let finishing = false;
  const start = process.hrtime.bigint();

  session.on('packet', (nbytes: number, truncated: boolean) => {
    // libpcap hands over a whole batch in one callback run: ignore what comes after the limit.
    if (finishing || packets.length >= maxPackets) return;
    if (truncated) truncatedFrames++;
    const t = Math.round(Number(process.hrtime.bigint() - start) / 1e3) / 1e3;
    const p = decodeFrame(buffer, nbytes, link, t);
    if (p === null) skipped++;
    else packets.push(p);
    if (packets.length >= maxPackets) setImmediate(() => finish('max-packets').catch(fail));
  });

  const finish = async (reason: string): Promise<void> => {
    if (finishing) return;
    finishing = true;
    session.close();
    const json = JSON.stringify(packets);
    if (out !== undefined) {
      // Write then rename: a reader never sees half a file.
      await writeFile(`${out}.part`, json);
      await rename(`${out}.part`, out);
    }
    const done = { event: 'done', reason, packets: packets.length, skipped, truncatedFrames, out: out ?? null };
    emitThenExit(out === undefined ? { ...done, data: packets } : done, 0);
  };
  const fail = (e: unknown): void => {
    process.stderr.write(`capture: ${(e as Error).message}\n`);
    process.exit(1);
  };
  const onSignal = (sig: string): void => {
    // Give libpcap's poll callback a moment to hand over frames already in the ring.
    setTimeout(() => finish(sig).catch(fail), 100);
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  setTimeout(() => finish('seconds').catch(fail), seconds * 1000);
  emit({ event: 'ready', if: ifname, filter, linkType, snaplen, pid: process.pid });
}

if (require.main === module) runToolMain('capture', USAGE, captureMain);
