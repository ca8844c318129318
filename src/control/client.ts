// The CLI side of the control interface.

import { request } from "node:http";
import { ApiError, ControlError } from "../errors";
import { connectionQueryString, type ConnectionQuery } from "../flows/connectionQuery";
import { CONTROL_ROUTES, isControlErrorBody, toJson, type HttpMethod } from "./protocol";
import { defaultSocketPath } from "./socketPath";

export const DEFAULT_CONTROL_TIMEOUT_MS = 5000;
const MAX_RESPONSE_BYTES = 256 << 20;

export interface ControlRequestOptions {
  /** JSON body (sent for methods other than GET). */
  readonly body?: unknown;
  readonly timeoutMs?: number;
}

const START_HINT = "start one with `natlb run --config <file>`";

/** How a client command names its daemon: an explicit socket, or the config file the daemon runs with. */
export interface SocketChoice {
  /** `--socket <path>`: wins over everything. */
  readonly socket?: string | undefined;
  /** `--config <file>`: its `socket` field, or the default path when it has none. */
  readonly config?: string | undefined;
}

/**
 * The control socket a client command talks to: --socket, else the `socket` field of --config's
 * file (validated like `natlb run` does, so a bad file fails here with a ConfigError), else the
 * per-namespace default.
 */
export async function resolveSocketPath(choice: SocketChoice): Promise<string> {
  if (choice.socket !== undefined) return choice.socket;
  if (choice.config !== undefined) {
    // Loaded here only: the config schema is most of a client command's start-up time.
    const { loadConfigFile } = require("../config") as typeof import("../config");
    return (await loadConfigFile(choice.config)).socket ?? defaultSocketPath();
  }
  return defaultSocketPath();
}

export function connectError(path: string, error: NodeJS.ErrnoException, timeoutMs: number): ControlError {
  switch (error.code) {
    case "ENOENT":
      return new ControlError("E_CONTROL_NO_DAEMON", path, `no natlb daemon on ${path}: ${START_HINT}`, { cause: error });
    case "ECONNREFUSED":
      return new ControlError(
        "E_CONTROL_NO_DAEMON",
        path,
        `no natlb daemon answers on ${path} (a stale socket from a daemon that exited): ${START_HINT}`,
        { cause: error },
      );
    case "EACCES":
    case "EPERM":
      return new ControlError(
        "E_CONTROL_ACCESS",
        path,
        `permission denied on ${path}: run natlb as root or as a member of the socket's group (the daemon's control.readGroup)`,
        { cause: error },
      );
    case "ETIMEDOUT":
      return new ControlError(
        "E_CONTROL_TIMEOUT",
        path,
        `the natlb daemon on ${path} did not answer within ${timeoutMs} ms: it may be overloaded or hung; check its log`,
        { cause: error },
      );
    default:
      return new ControlError("E_CONTROL_NO_DAEMON", path, `cannot talk to a natlb daemon on ${path}: ${error.message}`, {
        cause: error,
      });
  }
}

/** The error a failed answer (not 2xx) stands for. */
export function errorFromAnswer(socketPath: string, status: number, body: unknown): Error {
  // The daemon's access check: the message names the role and the config field to change.
  if (status === 403 && isControlErrorBody(body)) {
    return new ControlError("E_CONTROL_FORBIDDEN", socketPath, `refused by the daemon on ${socketPath}: ${body.error.message}`);
  }
  if (isControlErrorBody(body)) return new ApiError(body.error.message, { status, code: body.error.code });
  return new ControlError("E_CONTROL_PROTOCOL", socketPath, `the daemon on ${socketPath} answered HTTP ${status} without an error message`);
}

/** Splits "POST /reload" into method and path; a bare "/status" means GET. */
function parseRoute(route: string): { method: HttpMethod; path: string } {
  const space = route.indexOf(" ");
  if (space < 0) return { method: "GET", path: route.startsWith("/") ? route : `/${route}` };
  const method = route.slice(0, space).toUpperCase();
  if (method !== "GET" && method !== "POST" && method !== "PUT" && method !== "DELETE") {
    throw new ApiError(`unsupported method ${method} in route ${JSON.stringify(route)}: use GET, POST, PUT or DELETE`);
  }
  return { method, path: route.slice(space + 1) };
}

/**
 * Sends one request to the daemon and returns its JSON answer. `route` is a path ("/status") or a
 * route key ("POST /reload"). Throws ControlError when no daemon can be reached and ApiError when
 * the daemon answers with an error.
 */
export function requestControl(
  socketPath: string,
  route: string,
  timeoutMs: number = DEFAULT_CONTROL_TIMEOUT_MS,
  options: Omit<ControlRequestOptions, "timeoutMs"> = {},
): Promise<unknown> {
  const { method, path } = parseRoute(route);
  const payload = method === "GET" || options.body === undefined ? undefined : toJson(options.body);
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(error);
    };
    const req = request(
      {
        socketPath,
        path,
        method,
        headers: {
          accept: "application/json",
          ...(payload === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            fail(new ControlError("E_CONTROL_PROTOCOL", socketPath, `answer from ${socketPath} is over ${MAX_RESPONSE_BYTES} bytes`));
          } else {
            chunks.push(chunk);
          }
        });
        res.on("error", (error: NodeJS.ErrnoException) => fail(connectError(socketPath, error, timeoutMs)));
        res.on("end", () => {
          if (settled) return;
          const text = Buffer.concat(chunks).toString("utf8");
          const status = res.statusCode ?? 0;
          // GET /metrics answers Prometheus text: the text is the answer.
          if (status >= 200 && status < 300 && /^text\/plain/.test(res.headers["content-type"] ?? "")) {
            settled = true;
            clearTimeout(timer);
            return resolve(text);
          }
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            return fail(
              new ControlError(
                "E_CONTROL_PROTOCOL",
                socketPath,
                `unexpected answer from ${socketPath} (HTTP ${status}, not JSON): is a natlb daemon listening there?`,
              ),
            );
          }
          if (status >= 200 && status < 300) {
            settled = true;
            clearTimeout(timer);
            return resolve(body);
          }
          fail(errorFromAnswer(socketPath, status, body));
        });
      },
    );
    const timer = setTimeout(() => {
      const error: NodeJS.ErrnoException = new Error(`timed out after ${timeoutMs} ms`);
      error.code = "ETIMEDOUT";
      fail(connectError(socketPath, error, timeoutMs));
    }, timeoutMs);
    req.on("error", (error: NodeJS.ErrnoException) => fail(connectError(socketPath, error, timeoutMs)));
    req.end(payload);
  });
}

export interface ControlClientOptions {
  readonly timeoutMs?: number;
}

/** Typed access to the daemon's routes. */
export class ControlClient {
  readonly socketPath: string;
  private readonly timeoutMs: number;

  constructor(socketPath: string = defaultSocketPath(), options: ControlClientOptions = {}) {
    this.socketPath = socketPath;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_CONTROL_TIMEOUT_MS;
  }

  request(route: string, options: ControlRequestOptions = {}): Promise<unknown> {
    const { timeoutMs, ...rest } = options;
    return requestControl(this.socketPath, route, timeoutMs ?? this.timeoutMs, rest);
  }

  status(): Promise<unknown> {
    return this.request(CONTROL_ROUTES.status);
  }

  /** One page of connections (GET /conns), filtered as `query` says; the daemon checks the query. */
  conns(query: ConnectionQuery = {}): Promise<unknown> {
    const text = connectionQueryString(query);
    return this.request(text ? `${CONTROL_ROUTES.conns}?${text}` : CONTROL_ROUTES.conns);
  }

  /** Per service and real traffic counts and rates (GET /stats): a BalancerStats. */
  stats(): Promise<unknown> {
    return this.request(CONTROL_ROUTES.stats);
  }

  health(): Promise<unknown> {
    return this.request(CONTROL_ROUTES.health);
  }

  /** The Prometheus text the metrics listener serves. */
  async metrics(): Promise<string> {
    return String(await this.request(CONTROL_ROUTES.metrics));
  }
}
