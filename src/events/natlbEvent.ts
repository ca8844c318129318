// What natlb tells its watchers (`lb.events()`, `natlb events`): health transitions with their
// reasons, configuration changes with their origin, drains finished, flow-map pressure and spikes in drops. Every
// event has a sequence number (a watcher that lost its connection asks for what followed) and a time.

import type { ChangeOrigin } from "./changeOrigin";
import type { ChangeSummary } from "./changeSummary";
import type { DrainResult } from "../drain/drainOutcome";
import type { GatewayRole } from "../native";

export type NatlbEventBody =
  | { readonly type: "health"; readonly service: string; readonly real: string; readonly up: boolean; readonly reason: string }
  | { readonly type: "change"; readonly change: ChangeSummary; readonly origin: ChangeOrigin }
  /** The flow map crossed a level: "high" at 80 % of capacity, "full" when flows are refused, "normal" below 70 %. */
  | { readonly type: "flowMapPressure"; readonly level: "normal" | "high" | "full"; readonly live: number; readonly capacity: number }
  /** Drops of one reason per second rose far above their usual rate. */
  | { readonly type: "dropSpike"; readonly reason: string; readonly perSecond: number; readonly usualPerSecond: number }
  /** A drain (`natlb real drain`, `lb.drainReal()`) ended: connections left, whether the deadline came first, what `then` did. */
  | ({ readonly type: "drainFinished" } & DrainResult)
  /** BIRD took a VIP's announcement or withdrawal (config bgp). */
  | { readonly type: "bgp"; readonly vip: string; readonly announced: boolean }
  /**
   * The gateway's role in an active/backup pair changed (`natlb ha`, keepalived's notify): `reason` says
   * who said so. A new master hands the established flows it has (the synced ones) to the kernel fast
   * path at once: `flowsOffloaded` (0 without the fast path).
   */
  | {
      readonly type: "haRole";
      readonly role: GatewayRole;
      readonly previous: GatewayRole;
      readonly reason: string;
      readonly origin: ChangeOrigin;
      readonly flowsOffloaded?: number;
    }
  /** This watcher fell behind and missed events (its queue is bounded). */
  | { readonly type: "lagged"; readonly missed: number };

export type NatlbEventType = NatlbEventBody["type"];

export type NatlbEvent = NatlbEventBody & {
  /** Increases by one per event published. */
  readonly seq: number;
  /** ISO 8601. */
  readonly at: string;
};
