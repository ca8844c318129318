// The HA pair for an ava test: lab/haPair.ts's running pair, with the daemons' and keepalived's output
// in the test log when the test fails.
import type { ExecutionContext } from "ava";
import { withHaPairRunning, type HaPair, type HaPairSetup } from "../../lab/haPair";

export { ECHO_SERVICE_PORT, HA_SERVICE_PORT, TAKEOVER_ARP_ROUNDS, syncConfig } from "../../lab/haPair";

export function withHaPair(t: ExecutionContext, setup: HaPairSetup, body: (pair: HaPair) => Promise<void>): Promise<void> {
  return withHaPairRunning(setup, body, (output) => t.log(output));
}
