// Shared set-up of the end-to-end tests: a lab per test (tests run in parallel), natlb started as the
// real daemon in the gateway namespace, and a snapshot of the gateway's kernel state.
import type { ExecutionContext } from "ava";
import { startBalancer, type BalancerProcess } from "../../lab/balancerProcess";
import { startBlobServer, type BlobServerHandle, type BlobServerOptions } from "../../lab/blobServer";
import { sbin } from "../../lab/netns";
import { createLab, type Lab } from "../../lab/topology";
import { startUdpEcho, type UdpEchoHandle } from "../../lab/udpEcho";

export const SERVICE_PORT = 80;
export const REAL_PORT = 8080;

export interface NatLab {
  lab: Lab;
  servers: BlobServerHandle[];
  natlb: BalancerProcess | undefined;
}

export function tcpService(lab: Lab, weights: number[], extra: Record<string, unknown> = {}) {
  return {
    vip: lab.vip,
    port: SERVICE_PORT,
    protocol: "tcp",
    scheduler: "wrr",
    reals: weights.map((weight, i) => ({ ip: lab.reals[i]!.ip, port: REAL_PORT, weight })),
    ...extra,
  };
}

export const UDP_SERVICE_PORT = 53;
export const UDP_REAL_PORT = 5353;

/** A UDP service on the lab's VIP over all its reals' echo servers. */
export function udpService(lab: Lab, extra: Record<string, unknown> = {}) {
  return {
    vip: lab.vip,
    port: UDP_SERVICE_PORT,
    protocol: "udp",
    scheduler: "rr",
    reals: lab.reals.map((r) => ({ ip: r.ip, port: UDP_REAL_PORT })),
    ...extra,
  };
}

/** Starts the UDP echo server on every real. */
export async function startUdpEchoes(lab: Lab): Promise<UdpEchoHandle[]> {
  const echoes: UdpEchoHandle[] = [];
  for (let i = 1; i <= lab.reals.length; i++) echoes.push(await startUdpEcho(lab, i, UDP_REAL_PORT));
  return echoes;
}

/** A lab whose natlb balances the UDP service over echo servers on every real. */
export async function withUdpLab(t: ExecutionContext, body: (env: NatLab) => Promise<void>): Promise<void> {
  await withNatLab(t, { offloads: true, config: (lab) => ({ services: [udpService(lab)] }) }, async (env) => {
    await startUdpEchoes(env.lab);
    await body(env);
  });
}

export interface NatLabOptions {
  offloads: boolean;
  reals?: number;
  config?: (lab: Lab) => unknown;
  startNatlb?: boolean;
  prefix?: string;
  gatewayQueues?: number;
  /** The lab's attack hosts (lab/topology.ts). */
  floodHost?: boolean;
  backendRogue?: boolean;
  /** The direct-routing topology (lab/topology.ts): a router, the gateway one-armed. */
  directRouting?: boolean;
  /** The full-NAT topology (lab/topology.ts): the reals' default route is a LAN router, not the gateway. */
  fullNat?: boolean;
  /** With directRouting: the gateway's client-side arm from the router (lab/topology.ts), so it is two-armed. */
  balancerArm?: boolean;
  /** Which reals (1-based) run a blob server on REAL_PORT; default all. `servers` follows this order. */
  blobReals?: number[];
  /** The port the blob servers listen on. Default REAL_PORT (direct routing: the service port). */
  realPort?: number;
  blobServer?: BlobServerOptions;
  /** Also a quiet UDP echo server on UDP_REAL_PORT on every real. */
  udpEchoes?: boolean;
}

/** Builds a lab with blob servers on its reals, runs `body`, and always tears everything down. */
export async function withNatLab(t: ExecutionContext, options: NatLabOptions, body: (env: NatLab) => Promise<void>): Promise<void> {
  const lab = await createLab({
    reals: options.reals ?? 3,
    offloads: options.offloads,
    ...(options.prefix ? { prefix: options.prefix } : {}),
    ...(options.gatewayQueues ? { gatewayQueues: options.gatewayQueues } : {}),
    ...(options.floodHost ? { floodHost: true } : {}),
    ...(options.backendRogue ? { backendRogue: true } : {}),
    ...(options.directRouting ? { directRouting: true } : {}),
    ...(options.fullNat ? { fullNat: true } : {}),
    ...(options.balancerArm ? { balancerArm: true } : {}),
  });
  const env: NatLab = { lab, servers: [], natlb: undefined };
  try {
    const blobReals = options.blobReals ?? lab.reals.map((_, i) => i + 1);
    env.servers = await Promise.all(blobReals.map((i) => startBlobServer(lab, i, options.realPort ?? REAL_PORT, options.blobServer)));
    if (options.udpEchoes) {
      await Promise.all(lab.reals.map((_, i) => startUdpEcho(lab, i + 1, UDP_REAL_PORT, { quiet: true })));
    }
    if (options.startNatlb !== false) {
      const config = options.config ? options.config(lab) : { services: [tcpService(lab, lab.reals.map(() => 1))] };
      env.natlb = await startBalancer(lab, config);
    }
    await body(env);
  } catch (error) {
    if (env.natlb) t.log(`natlb output:\n${env.natlb.output()}`);
    throw error;
  } finally {
    if (env.natlb) await env.natlb.stop().catch(() => undefined);
    await lab.destroy();
  }
}

/** Everything of the gateway's kernel state natlb may touch, as comparable text. */
export async function gatewaySnapshot(lab: Lab): Promise<Record<string, string>> {
  const ns = lab.gateway.ns;
  const run = async (cmd: string, args: string[]) => (await lab.exec(ns, cmd, args)).stdout;
  // eth0 and eth1; eth1 alone on the one-armed gateway of the direct-routing topology.
  const own = [...new Set([lab.gateway.clientIf, lab.gateway.backendIf])].sort();
  const sysctls = [
    "net.ipv4.ip_forward",
    ...["all", "default", ...own].flatMap((i) =>
      ["forwarding", "rp_filter", "proxy_arp", "arp_ignore", "arp_announce", "arp_accept", "accept_local", "send_redirects"].map(
        (k) => `net.ipv4.conf.${i}.${k}`,
      ),
    ),
    ...own.map((i) => `net.ipv4.neigh.${i}.proxy_delay`),
  ];
  const neighbours = JSON.parse(await run("ip", ["-j", "neigh", "show"])) as { dst: string; dev: string; lladdr?: string }[];
  return {
    routes: await run("ip", ["-j", "route", "show", "table", "all"]),
    rules: await run("ip", ["-j", "rule", "show"]),
    addresses: await run("ip", ["-j", "addr", "show"]),
    links: await run("ip", ["-j", "link", "show"]),
    // Entries the kernel keeps learning on its own change state (REACHABLE/STALE): compare what exists.
    neighbours: neighbours.map((n) => `${n.dst} ${n.dev} ${n.lladdr ?? ""}`).sort().join("\n"),
    proxy: await run("ip", ["-j", "neigh", "show", "proxy"]),
    sysctls: await run("sysctl", sysctls),
    offloads: (await Promise.all(own.map((i) => run("ethtool", ["-k", i])))).join(""),
    nftables: await run(sbin("nft"), ["list", "ruleset"]),
  };
}
