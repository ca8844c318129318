// The client side of GET /events: natlb's events from a running daemon, one JSON object per line,
// as an async iterator. It ends when the daemon stops or the signal aborts.

import { request, type IncomingMessage } from "node:http";
import { createInterface } from "node:readline";
import type { NatlbEvent } from "../events";
import { connectError, errorFromAnswer, DEFAULT_CONTROL_TIMEOUT_MS } from "./client";
import { CONTROL_ROUTES } from "./protocol";

export interface WatchEventsOptions {
  /** Start after this sequence number (replaying what the daemon still keeps). */
  readonly after?: number;
  readonly signal?: AbortSignal;
  /** How long to wait for the daemon to answer (not for events). */
  readonly connectTimeoutMs?: number;
}

function open(socketPath: string, path: string, options: WatchEventsOptions): Promise<IncomingMessage> {
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONTROL_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: "GET", headers: { accept: "application/x-ndjson" }, ...(options.signal ? { signal: options.signal } : {}) });
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
    req.end();
  });
}

export async function* watchEvents(socketPath: string, options: WatchEventsOptions = {}): AsyncGenerator<NatlbEvent, void, undefined> {
  const path = `${CONTROL_ROUTES.events.slice(4)}${options.after === undefined ? "" : `?after=${options.after}`}`;
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
      if (line.trim() !== "") yield JSON.parse(line) as NatlbEvent;
    }
  } catch (error) {
    if (!options.signal?.aborted) throw error;
  } finally {
    lines.close();
    res.destroy();
  }
}
