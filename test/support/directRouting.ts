// What the direct-routing end-to-end tests share (e2e-dr, e2e-dr-fast-path): the lab's "dr" service,
// the neighbours learned before a kernel-state snapshot, and the captures that prove the DR path.
import type { ExecutionContext } from "ava";
import type { CapturedPacket } from "../../lab/capture";
import { pingFrom } from "../../lab/icmpProbe";
import type { Lab } from "../../lab/topology";
import { SERVICE_PORT } from "./lab";

export function drService(lab: Lab, weights: number[]) {
  return {
    vip: lab.vip,
    port: SERVICE_PORT,
    forwarding: "dr",
    scheduler: "wrr",
    reals: weights.map((weight, i) => ({ ip: lab.reals[i]!.ip, weight })),
  };
}

/**
 * Neighbours the kernels learn on first contact, learned before the "before" snapshot: the router's
 * (it sends the client's frames), and the reals' in the gateway's kernel, whose neighbour table the
 * kernel fast path's redirect uses.
 */
export async function warmNeighbours(lab: Lab): Promise<void> {
  const echo = await pingFrom(lab, lab.router!.ns, lab.gateway.backendIp, 1);
  if (echo.received !== 1) throw new Error(`the router cannot reach the gateway: ${JSON.stringify(echo)}`);
  for (const real of lab.reals) {
    const fromGateway = await pingFrom(lab, lab.gateway.ns, real.ip, 1);
    if (fromGateway.received !== 1) throw new Error(`the gateway cannot reach ${real.ip}: ${JSON.stringify(fromGateway)}`);
  }
}

/**
 * At the real: every frame to the VIP came from natlb (its MAC as the source, the real's as the
 * destination), with the client's address and the VIP as natlb received them, and TTL 63 (the router's
 * hop only: natlb leaves the IP header alone); its answers leave from the VIP towards the router's MAC.
 * At natlb: TCP to and from the VIP is only ever client -> VIP (in from the router, out to the real).
 */
export function assertDirectPath(t: ExecutionContext, lab: Lab, atGateway: CapturedPacket[], atReal: CapturedPacket[]): void {
  const real = lab.reals[0]!;
  const toReal = atReal.filter((p) => p.dst === lab.vip);
  const fromReal = atReal.filter((p) => p.src === lab.vip);
  t.true(toReal.length > 20, `only ${toReal.length} frames to the VIP at ${real.ip}`);
  t.true(fromReal.length > 20, `only ${fromReal.length} frames from the VIP at ${real.ip}`);
  for (const p of toReal) {
    t.is(`${p.srcMac}>${p.dstMac}`, `${lab.gateway.backendMac}>${real.mac}`, "a frame to the VIP at the real");
    t.is(`${p.src}>${p.dst}:${p.dport}`, `${lab.client.ip}>${lab.vip}:${SERVICE_PORT}`);
    t.is(p.ttl, 63, "natlb does not decrement the TTL");
  }
  for (const p of fromReal) {
    t.is(`${p.sport}>${p.dst}`, `${SERVICE_PORT}>${lab.client.ip}`);
    t.is(p.dstMac, lab.router!.lanMac, "the real answers through the router");
  }
  t.true(atGateway.length > 20, `only ${atGateway.length} frames at natlb`);
  const replies = atGateway.filter((p) => p.src === lab.vip);
  t.is(replies.length, 0, `reply frames crossed natlb: ${JSON.stringify(replies.slice(0, 2))}`);
  t.true(atGateway.some((p) => p.dstMac === real.mac), "natlb's frames to the real are on its interface");
}
