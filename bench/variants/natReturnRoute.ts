// NAT in the direct-routing topology (the modes lab, natlb two-armed): the reals' default route is the
// router, so the replies of a NAT'ed connection would go to the client directly, with the real's own
// address as source, and the client would drop them. While a NAT variant runs there, each real routes
// the client subnet via the balancer's LAN address; tear-down removes exactly that route (reals only:
// the gateway's own state is checked by gatewayState.ts).
import { CLIENT_SUBNET } from "../../lab/labAddresses";
import { IP_BIN } from "../../lab/netns";
import type { Lab } from "../../lab/topology";

/** The route each real gets, as `ip route` arguments after add/del. */
function routeArgs(lab: Lab, real: Lab["reals"][number]): string[] {
  return [CLIENT_SUBNET, "via", lab.gateway.backendIp, "dev", real.ifname];
}

/** True in a lab where the reals do not route through the balancer (the direct-routing topology). */
export function needsNatReturnRoute(lab: Lab): boolean {
  return lab.router !== null;
}

export async function addNatReturnRoutes(lab: Lab): Promise<void> {
  for (const real of lab.reals) await lab.exec(real.ns, IP_BIN, ["route", "add", ...routeArgs(lab, real)]);
}

/** Removes the routes; one that is missing already is fine (set-up failed half way). */
export async function removeNatReturnRoutes(lab: Lab): Promise<void> {
  const failures: string[] = [];
  for (const real of lab.reals) {
    const r = await lab.tryExec(real.ns, IP_BIN, ["route", "del", ...routeArgs(lab, real)]);
    if (r.code !== 0 && !/No such process|not found/i.test(r.stderr)) failures.push(`${real.ip}: ${r.stderr.trim()}`);
  }
  if (failures.length > 0) throw new Error(`could not remove the reals' route to ${CLIENT_SUBNET} via the balancer: ${failures.join("; ")}`);
}

/** The reals still holding the route (empty when none does, and always in the two-armed lab). */
export async function natReturnRouteLeftovers(lab: Lab): Promise<string[]> {
  if (!needsNatReturnRoute(lab)) return [];
  const found: string[] = [];
  for (const real of lab.reals) {
    const r = await lab.exec(real.ns, IP_BIN, ["route", "show", CLIENT_SUBNET]);
    if (r.stdout.trim() !== "") found.push(`route to ${CLIENT_SUBNET} on real ${real.ip}`);
  }
  return found;
}
