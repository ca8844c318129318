// The client side of GET /events: natlb's events from a running daemon, one JSON object per line,
// as an async iterator. It ends when the daemon stops or the signal aborts.

import type { NatlbEvent } from "../events";
import { CONTROL_ROUTES } from "./protocol";
import { streamControl } from "./streamClient";

export interface WatchEventsOptions {
  /** Start after this sequence number (replaying what the daemon still keeps). */
  readonly after?: number;
  readonly signal?: AbortSignal;
  /** How long to wait for the daemon to answer (not for events). */
  readonly connectTimeoutMs?: number;
}

export async function* watchEvents(socketPath: string, options: WatchEventsOptions = {}): AsyncGenerator<NatlbEvent, void, undefined> {
  const path = `${CONTROL_ROUTES.events.slice(4)}${options.after === undefined ? "" : `?after=${options.after}`}`;
  const { after: _after, ...rest } = options;
  for await (const line of streamControl(socketPath, path, rest)) yield line as NatlbEvent;
}
