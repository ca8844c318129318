// Who is asking for a change, carried from the place that knows (the control socket knows its peer,
// the daemon knows a SIGHUP) to the Balancer without threading it through every API call.

import { AsyncLocalStorage } from "node:async_hooks";
import type { ChangeOrigin } from "./natlbEvent";

const current = new AsyncLocalStorage<ChangeOrigin>();

/** Runs `work` with `origin` as the origin of the changes it asks for. */
export function withChangeOrigin<T>(origin: ChangeOrigin, work: () => T): T {
  return current.run(origin, work);
}

/** The origin of the change being asked for now; a plain API call when nobody said otherwise. */
export function currentChangeOrigin(): ChangeOrigin {
  return current.getStore() ?? { via: "api" };
}
