// The daemon side of the control interface: HTTP/1.1 over a unix domain socket. Access control is
// file permissions: the directory is 0750 and the socket 0660, so root and the socket's group can
// talk to the daemon and nobody else can.

import { chmod, lstat, mkdir, unlink } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect } from "node:net";
import { dirname } from "node:path";
import { ApiError, ConfigError, ControlError } from "../errors";
import { toJson, type ControlErrorBody, type RouteKey } from "./protocol";
import { MAX_SOCKET_PATH_BYTES } from "./socketPath";

export interface ControlRequest {
  readonly method: string;
  /** Path without the query string, e.g. `/conns`. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** Parsed JSON body; undefined when the request had none. */
  readonly body: unknown;
}

/** Returns the JSON answer. Throw ApiError for a bad request (its status is used), anything else is a 500. */
export type ControlHandler = (request: ControlRequest) => unknown;

/** Handlers by route key, e.g. `{ "GET /status": async () => balancer.status() }`. */
export type ControlHandlers = Readonly<Partial<Record<RouteKey, ControlHandler>>>;

export interface ControlServer {
  readonly path: string;
  /** Stops serving and removes the socket file (only if it is still the one this server made). */
  close(): Promise<void>;
}

const SOCKET_MODE = 0o660;
const DIR_MODE = 0o750;
const MAX_BODY_BYTES = 1 << 20;

/** True when something accepts connections on the unix socket at `path`. */
function answers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    const done = (live: boolean) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on("error", () => {});
      socket.destroy();
      resolve(live);
    };
    // A daemon that is too busy to accept within the timeout is still a live daemon.
    const timer = setTimeout(() => done(true), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", (error: NodeJS.ErrnoException) => {
      // ECONNREFUSED: a socket file nobody listens on. EAGAIN: backlog full, so someone does.
      done(error.code !== "ECONNREFUSED" && error.code !== "ENOENT");
    });
  });
}

/** Creates the socket's directory (and parents) with mode 0750 when missing; existing ones are left alone. */
async function ensureDirectory(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
  if (first === undefined) return;
  // mkdir's mode is filtered by the umask: set it explicitly on each directory we created.
  for (let d = dir; ; d = dirname(d)) {
    await chmod(d, DIR_MODE);
    if (d === first || dirname(d) === d) break;
  }
}

/** Makes sure `path` is free: absent, or a stale socket (removed). Throws if a daemon answers there. */
async function claimPath(path: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  if (!stats.isSocket()) {
    throw new ControlError(
      "E_CONTROL_NOT_SOCKET",
      path,
      `${path} exists and is not a socket: natlb will not delete it; move it away or choose another --socket path`,
    );
  }
  if (await answers(path)) {
    throw new ControlError(
      "E_CONTROL_IN_USE",
      path,
      `a natlb daemon is already running on ${path}: stop it first (or use \`natlb status\` to inspect it), or give this one another --socket path`,
    );
  }
  await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "ENOENT") throw error;
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = toJson(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  const body: ControlErrorBody = { error: { code, message } };
  send(res, status, body);
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new ApiError(`request body over ${MAX_BODY_BYTES} bytes`, { status: 413, code: "E_BODY_TOO_LARGE" }));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", reject);
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      if (text.trim() === "") return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new ApiError("request body is not valid JSON: send a JSON document", { code: "E_BAD_JSON" }));
      }
    });
  });
}

async function handle(handlers: ControlHandlers, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://natlb");
  const method = req.method ?? "GET";
  const key = `${method} ${url.pathname}`;
  const handler = (handlers as Readonly<Record<string, ControlHandler | undefined>>)[key];
  if (handler === undefined) {
    const known = Object.keys(handlers);
    const samePath = known.filter((k) => k.slice(k.indexOf(" ") + 1) === url.pathname);
    if (samePath.length > 0) {
      res.setHeader("allow", samePath.map((k) => k.slice(0, k.indexOf(" "))).join(", "));
      return sendError(res, 405, "E_METHOD_NOT_ALLOWED", `${key} is not supported: use ${samePath.join(" or ")}`);
    }
    return sendError(res, 404, "E_NOT_FOUND", `unknown route ${key}: try one of ${known.join(", ") || "(none)"}`);
  }
  try {
    const body = method === "GET" || method === "HEAD" ? undefined : await readBody(req);
    const result = await handler({ method, path: url.pathname, query: url.searchParams, body });
    send(res, 200, result === undefined ? null : result);
  } catch (error) {
    if (error instanceof ApiError) return sendError(res, error.status, error.code, error.message);
    // A reload of a bad file: the client's fault, and its code tells the CLI to exit with the config status.
    if (error instanceof ConfigError) return sendError(res, 422, error.code, error.message);
    const message = error instanceof Error ? error.message : String(error);
    sendError(res, 500, "E_INTERNAL", `${key} failed: ${message}`);
  }
}

/**
 * Serves `handlers` on the unix socket `path`. Creates the directory (0750) if missing, replaces a
 * stale socket, and refuses (ControlError E_CONTROL_IN_USE) when a live daemon answers there.
 */
export async function startControlServer(path: string, handlers: ControlHandlers): Promise<ControlServer> {
  if (!path.startsWith("/") || Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new ControlError(
      "E_CONTROL_PATH",
      path,
      `control socket path ${JSON.stringify(path)} must be absolute and at most ${MAX_SOCKET_PATH_BYTES} bytes: choose a shorter absolute path`,
    );
  }
  await ensureDirectory(dirname(path));
  await claimPath(path);

  const server: Server = createServer((req, res) => {
    handle(handlers, req, res).catch((error: unknown) => {
      // Only reached if writing the response itself failed; the client sees a reset.
      res.destroy(error instanceof Error ? error : undefined);
    });
  });
  await listen(server, path);
  await chmod(path, SOCKET_MODE);
  const ino = (await lstat(path)).ino;

  let closed: Promise<void> | undefined;
  return {
    path,
    close(): Promise<void> {
      closed ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        // Node unlinks the socket on close; make sure, without deleting another daemon's socket.
        const now = await lstat(path).catch(() => undefined);
        if (now?.isSocket() && now.ino === ino) await unlink(path).catch(() => undefined);
      })();
      return closed;
    },
  };
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      if (error.code === "EADDRINUSE") {
        // Another daemon bound the path between our check and our bind.
        reject(
          new ControlError("E_CONTROL_IN_USE", path, `a natlb daemon is already running on ${path}: stop it first, or give this one another --socket path`, {
            cause: error,
          }),
        );
      } else if (error.code === "EACCES" || error.code === "EPERM") {
        reject(new ControlError("E_CONTROL_ACCESS", path, `cannot create ${path} (${error.code}): run natlb as root`, { cause: error }));
      } else {
        reject(error);
      }
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    // The socket is created by bind() inside listen(), synchronously: a umask of 0117 makes it
    // 0660 from the first instant instead of briefly 0755 until the chmod below.
    let previous: number | undefined;
    try {
      previous = process.umask(0o117);
    } catch {
      previous = undefined; // worker threads cannot change the umask; the chmod still applies
    }
    try {
      server.listen(path);
    } finally {
      if (previous !== undefined) process.umask(previous);
    }
  });
}

