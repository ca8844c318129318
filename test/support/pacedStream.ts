// The lab's TCP stream tool: a server on a real that sends each connection a stream of random bytes,
// paced (one chunk every I ms, so a connection stays busy for a known time) or as fast as the socket
// takes them, and a client that reads the stream (and may upload one). The kernel fast path and
// front-line tests hold a paced stream open after its last byte (the connection then idles, unlike a
// blob server's); the router-duty and dead-real tests end streams with a FIN, upload, and read the
// "closed" reports of reset connections.
//
//   node dist/test/support/pacedStream.js server --port P [--send-bytes N] [--chunk-bytes B] [--interval-ms I]
//        [--hold-open] [--max-seconds S]
//   node dist/test/support/pacedStream.js client --host IP --port P --local-port L [--send-bytes N] [--expect-bytes N]
//        [--linger-ms M] [--half-close-after-bytes H] [--timeout-ms T] [--progress-ms M]
//
// server: on every connection prints {"event":"accepted","peer","peerPort","t"}; sends N random bytes
//   (default 0), B at a time (default 64 KiB), one chunk every I ms or, when I is 0 (default), as fast as
//   the socket takes them; once the last byte is written {"event":"sent","peer","peerPort","bytes",
//   "sha256","ms","t"} and its FIN, or with --hold-open no FIN: the connection stays open until the
//   peer's FIN. What the peer sends: {"event":"got","peerPort","bytes"} per read, and at the peer's FIN
//   {"event":"received","peerPort","bytes","sha256","t"} (then the server closes its side, when it has
//   nothing left to send). At the end {"event":"closed","peerPort","reason","sent","received","t"},
//   reason "closed" or the socket error (ECONNRESET when the connection was reset). Exits after S
//   seconds (default 120).
// client: connects from local port L ({"event":"connected","localPort","t"}); with N to send, sends N
//   random bytes then its FIN ({"event":"sent","bytes","sha256","t"}). Reads until the server's FIN:
//   {"event":"done","bytes","sha256","t"}, exit 0. With --expect-bytes N (a held-open stream sends no
//   FIN) until N bytes have arrived: {"event":"received","bytes","sha256","ms","t"}; then it keeps the
//   connection open, idle, for M ms (default 0), closes it, prints {"event":"closed"} and exits 0; on
//   SIGUSR1 while it lingers it writes 1000 bytes ({"event":"wrote","bytes":1000}). With H, once H bytes
//   have arrived it shuts down its sending side (a FIN; it goes on reading): {"event":"half-closed",
//   "bytes"}. Every M ms (default 0: never) {"event":"progress","bytes","t"}, so a stalled connection
//   shows. A socket error, a close before the end, or no end within T ms (default 60 000):
//   {"event":"failed","reason","bytes","t"}, exit 1.
// Every run is bounded in time. Every "t" is the wall clock in ms, comparable with the "time" of
// natlb's log lines.
import { createHash, randomBytes, type Hash } from "node:crypto";
import net from "node:net";
import { realByIndex, type Lab, type LabHost } from "../../lab/topology";
import { ToolArgs, UsageError, emit, emitThenExit, runToolMain } from "../../lab/toolArgs";
import { launchTool, type ToolEvent, type ToolProcess } from "../../lab/toolProcess";
import { sleep, waitUntil } from "../../lab/wait";

// ---------------------------------------------------------------------------------------------
// The server, seen from the test.

export interface StreamServerOptions {
  /** Bytes sent to every connection. Default 0: the server only receives. */
  sendBytes?: number;
  /** Default 64 KiB. */
  chunkBytes?: number;
  /** One chunk every this many ms; 0 (default): as fast as the socket takes them. */
  intervalMs?: number;
  /** After the last byte, no FIN: the connection stays open until the peer's FIN. */
  holdOpen?: boolean;
  /** The server exits by itself after this long. Default 120. */
  maxSeconds?: number;
}

export interface SentEvent {
  peer: string;
  peerPort: number;
  bytes: number;
  sha256: string;
  /** From the accept to the last byte written. */
  ms: number;
}

export interface StreamServerHandle {
  readonly real: LabHost;
  readonly tool: ToolProcess;
  /** Client ports of the connections accepted so far. */
  acceptedPorts(): number[];
  accepted(peerPort: number, timeoutMs: number): Promise<ToolEvent>;
  /** The "sent", "received" or "closed" event of the connection from `peerPort`. */
  event(kind: "sent" | "received" | "closed", peerPort: number, timeoutMs: number): Promise<ToolEvent>;
  /** Waits until the last byte to the client from `peerPort` has been written. */
  sentTo(peerPort: number, timeoutMs: number): Promise<SentEvent>;
  /** Bytes the client of `peerPort` sent to the server so far. */
  gotFrom(peerPort: number): number;
  stop(): Promise<void>;
}

/** Starts the stream server on real `realIndex` (1-based) and resolves once it listens. */
export async function startStreamServer(lab: Lab, realIndex: number, port: number, opts: StreamServerOptions = {}): Promise<StreamServerHandle> {
  const real = realByIndex(lab, realIndex);
  const args = [
    "server", "--port", String(port), "--send-bytes", String(opts.sendBytes ?? 0), "--chunk-bytes", String(opts.chunkBytes ?? 64 * 1024),
    "--interval-ms", String(opts.intervalMs ?? 0), "--max-seconds", String(opts.maxSeconds ?? 120), ...(opts.holdOpen === true ? ["--hold-open"] : []),
  ];
  const tool = launchTool(lab, real.ns, __filename, args, `streamServer(r${realIndex}:${port})`);
  await tool.waitUntilListening();
  const event = (kind: "sent" | "received" | "closed", peerPort: number, timeoutMs: number): Promise<ToolEvent> =>
    tool.waitForEvent((e) => e.event === kind && e["peerPort"] === peerPort, timeoutMs, `"${kind}" of the connection from port ${peerPort}`);
  return {
    real,
    tool,
    acceptedPorts: () => tool.events.filter((e) => e.event === "accepted").map((e) => Number(e["peerPort"])),
    accepted: (peerPort, timeoutMs) =>
      tool.waitForEvent((e) => e.event === "accepted" && e["peerPort"] === peerPort, timeoutMs, `the connection from port ${peerPort}`),
    event,
    sentTo: async (peerPort, timeoutMs) => {
      const e = await event("sent", peerPort, timeoutMs);
      return { peer: String(e["peer"]), peerPort: Number(e["peerPort"]), bytes: Number(e["bytes"]), sha256: String(e["sha256"]), ms: Number(e["ms"]) };
    },
    gotFrom: (peerPort) =>
      tool.events.filter((e) => e.event === "got" && e["peerPort"] === peerPort).reduce((sum, e) => sum + Number(e["bytes"]), 0),
    stop: async () => {
      await tool.stop();
    },
  };
}

/** A paced stream: `chunks` chunks of `chunkBytes`, one every `intervalMs`. */
export interface PacedServerOptions {
  chunkBytes: number;
  intervalMs: number;
  chunks: number;
  /** The server exits by itself after this long. Default 120. */
  maxSeconds?: number;
}

/** The stream server sending a paced stream, then holding each connection open, idle, until its client closes it. */
export function startPacedServer(lab: Lab, realIndex: number, port: number, opts: PacedServerOptions): Promise<StreamServerHandle> {
  const { chunkBytes, intervalMs, chunks, maxSeconds } = opts;
  return startStreamServer(lab, realIndex, port, { sendBytes: chunks * chunkBytes, chunkBytes, intervalMs, holdOpen: true, maxSeconds });
}

// ---------------------------------------------------------------------------------------------
// The client, seen from the test.

export interface StreamClientOptions {
  host: string;
  port: number;
  localPort: number;
  /** Uploads this many random bytes, then a FIN. Default 0. */
  sendBytes?: number;
  /** Ends once this many bytes have arrived, rather than at the server's FIN. */
  expectBytes?: number;
  /** With expectBytes: keeps the connection open, idle, this long after the last byte. Default 0. */
  lingerMs?: number;
  /** Shut down the client's sending side (FIN) once this many bytes have arrived. */
  halfCloseAfterBytes?: number;
  /** Default 60 000. */
  timeoutMs?: number;
  /** How often the client reports the bytes it has. Default 100. */
  progressMs?: number;
  /** Namespace to run in. Default: the lab's client. */
  ns?: string;
}

export interface StreamClientHandle {
  readonly tool: ToolProcess;
  /** Bytes received so far (by the last progress line). */
  bytes(): number;
  /** Bytes received by wall-clock time `t` (ms), from the progress lines. */
  bytesAt(t: number): number;
  waitForBytes(bytes: number, timeoutMs: number): Promise<void>;
  /** The "done" or "failed" event (of a client without expectBytes). */
  ended(timeoutMs: number): Promise<ToolEvent>;
  /** The "failed" event, if the client failed already. */
  failure(): ToolEvent | undefined;
  /** The "received" event (expectBytes): every expected byte arrived. */
  received(timeoutMs: number): Promise<{ bytes: number; sha256: string; ms: number }>;
  /** Asks the lingering client to write 1000 bytes (SIGUSR1) and waits until it did. */
  write(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the stream client (in the lab's client namespace by default); it runs until its work or its timeout ends. */
export function startStreamClient(lab: Lab, opts: StreamClientOptions): StreamClientHandle {
  const optional = (flag: string, value: number | undefined): string[] => (value === undefined ? [] : [flag, String(value)]);
  const args = [
    "client", "--host", opts.host, "--port", String(opts.port), "--local-port", String(opts.localPort),
    "--send-bytes", String(opts.sendBytes ?? 0), "--linger-ms", String(opts.lingerMs ?? 0),
    "--timeout-ms", String(opts.timeoutMs ?? 60_000), "--progress-ms", String(opts.progressMs ?? 100),
    ...optional("--expect-bytes", opts.expectBytes), ...optional("--half-close-after-bytes", opts.halfCloseAfterBytes),
  ];
  const tool = launchTool(lab, opts.ns ?? lab.client.ns, __filename, args, `streamClient(${opts.localPort})`);
  const counts = () => tool.events.filter((e) => e.event === "progress" || e.event === "received" || e.event === "done" || e.event === "failed");
  const bytes = () => Number(counts().pop()?.["bytes"] ?? 0);
  const failure = () => tool.events.find((e) => e.event === "failed");
  return {
    tool,
    bytes,
    bytesAt: (t) => Number(counts().filter((e) => Number(e["t"]) <= t).pop()?.["bytes"] ?? 0),
    waitForBytes: async (n, timeoutMs) => {
      await waitUntil(`${n} bytes at client port ${opts.localPort}`, () => {
        const failed = failure();
        if (failed !== undefined) throw new Error(`the client failed: ${JSON.stringify(failed)}`);
        return bytes() >= n;
      }, timeoutMs, 20);
    },
    ended: (timeoutMs) => tool.waitForEvent((e) => e.event === "done" || e.event === "failed", timeoutMs, "the end of the connection"),
    failure,
    received: async (timeoutMs) => {
      const event = await tool.waitForEvent((e) => e.event === "received" || e.event === "failed", timeoutMs, "all the bytes");
      if (event.event === "failed") throw new Error(`stream client failed: ${JSON.stringify(event)}`);
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

/** The client of a paced server: that server sends no FIN, so the client ends at `expectBytes`. */
export function startPacedClient(lab: Lab, opts: StreamClientOptions & { expectBytes: number }): StreamClientHandle {
  return startStreamClient(lab, opts);
}

// ---------------------------------------------------------------------------------------------
// The programs.

const USAGE =
  "pacedStream server --port P [--send-bytes N] [--chunk-bytes B] [--interval-ms I] [--hold-open] [--max-seconds S] | " +
  "pacedStream client --host IP --port P --local-port L [--send-bytes N] [--expect-bytes N] [--linger-ms M] " +
  "[--half-close-after-bytes H] [--timeout-ms T] [--progress-ms M]";

/** The client's uploads go as fast as the socket drains, in pieces of this size. */
const UPLOAD_CHUNK_BYTES = 256 * 1024;

/**
 * Writes `total` random bytes in `chunk`-sized pieces and hashes them: one piece every `paceMs` ms, or
 * (0) as fast as the socket drains. Resolves with the bytes written once the last piece has been
 * handed to the kernel, or early when the socket is destroyed.
 */
async function writeRandom(socket: net.Socket, total: number, chunk: number, hash: Hash, paceMs: number): Promise<number> {
  let written = 0;
  let dueAt = Date.now();
  let lastWritten: Promise<void> = Promise.resolve();
  while (written < total && !socket.destroyed) {
    if (written > 0 && paceMs > 0) {
      await sleep(dueAt - Date.now());
      if (socket.destroyed) break;
    }
    // As with setInterval: a late piece moves the schedule on, the pieces after it do not bunch up.
    dueAt = Math.max(dueAt, Date.now()) + paceMs;
    const piece = randomBytes(Math.min(chunk, total - written));
    hash.update(piece);
    written += piece.length;
    lastWritten = new Promise((resolve) => socket.write(piece, () => resolve()));
    if (paceMs === 0 && socket.writableNeedDrain) await drainedOrClosed(socket);
  }
  await lastWritten;
  return written;
}

function drainedOrClosed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off("drain", done);
      socket.off("close", done);
      resolve();
    };
    socket.on("drain", done);
    socket.on("close", done);
  });
}

async function serverMain(a: ToolArgs): Promise<void> {
  const port = a.int("port", { min: 1, max: 65535 }, 9000);
  const sendBytes = a.int("send-bytes", { min: 0, max: 2 ** 40 }, 0);
  const chunkBytes = a.int("chunk-bytes", { min: 1, max: 16 * 1024 * 1024 }, 64 * 1024);
  const intervalMs = a.int("interval-ms", { min: 0, max: 10_000 }, 0);
  const holdOpen = a.flag("hold-open");
  const maxSeconds = a.int("max-seconds", { min: 1, max: 3600 }, 120);
  a.rejectUnknown();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const peer = socket.remoteAddress?.replace(/^::ffff:/, "") ?? "";
    const peerPort = socket.remotePort ?? 0;
    const t0 = Date.now();
    const sentHash = createHash("sha256");
    const gotHash = createHash("sha256");
    let sent = 0;
    let received = 0;
    let sending = sendBytes > 0;
    let peerEnded = false;
    let error: string | undefined;
    emit({ event: "accepted", peer, peerPort, t: t0 });
    socket.on("data", (data: Buffer) => {
      received += data.length;
      gotHash.update(data);
      emit({ event: "got", peerPort, bytes: data.length });
    });
    socket.on("end", () => {
      peerEnded = true;
      emit({ event: "received", peerPort, bytes: received, sha256: gotHash.digest("hex"), t: Date.now() });
      if (!sending) socket.end();
    });
    socket.on("error", (e: NodeJS.ErrnoException) => {
      error ??= e.code ?? e.message;
    });
    socket.on("close", () => emit({ event: "closed", peerPort, reason: error ?? "closed", sent, received, t: Date.now() }));
    if (!sending) return;
    writeRandom(socket, sendBytes, chunkBytes, sentHash, intervalMs)
      .then((written) => {
        sent = written;
        sending = false;
        if (socket.destroyed) return;
        const now = Date.now();
        emit({ event: "sent", peer, peerPort, bytes: written, sha256: sentHash.digest("hex"), ms: now - t0, t: now });
        if (!holdOpen || peerEnded) socket.end();
      })
      .catch(() => socket.destroy());
    // `sent` as the stream goes, for the closed event of a connection that ends early.
    const timer = setInterval(() => {
      if (socket.destroyed) clearInterval(timer);
      else sent = socket.bytesWritten;
    }, 50);
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
  const sendBytes = a.int("send-bytes", { min: 0, max: 2 ** 40 }, 0);
  const expectBytes = a.int("expect-bytes", { min: 1, max: 2 ** 40 });
  const lingerMs = a.int("linger-ms", { min: 0, max: 600_000 }, 0);
  const halfCloseAfterBytes = a.int("half-close-after-bytes", { min: 1, max: 2 ** 40 });
  const timeoutMs = a.int("timeout-ms", { min: 1, max: 600_000 }, 60_000);
  const progressMs = a.int("progress-ms", { min: 0, max: 10_000 }, 0);
  a.rejectUnknown();
  const t0 = Date.now();
  const hash = createHash("sha256");
  let bytes = 0;
  // Once the stream's end is decided (received, done, failed), later reads and closes do not count.
  let settled = false;
  let lingering = false;
  let wrote = false;
  let halfClosed = false;
  const socket = net.connect({ host, port, localPort });
  const progress = progressMs > 0 ? setInterval(() => emit({ event: "progress", bytes, t: Date.now() }), progressMs) : undefined;
  const settle = (): boolean => {
    if (settled) return false;
    settled = true;
    clearInterval(progress);
    clearTimeout(deadline);
    return true;
  };
  const fail = (reason: string): void => {
    if (!settle()) return;
    socket.destroy();
    emitThenExit({ event: "failed", reason, bytes, t: Date.now() }, 1);
  };
  const deadline = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
  process.on("SIGUSR1", () => {
    if (!lingering || wrote) return;
    wrote = true;
    socket.write(randomBytes(1000), () => emit({ event: "wrote", bytes: 1000 }));
  });
  socket.on("connect", () => {
    emit({ event: "connected", localPort: socket.localPort, t: Date.now() });
    if (sendBytes === 0) return;
    const sentHash = createHash("sha256");
    writeRandom(socket, sendBytes, UPLOAD_CHUNK_BYTES, sentHash, 0)
      .then((written) => {
        if (socket.destroyed) return;
        socket.end(() => emit({ event: "sent", bytes: written, sha256: sentHash.digest("hex"), t: Date.now() }));
      })
      .catch(() => undefined);
  });
  socket.on("data", (data: Buffer) => {
    if (settled) return;
    bytes += data.length;
    hash.update(data);
    if (halfCloseAfterBytes !== undefined && bytes >= halfCloseAfterBytes && !halfClosed) {
      halfClosed = true;
      socket.end();
      emit({ event: "half-closed", bytes });
    }
    if (expectBytes === undefined || bytes < expectBytes || !settle()) return;
    lingering = true;
    const now = Date.now();
    emit({ event: "received", bytes, sha256: hash.digest("hex"), ms: now - t0, t: now });
    setTimeout(() => {
      socket.destroy();
      emitThenExit({ event: "closed" }, 0);
    }, lingerMs);
  });
  socket.on("end", () => {
    if (expectBytes !== undefined) return fail(`the server's FIN after ${bytes} of ${expectBytes} bytes`);
    if (!settle()) return;
    socket.destroy();
    emitThenExit({ event: "done", bytes, sha256: hash.digest("hex"), t: Date.now() }, 0);
  });
  socket.on("error", (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
  socket.on("close", () => fail(expectBytes === undefined ? "closed before the server's FIN" : `closed after ${bytes} of ${expectBytes} bytes`));
}

async function main(argv: string[]): Promise<void> {
  const [mode, ...rest] = argv;
  const a = new ToolArgs(rest, ["hold-open"]);
  if (mode === "server") return serverMain(a);
  if (mode === "client") return clientMain(a);
  throw new UsageError(`the first argument is "server" or "client", got ${JSON.stringify(mode)}`);
}

if (require.main === module) runToolMain("pacedStream", USAGE, main);
