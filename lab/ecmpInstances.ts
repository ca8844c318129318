// What the ECMP end-to-end test and the failover bench share: natlb instances in the ECMP lab (lab/ecmpTopology.ts),
// each with the same "dr" + "mh" services and its own BIRD, started and killed one by one.
import { join } from "node:path";
import { startBalancer, type BalancerProcess, type StartBalancerOptions } from "./balancerProcess";
import type { BirdProcess, EcmpInstance, EcmpLab } from "./ecmpTopology";
import { waitUntil } from "./wait";

/** The shared Maglev seed: what makes every instance pick the same real. */
export const ECMP_MH_SEED = 0x5eed;

/** A file whose presence fails every health check of one instance (its reals all go down there only). */
export function realsDownFlag(lab: EcmpLab, instance: EcmpInstance): string {
  return join(lab.tempDir, `g${instance.index}-reals-down`);
}

/** A service of the instances, on the lab's VIP. */
export interface EcmpServicePort {
  readonly port: number;
  readonly protocol: "tcp" | "udp";
}

/** One instance's config: the same services everywhere (every real, dr, mh with one seed), its own BIRD files. */
export function instanceConfig(lab: EcmpLab, instance: EcmpInstance, services: readonly EcmpServicePort[], extra: Record<string, unknown> = {}) {
  return {
    ...extra,
    services: services.map(({ port, protocol }) => ({
      vip: lab.vip,
      port,
      protocol,
      forwarding: "dr",
      scheduler: "mh",
      // The client port in the hash too: the lab's one client's connections spread over the reals.
      schedulerFlags: ["mh-port"],
      mhSeed: ECMP_MH_SEED,
      reals: lab.reals.map((r) => ({ ip: r.ip })),
      // The reals are up while the instance's flag file is absent. A generous timeout: a check that
      // failed only because the machine was busy would give this instance another table than the others'.
      healthCheck: { type: "exec", command: ["/usr/bin/test", "!", "-e", realsDownFlag(lab, instance)], intervalMs: 300, timeoutMs: 5000, rise: 1, fall: 2 },
    })),
    bgp: { birdSocket: instance.birdSocket, routesFile: instance.routesFile },
  };
}

export interface RunningInstance {
  readonly instance: EcmpInstance;
  natlb: BalancerProcess | undefined;
  bird: BirdProcess | undefined;
}

/** natlb first (it writes the routes file; it retries BIRD until BIRD answers), then BIRD. */
export async function startInstance(
  lab: EcmpLab, running: RunningInstance, services: readonly EcmpServicePort[], options: StartBalancerOptions = {}, configExtra: Record<string, unknown> = {},
): Promise<void> {
  await startInstanceNatlb(lab, running, services, options, configExtra);
  await startInstanceBird(lab, running);
}

/** natlb alone: it forwards what reaches it, and nothing does until its BIRD announces the VIPs. */
export async function startInstanceNatlb(
  lab: EcmpLab, running: RunningInstance, services: readonly EcmpServicePort[], options: StartBalancerOptions = {}, configExtra: Record<string, unknown> = {},
): Promise<void> {
  running.natlb = await startBalancer(lab, instanceConfig(lab, running.instance, services, configExtra), { ...options, ns: running.instance.ns });
}

/** The instance's BIRD, once its natlb runs; resolves when natlb has had BIRD take its VIPs. */
export async function startInstanceBird(lab: EcmpLab, running: RunningInstance): Promise<void> {
  running.bird = await lab.startInstanceBird(running.instance.index);
  // BIRD read the file natlb wrote; natlb's next try of `configure` (every second) finds it up.
  const natlb = running.natlb;
  if (!natlb) throw new Error(`start g${running.instance.index}'s natlb before its BIRD`);
  await waitUntil(`g${running.instance.index}'s natlb to have BIRD take its VIPs`, async () => {
    const bgp = (await natlb.status()).bgp;
    return bgp !== undefined && bgp.pending.length === 0 && bgp.lastError === undefined;
  }, 10_000, 100);
}

/** SIGKILL to natlb and to its BIRD: the instance dies as a crashed box would, its links stay up. */
export async function killInstance(running: RunningInstance): Promise<void> {
  await Promise.all([running.natlb?.stop("SIGKILL"), running.bird?.stop("SIGKILL")]);
  running.natlb = undefined;
  running.bird = undefined;
}

/** Waits until the router sends `vip` to exactly these instances. */
export async function waitForNexthops(lab: EcmpLab, vip: string, instances: readonly EcmpInstance[], timeoutMs = 20_000): Promise<void> {
  const wanted = instances.map((g) => g.clientIp).sort().join(",");
  let last: string[] = [];
  await waitUntil(
    `the router's route to ${vip} via ${wanted || "nothing"}`,
    async () => {
      last = await lab.routerNexthops(vip);
      return last.join(",") === wanted;
    },
    timeoutMs,
    50,
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}; the router has ${last.join(",") || "no route"}`);
  });
}
