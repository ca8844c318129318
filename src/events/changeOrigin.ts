// Who is asking for a change, carried from the place that knows (the control socket knows its peer,
// the daemon knows a SIGHUP) to the Balancer without threading it through every API call: the
// audit log and the change events both name it.

import { AsyncLocalStorage } from "node:async_hooks";
import type { PeerCredentials } from "../native";

/** Where a change came from: a call in the process, the control socket (with its peer), or SIGHUP. */
export type ChangeOrigin =
  | { readonly via: "api" }
  | { readonly via: "control socket"; readonly peer: PeerCredentials }
  | { readonly via: "SIGHUP" };

export const SIGHUP_ORIGIN: ChangeOrigin = Object.freeze({ via: "SIGHUP" });
const API_ORIGIN: ChangeOrigin = Object.freeze({ via: "api" });

const current = new AsyncLocalStorage<ChangeOrigin>();

/** Runs `work` with `origin` as the origin of the changes it asks for. */
export function withChangeOrigin<T>(origin: ChangeOrigin, work: () => T): T {
  return current.run(origin, work);
}

/** The origin of the change being asked for now; a plain API call when nobody said otherwise. */
export function currentChangeOrigin(): ChangeOrigin {
  return current.getStore() ?? API_ORIGIN;
}
