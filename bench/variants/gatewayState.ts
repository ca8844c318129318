// Kernel state of the lab gateway that variants add and must remove: the VIP as a local address,
// netfilter tables, policy rules, VIP routes, processes (and in the direct-routing lab the reals' route
// through the balancer, natReturnRoute.ts). The benchmark checks after every variant that none is
// left, so no variant ever measures through another one's leftovers.
import { IP_BIN, runIn, sbin } from "../../lab/netns";
import type { Lab } from "../../lab/topology";
import { sleep } from "../../lab/wait";
import { natReturnRouteLeftovers } from "./natReturnRoute";

const DEFAULT_RULE_PRIORITIES = new Set([0, 32766, 32767]);

/** Makes the VIP a local /32 address of the gateway's client interface (it then answers ARP for it). */
export async function addVipAddress(lab: Lab, vip: string): Promise<void> {
  await lab.exec(lab.gateway.ns, IP_BIN, ["addr", "add", `${vip}/32`, "dev", lab.gateway.clientIf]);
}

export async function removeVipAddress(lab: Lab, vip: string): Promise<void> {
  const r = await lab.tryExec(lab.gateway.ns, IP_BIN, ["addr", "del", `${vip}/32`, "dev", lab.gateway.clientIf]);
  if (r.code !== 0 && !/Cannot assign|not found|No such/i.test(r.stderr)) {
    throw new Error(`could not remove ${vip}/32 from the gateway: ${r.stderr.trim()}`);
  }
}

/** Waits until TCP listeners exist on ip:port for every port in the gateway namespace; fails fast when `alive()` turns false. */
export async function waitForListeners(lab: Lab, ip: string, ports: number[], timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!alive()) throw new Error("the process exited");
    const r = await lab.exec(lab.gateway.ns, sbin("ss"), ["-Hltn"]);
    if (ports.every((p) => r.stdout.includes(`${ip}:${p} `))) return;
    if (Date.now() > deadline) throw new Error(`no listeners on ${ip}:${ports.join(",")} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

interface IpAddr {
  addr_info?: Array<{ local?: string }>;
}
interface IpRoute {
  dst?: string;
}
interface IpRule {
  priority?: number;
}

/** What is left in the gateway beyond the bare lab (empty when clean). */
export async function gatewayLeftovers(lab: Lab, vip: string): Promise<string[]> {
  const ns = lab.gateway.ns;
  const found: string[] = [];
  const addrs = JSON.parse((await lab.exec(ns, IP_BIN, ["-j", "addr", "show"])).stdout) as IpAddr[];
  if (addrs.some((a) => a.addr_info?.some((i) => i.local === vip))) found.push(`address ${vip}`);
  const routes = JSON.parse((await lab.exec(ns, IP_BIN, ["-j", "route", "show", "table", "all"])).stdout) as IpRoute[];
  for (const r of routes) if (r.dst === vip || r.dst === `${vip}/32`) found.push(`route to ${vip}`);
  const rules = JSON.parse((await lab.exec(ns, IP_BIN, ["-j", "rule", "show"])).stdout) as IpRule[];
  for (const r of rules) if (!DEFAULT_RULE_PRIORITIES.has(r.priority ?? -1)) found.push(`ip rule ${JSON.stringify(r)}`);
  const nft = await lab.tryExec(ns, sbin("nft"), ["list", "ruleset"]);
  if (nft.code === 0 && nft.stdout.trim() !== "") found.push(`netfilter ruleset: ${nft.stdout.trim().split("\n")[0] ?? ""}...`);
  // From the root namespace: `ip netns pids` run inside would list itself.
  const pids = await runIn(null, IP_BIN, ["netns", "pids", ns], { timeoutMs: 10_000 });
  const alive = pids.stdout.split(/\s+/).filter(Boolean);
  if (alive.length > 0) found.push(`processes ${alive.join(",")}`);
  found.push(...(await natReturnRouteLeftovers(lab)));
  return found;
}

/** Throws unless the gateway is back to the bare lab; waits a little for exiting processes. */
export async function assertGatewayClean(lab: Lab, vip: string, after: string): Promise<void> {
  let left: string[] = [];
  const deadline = Date.now() + 5000;
  do {
    left = await gatewayLeftovers(lab, vip);
    if (left.length === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  } while (Date.now() < deadline);
  throw new Error(`after ${after} the gateway still holds: ${left.join("; ")}`);
}
