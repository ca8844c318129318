// The client side of the routes that answer line by line (NDJSON): GET /events and a waiting
// POST /reals/drain. Yields each line's JSON as it arrives; ends when the daemon ends the answer or
// the signal aborts.

import { request, type IncomingMessage } from "node:http";
import { createInterface } from "node:readline";
import { connectError, errorFromAnswer, DEFAULT_CONTROL_TIMEOUT_MS } from "./client";
import { toJson, type HttpMethod } from "./protocol";

export interface StreamControlOptions {
  readonly method?: HttpMethod;
  /** JSON body (not for GET). */
  readonly body?: unknown;
  readonly signal?: AbortSignal;
  /** How long to wait for the daemon to answer (not for the lines that follow). */
  readonly connectTimeoutMs?: number;
}

function open(socketPath: string, path: string, options: StreamControlOptions): Promise<IncomingMessage> {
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONTROL_TIMEOUT_MS;
  const method = options.method ?? "GET";
  const payload = method === "GET" || options.body === undefined ? undefined : toJson(options.body);
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath, path, method,
      headers: {
        accept: "application/x-ndjson",
        ...(payload === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }),
      },
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const timer = setTimeout(() => {
      const error: NodeJS.ErrnoException = Object.assign(new Error(`timed out after ${timeoutMs} ms`), { code: "ETIMEDOUT" });
      req.destroy(error);
    }, timeoutMs);
    req.on("response", (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    req.on("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(error.name === "AbortError" ? error : connectError(socketPath, error, timeoutMs));
    });
    req.end(payload);
  });
}

/** Sends one request and yields the JSON of each line of its answer. */
export async function* streamControl(socketPath: string, path: string, options: StreamControlOptions = {}): AsyncGenerator<unknown, void, undefined> {
  let res: IncomingMessage;
  try {
    res = await open(socketPath, path, options);
  } catch (error) {
    if (options.signal?.aborted) return;
    throw error;
  }
  if (res.statusCode !== 200) {
    let text = "";
    for await (const chunk of res) text += String(chunk);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    throw errorFromAnswer(socketPath, res.statusCode ?? 0, body);
  }
  const lines = createInterface({ input: res, crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (line.trim() !== "") yield JSON.parse(line) as unknown;
    }
  } catch (error) {
    if (!options.signal?.aborted) throw error;
  } finally {
    lines.close();
    res.destroy();
  }
}
