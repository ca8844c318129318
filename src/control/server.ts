// The daemon side of the control interface: HTTP/1.1 over a unix domain socket, with two gates.
// The file permissions come first: the directory is 0750 and the socket 0660, its group the read
// role's group (else the admin role's), so only root, the daemon's user and that group can connect.
// Then each connection's peer credentials (SO_PEERCRED and SO_PEERGROUPS, read once at accept)
// decide its role, and a route its role does not allow gets a 403 that names the role and the
// config field to change (roles.ts). A slow or stalled client is cut off by the header and request
// timeouts.

import type { Socket } from "node:net";
import { chmod, chown, lstat, mkdir, stat, unlink } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect } from "node:net";
import { dirname } from "node:path";
import { ApiError, ConfigError, ControlError } from "../errors";
import { silentLogger, type Logger } from "../log";
import { AuditLog } from "./auditLog";
import { peerCredentialsOf, type PeerCredentials } from "./peerCredentials";
import { toJson, type ControlErrorBody, type RouteKey } from "./protocol";
import { grants, ownerOnlyPolicy, refusalMessage, roleNeeded, roleOf, socketGroupOf, type AccessPolicy } from "./roles";
import { MAX_SOCKET_PATH_BYTES, SOCKET_DIR } from "./socketPath";
import type { ResolvedGroup } from "./systemGroups";

export interface ControlRequest {
  readonly method: string;
  /** Path without the query string, e.g. `/conns`. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** Parsed JSON body; undefined when the request had none. */
  readonly body: unknown;
  /** Who sent it: the connection's credentials, read at accept. */
  readonly peer: PeerCredentials;
}

/** An answer that is not JSON (the Prometheus text of GET /metrics). */
export class TextAnswer {
  constructor(
    readonly contentType: string,
    readonly text: string,
  ) {}
}

/**
 * An answer that goes on: one JSON document per line (NDJSON) as `items` yields them, until it ends
 * or the client goes away (then `stop` aborts, so the producer lets go of its watcher).
 */
export class StreamAnswer {
  constructor(
    readonly items: AsyncIterable<unknown>,
    readonly stop: AbortController,
  ) {}
}

/** Returns the JSON answer (or a TextAnswer). Throw ApiError for a bad request (its status is used), anything else is a 500. */
export type ControlHandler = (request: ControlRequest) => unknown;

/** Handlers by route key, e.g. `{ "GET /status": async () => balancer.status() }`. */
export type ControlHandlers = Readonly<Partial<Record<RouteKey, ControlHandler>>>;

/** How much one client may hold: time to send its headers and its whole request, body size, connections. */
export interface ControlLimits {
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly maxBodyBytes: number;
  readonly maxConnections: number;
}

export const DEFAULT_CONTROL_LIMITS: ControlLimits = Object.freeze({
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  maxBodyBytes: 1 << 20,
  maxConnections: 64,
});

export interface ControlServerOptions {
  /** Who holds which role; default: root and the daemon's user only. */
  readonly access?: AccessPolicy;
  /** Refused connections and denied requests are logged here (warn). */
  readonly logger?: Logger;
  readonly limits?: Partial<ControlLimits>;
}

export interface ControlServer {
  readonly path: string;
  /** Open connections (for tests: stalled clients must not pile up). */
  connections(): Promise<number>;
  /** Stops serving and removes the socket file (only if it is still the one this server made). */
  close(): Promise<void>;
}

const SOCKET_MODE = 0o660;
const DIR_MODE = 0o750;
/** Time between the server's checks of the header and request timeouts. */
const TIMEOUT_CHECK_MS = 500;

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

/**
 * Creates the socket's directory (and parents) with mode 0750 when missing; existing ones are left
 * alone. Returns the directories it created.
 */
async function ensureDirectory(dir: string): Promise<string[]> {
  const first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
  if (first === undefined) return [];
  // mkdir's mode is filtered by the umask: set it explicitly on each directory we created.
  const created: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    await chmod(d, DIR_MODE);
    created.push(d);
    if (d === first || dirname(d) === d) break;
  }
  return created;
}

function groupError(path: string, group: ResolvedGroup, error: NodeJS.ErrnoException): ControlError {
  return new ControlError(
    "E_CONTROL_ACCESS",
    path,
    `cannot give ${path} to group "${group.name}" (gid ${group.gid}, ${error.code}): run natlb as root, or make natlb's user a member of that group (systemd: SupplementaryGroups=${group.name})`,
    { cause: error },
  );
}

/**
 * Gives the socket, and its directory when it is natlb's (created now, or /run/natlb), the role
 * group: 0660 and 0750, so that group can reach the socket and nobody else can. A directory the
 * operator chose is left as it is, with a warning when the group cannot pass through it.
 */
async function shareWithGroup(path: string, group: ResolvedGroup, created: readonly string[], log: Logger): Promise<void> {
  const dir = dirname(path);
  for (const target of [path, ...(created.includes(dir) || dir === SOCKET_DIR ? [dir] : [])]) {
    await chown(target, -1, group.gid).catch((error: NodeJS.ErrnoException) => {
      throw groupError(target, group, error);
    });
  }
  for (let d = dir; ; d = dirname(d)) {
    const s = await stat(d);
    const passes = (s.mode & 0o001) !== 0 || (s.gid === group.gid && (s.mode & 0o010) !== 0);
    if (!passes) {
      log.warn(
        { socket: path, directory: d, group: group.name },
        `members of group "${group.name}" cannot pass through ${d} (mode ${(s.mode & 0o777).toString(8)}, gid ${s.gid}) to reach the control socket: give it that group (chgrp ${group.gid} ${d}; chmod g+x ${d}) or use a socket path under /run/natlb`,
      );
      return;
    }
    if (dirname(d) === d) return;
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

function tooLarge(maxBodyBytes: number): ApiError {
  return new ApiError(`request body over ${maxBodyBytes} bytes: natlb's requests are small JSON documents`, { status: 413, code: "E_BODY_TOO_LARGE" });
}

/** Thrown when the client went away before its body was complete: there is nobody to answer. */
class ClientGone extends Error {}

function readBody(req: IncomingMessage, maxBodyBytes: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBodyBytes) {
        req.pause();
        reject(tooLarge(maxBodyBytes));
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", reject);
    // A body shorter than its content-length, then the client closes: no 'end', only 'close'.
    req.on("close", () => {
      if (!req.complete) reject(new ClientGone("the client closed the connection before its request body was complete"));
    });
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

interface Serving {
  readonly handlers: ControlHandlers;
  readonly access: AccessPolicy;
  readonly audit: AuditLog;
  readonly limits: ControlLimits;
  readonly peers: WeakMap<Socket, PeerCredentials>;
}

/** Refuses before the body is read: the connection closes after the answer, so an unread body is not waited for. */
function refuse(res: ServerResponse, status: number, code: string, message: string): void {
  res.setHeader("connection", "close");
  sendError(res, status, code, message);
}

function isJsonContentType(value: string | undefined): boolean {
  return value === undefined || /^application\/json\s*(;|$)/i.test(value);
}

async function handle(serving: Serving, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { handlers, access, audit, limits } = serving;
  const peer = serving.peers.get(req.socket);
  if (peer === undefined) {
    req.socket.destroy(); // refused at accept; nothing to answer
    return;
  }
  const url = new URL(req.url ?? "/", "http://natlb");
  const method = req.method ?? "GET";
  const key = `${method} ${url.pathname}`;
  const role = roleOf(peer, access);
  // A peer with no role learns nothing, not even which routes exist.
  if (role === undefined) {
    audit.denied(peer, key, roleNeeded(key));
    return refuse(res, 403, "E_CONTROL_FORBIDDEN", refusalMessage(key, peer, access));
  }
  const handler = (handlers as Readonly<Record<string, ControlHandler | undefined>>)[key];
  if (handler === undefined) {
    const known = Object.keys(handlers);
    const samePath = known.filter((k) => k.slice(k.indexOf(" ") + 1) === url.pathname);
    if (samePath.length > 0) {
      res.setHeader("allow", samePath.map((k) => k.slice(0, k.indexOf(" "))).join(", "));
      return refuse(res, 405, "E_METHOD_NOT_ALLOWED", `${key} is not supported: use ${samePath.join(" or ")}`);
    }
    return refuse(res, 404, "E_NOT_FOUND", `unknown route ${key}: try one of ${known.join(", ") || "(none)"}`);
  }
  if (!grants(role, roleNeeded(key))) {
    audit.denied(peer, key, roleNeeded(key));
    return refuse(res, 403, "E_CONTROL_FORBIDDEN", refusalMessage(key, peer, access));
  }
  const hasBody = method !== "GET" && method !== "HEAD";
  if (hasBody) {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > limits.maxBodyBytes) {
      const error = tooLarge(limits.maxBodyBytes);
      return refuse(res, error.status, error.code, error.message);
    }
    if (!isJsonContentType(req.headers["content-type"])) {
      return refuse(res, 415, "E_BAD_CONTENT_TYPE", `${key} takes a JSON body: send content-type application/json, not ${req.headers["content-type"]}`);
    }
  }
  try {
    const body = hasBody ? await readBody(req, limits.maxBodyBytes) : undefined;
    const result = await handler({ method, path: url.pathname, query: url.searchParams, body, peer });
    if (result instanceof TextAnswer) {
      res.writeHead(200, { "content-type": result.contentType, "content-length": Buffer.byteLength(result.text) });
      res.end(result.text);
      return;
    }
    if (result instanceof StreamAnswer) return await stream(res, result);
    send(res, 200, result === undefined ? null : result);
  } catch (error) {
    if (error instanceof ClientGone) return;
    if (error instanceof ApiError) {
      // The rest of an oversized body is not read: close instead of waiting for it.
      if (error.status === 413) return refuse(res, error.status, error.code, error.message);
      return sendError(res, error.status, error.code, error.message);
    }
    // A reload of a bad file: the client's fault, and its code tells the CLI to exit with the config status.
    if (error instanceof ConfigError) return sendError(res, 422, error.code, error.message);
    const message = error instanceof Error ? error.message : String(error);
    sendError(res, 500, "E_INTERNAL", `${key} failed: ${message}`);
  }
}

/** Writes a StreamAnswer line by line, waiting for the client to read (a slow reader holds one watcher, not memory). */
async function stream(res: ServerResponse, answer: StreamAnswer): Promise<void> {
  const gone = () => answer.stop.abort();
  res.once("close", gone);
  res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
  res.flushHeaders();
  try {
    for await (const item of answer.items) {
      if (res.destroyed) break;
      if (!res.write(`${toJson(item)}\n`)) await new Promise((resolve) => res.once("drain", resolve).once("close", resolve));
    }
  } finally {
    res.off("close", gone);
    answer.stop.abort();
    if (!res.destroyed) res.end();
  }
}

/**
 * Serves `handlers` on the unix socket `path`. Creates the directory (0750) if missing, replaces a
 * stale socket, and refuses (ControlError E_CONTROL_IN_USE) when a live daemon answers there.
 */
export async function startControlServer(path: string, handlers: ControlHandlers, options: ControlServerOptions = {}): Promise<ControlServer> {
  if (!path.startsWith("/") || Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new ControlError(
      "E_CONTROL_PATH",
      path,
      `control socket path ${JSON.stringify(path)} must be absolute and at most ${MAX_SOCKET_PATH_BYTES} bytes: choose a shorter absolute path`,
    );
  }
  const log = options.logger ?? silentLogger;
  const access = options.access ?? ownerOnlyPolicy();
  const limits: ControlLimits = { ...DEFAULT_CONTROL_LIMITS, ...options.limits };
  const created = await ensureDirectory(dirname(path));
  await claimPath(path);

  const serving: Serving = { handlers, access, audit: new AuditLog(log), limits, peers: new WeakMap() };
  const server: Server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(TIMEOUT_CHECK_MS, limits.headersTimeoutMs),
    },
    (req, res) => {
      handle(serving, req, res).catch((error: unknown) => {
        // Only reached if writing the response itself failed; the client sees a reset.
        res.destroy(error instanceof Error ? error : undefined);
      });
    },
  );
  server.maxConnections = limits.maxConnections;
  // The credentials are the kernel's record of the peer at connect(): read them once, at accept.
  server.on("connection", (socket: Socket) => {
    try {
      serving.peers.set(socket, peerCredentialsOf(socket));
    } catch (error) {
      log.warn({ err: error }, "control connection refused: its peer's credentials cannot be read");
      socket.destroy();
    }
  });
  await listen(server, path);
  await chmod(path, SOCKET_MODE);
  const group = socketGroupOf(access);
  if (group !== undefined) {
    try {
      await shareWithGroup(path, group, created, log);
    } catch (error) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw error;
    }
  }
  const ino = (await lstat(path)).ino;

  let closed: Promise<void> | undefined;
  return {
    path,
    connections: () => new Promise<number>((resolve, reject) => server.getConnections((error, count) => (error ? reject(error) : resolve(count)))),
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

