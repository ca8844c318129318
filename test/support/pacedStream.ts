// A paced TCP stream for the lab (the kernel fast path tests): unlike the blob server, which sends as
// fast as it can, it keeps one connection busy for a known time, then idle without closing it.
//
//   node dist/test/support/pacedStream.js server --port P --chunk-bytes B --interval-ms I --chunks N [--max-seconds S]
//   node dist/test/support/pacedStream.js client --host IP --port P --local-port L --expect-bytes N
//        [--linger-ms M] [--half-close-after-bytes H] [--timeout-ms T]
//
// server: on every connection sends N chunks of B random bytes, one every I ms, then sends nothing more
//   and keeps the connection open until the peer closes it (a half-close by the peer does not stop the
//   stream: the server closes its side once it has sent everything). Prints {"event":"listening"}, then per
//   connection {"event":"sent","peer","peerPort","bytes","sha256","ms"} once the last chunk is written,
//   and {"event":"got","peerPort","bytes"} whenever the client sends something. Exits after S seconds
//   (default 120).
// client: connects from local port L, reads N bytes and prints {"event":"received","bytes","sha256","ms"};
//   then keeps the connection open, idle, for M ms (default 0) and closes it. On SIGUSR1 (while lingering)
//   it writes 1000 bytes on the connection and prints {"event":"wrote","bytes":1000}. Prints
//   {"event":"closed"} and exits 0; {"event":"failed","reason","bytes"} and exit 1 when the connection
//   fails or N bytes have not arrived within T ms (default 60 000). With H, once H bytes have arrived it
//   shuts down its sending side (a FIN; it goes on reading) and prints {"event":"half-closed","bytes"}.
//   Every run is bounded in time.
import { createHash, randomBytes } from "node:crypto";
import net from "node:net";
import { realByIndex, type Lab } from "../../src/lab/topology";
import { ToolArgs, UsageError, emit, emitThenExit, runToolMain } from "../../src/lab/toolArgs";
import { launchTool, type ToolEvent, type ToolProcess } from "../../src/lab/toolProcess";

export interface PacedServerOptions {
  chunkBytes: number;
  intervalMs: number;
  chunks: number;
  /** The server exits by itself after this long. Default 120. */
  maxSeconds?: number;
}

export interface SentEvent {
  peer: string;
  peerPort: number;
  bytes: number;
  sha256: string;
  ms: number;
}

export interface PacedServerHandle {
  readonly tool: ToolProcess;
  /** Waits until the last chunk to the client from `peerPort` has been written. */
  sentTo(peerPort: number, timeoutMs: number): Promise<SentEvent>;
  /** Bytes the client of `peerPort` sent to the server so far. */
  gotFrom(peerPort: number): number;
  stop(): Promise<void>;
}

/** Starts the paced server on real `realIndex` (1-based) and resolves once it listens. */
export async function startPacedServer(lab: Lab, realIndex: number, port: number, opts: PacedServerOptions): Promise<PacedServerHandle> {
  const real = realByIndex(lab, realIndex);
  const args = [
    "server", "--port", String(port), "--chunk-bytes", String(opts.chunkBytes), "--interval-ms", String(opts.intervalMs),
    "--chunks", String(opts.chunks), "--max-seconds", String(opts.maxSeconds ?? 120),
  ];
  const tool = launchTool(lab, real.ns, __filename, args, `pacedServer(r${realIndex}:${port})`);
  await tool.waitUntilListening();
  return {
    tool,
    sentTo: async (peerPort, timeoutMs) => {
      const e = await tool.waitForEvent((e) => e.event === "sent" && e["peerPort"] === peerPort, timeoutMs, `the stream to port ${peerPort}`);
      return { peer: String(e["peer"]), peerPort: Number(e["peerPort"]), bytes: Number(e["bytes"]), sha256: String(e["sha256"]), ms: Number(e["ms"]) };
    },
    gotFrom: (peerPort) =>
      tool.events.filter((e) => e.event === "got" && e["peerPort"] === peerPort).reduce((sum, e) => sum + Number(e["bytes"]), 0),
    stop: async () => {
      await tool.stop();
    },
  };
}

export interface PacedClientOptions {
  host: string;
  port: number;
  localPort: number;
  expectBytes: number;
  lingerMs?: number;
  /** Shut down the client's sending side (FIN) once this many bytes have arrived. */
  halfCloseAfterBytes?: number;
  timeoutMs?: number;
  /** Namespace to run in. Default: the lab's client. */
  ns?: string;
}

export interface PacedClientHandle {
  readonly tool: ToolProcess;
  /** The "received" event: every expected byte arrived. */
  received(timeoutMs: number): Promise<{ bytes: number; sha256: string; ms: number }>;
  /** Asks the lingering client to write 1000 bytes (SIGUSR1) and waits until it did. */
  write(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the paced client (in the lab's client namespace by default); it runs until its work or its timeout ends. */
export function startPacedClient(lab: Lab, opts: PacedClientOptions): PacedClientHandle {
  const args = [
    "client", "--host", opts.host, "--port", String(opts.port), "--local-port", String(opts.localPort),
    "--expect-bytes", String(opts.expectBytes), "--linger-ms", String(opts.lingerMs ?? 0), "--timeout-ms", String(opts.timeoutMs ?? 60_000),
    ...(opts.halfCloseAfterBytes === undefined ? [] : ["--half-close-after-bytes", String(opts.halfCloseAfterBytes)]),
  ];
  const tool = launchTool(lab, opts.ns ?? lab.client.ns, __filename, args, `pacedClient(${opts.localPort})`);
  return {
    tool,
    received: async (timeoutMs) => {
      const event: ToolEvent = await tool.waitForEvent((e) => e.event === "received" || e.event === "failed", timeoutMs, "all the bytes");
      if (event.event === "failed") throw new Error(`paced client failed: ${JSON.stringify(event)}`);
      return { bytes: Number(event["bytes"]), sha256: String(event["sha256"]), ms: Number(event["ms"]) };
    },
    write: async (timeoutMs) => {
      tool.child.kill("SIGUSR1");
      await tool.waitForEvent((e) => e.event === "wrote", timeoutMs, "the write");
    },
    stop: async () => {
      await tool.stop();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The programs.

const USAGE =
  "pacedStream server --port P --chunk-bytes B --interval-ms I --chunks N [--max-seconds S] | " +
  "pacedStream client --host IP --port P --local-port L --expect-bytes N [--linger-ms M] [--half-close-after-bytes H] [--timeout-ms T]";

async function serverMain(a: ToolArgs): Promise<void> {
  const port = a.int("port", { min: 1, max: 65535 }, 9000);
  const chunkBytes = a.int("chunk-bytes", { min: 1, max: 16 * 1024 * 1024 }, 32 * 1024);
  const intervalMs = a.int("interval-ms", { min: 1, max: 10_000 }, 100);
  const chunks = a.int("chunks", { min: 1, max: 100_000 }, 10);
  const maxSeconds = a.int("max-seconds", { min: 1, max: 3600 }, 120);
  a.rejectUnknown();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const peer = socket.remoteAddress?.replace(/^::ffff:/, "") ?? "";
    const peerPort = socket.remotePort ?? 0;
    const hash = createHash("sha256");
    const t0 = Date.now();
    let written = 0;
    let peerEnded = false;
    let timer: NodeJS.Timeout | undefined;
    const sendOne = (): void => {
      if (socket.destroyed) return;
      const chunk = randomBytes(chunkBytes);
      hash.update(chunk);
      written += 1;
      const last = written === chunks;
      socket.write(chunk, () => {
        if (last) emit({ event: "sent", peer, peerPort, bytes: chunks * chunkBytes, sha256: hash.digest("hex"), ms: Date.now() - t0 });
      });
      if (last) {
        clearInterval(timer);
        if (peerEnded) socket.end();
      }
    };
    sendOne();
    if (chunks > 1) timer = setInterval(sendOne, intervalMs);
    socket.on("data", (data: Buffer) => emit({ event: "got", peerPort, bytes: data.length }));
    socket.on("end", () => {
      peerEnded = true;
      if (written === chunks) socket.end();
    });
    socket.on("error", () => undefined);
    socket.on("close", () => clearInterval(timer));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "0.0.0.0", resolve);
  });
  emit({ event: "listening", port, pid: process.pid });
  setTimeout(() => emitThenExit({ event: "exiting", reason: "max-seconds" }, 0), maxSeconds * 1000).unref();
}

async function clientMain(a: ToolArgs): Promise<void> {
  const host = a.requiredString("host");
  const port = a.int("port", { min: 1, max: 65535 }, 80);
  const localPort = a.int("local-port", { min: 1024, max: 65535 }, 40000);
  const expectBytes = a.int("expect-bytes", { min: 1, max: 2 ** 40 }, 1);
  const lingerMs = a.int("linger-ms", { min: 0, max: 600_000 }, 0);
  const halfCloseAfterBytes = a.int("half-close-after-bytes", { min: 1, max: 2 ** 40 });
  const timeoutMs = a.int("timeout-ms", { min: 1, max: 600_000 }, 60_000);
  a.rejectUnknown();
  const t0 = Date.now();
  const hash = createHash("sha256");
  let bytes = 0;
  let done = false;
  const socket = net.connect({ host, port, localPort });
  const fail = (reason: string): void => {
    if (done) return;
    done = true;
    socket.destroy();
    emitThenExit({ event: "failed", reason, bytes }, 1);
  };
  const deadline = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
  let received = false;
  let wrote = false;
  let halfClosed = false;
  process.on("SIGUSR1", () => {
    if (!received || wrote) return;
    wrote = true;
    socket.write(randomBytes(1000), () => emit({ event: "wrote", bytes: 1000 }));
  });
  socket.on("error", (e) => fail(e.message));
  socket.on("close", () => fail("the connection closed"));
  socket.on("data", (data: Buffer) => {
    if (done) return;
    bytes += data.length;
    hash.update(data);
    if (halfCloseAfterBytes !== undefined && bytes >= halfCloseAfterBytes && !halfClosed) {
      halfClosed = true;
      socket.end();
      emit({ event: "half-closed", bytes });
    }
    if (bytes < expectBytes) return;
    done = true;
    received = true;
    clearTimeout(deadline);
    emit({ event: "received", bytes, sha256: hash.digest("hex"), ms: Date.now() - t0 });
    setTimeout(() => {
      socket.destroy();
      emitThenExit({ event: "closed" }, 0);
    }, lingerMs);
  });
}

async function main(argv: string[]): Promise<void> {
  const [mode, ...rest] = argv;
  const a = new ToolArgs(rest);
  if (mode === "server") return serverMain(a);
  if (mode === "client") return clientMain(a);
  throw new UsageError(`the first argument is "server" or "client", got ${JSON.stringify(mode)}`);
}

if (require.main === module) runToolMain("pacedStream", USAGE, main);
