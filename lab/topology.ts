/*
 * The natlb network-namespace lab. Every box is a namespace named <prefix><id>-<role>, unique per run.
 *
 *  client <id>-c             gateway <id>-gw                         switch <id>-sw               real <id>-rI (I = 1..N)
 * +------------------+      +--------------------------------+      +---------------------+      +----------------------+
 * | eth0             |      | eth0             eth1          |      | p-gw                |      | eth0                 |
 * | 198.18.0.2/24    |=veth=| 198.18.0.1/24    198.18.1.1/24 |=veth=|   \                 |      | 198.18.1.(10+I)      |
 * | default via      |      | ip_forward=1                   |      |    br0 --- p-r1     |=veth=| default via          |
 * |   198.18.0.1     |      | the balancer runs here;        |      |     \----- p-rN     |      |   198.18.1.1         |
 * |                  |      | VIPs 198.18.0.100 and .101     |      | (one port per real) |      | r1 = 198.18.1.11     |
 * |                  |      | are NOT configured: the        |      |                     |      | r2 = 198.18.1.12 ... |
 * |                  |      | balancer answers their ARP     |      |                     |      |                      |
 * +------------------+      +--------------------------------+      +---------------------+      +----------------------+
 *
 * Two optional hosts for attack tests:
 *
 *  flood host <id>-f (floodHost)          gateway <id>-gw          rogue <id>-x (backendRogue)
 * +----------------------------+      +--------------------+      +-------------------------+
 * | eth0 198.18.2.2/24         |=veth=| eth2 198.18.2.1/24 |      | eth0 198.18.1.99/24     |=veth= switch port p-x
 * | default via 198.18.2.1     |      | 198.19.0.0/16 via  |      | default via 198.18.1.1  |      (on the backend bridge,
 * | ip_forward=0: drops what   |      |   198.18.2.2       |      | (a host on the backend  |       like a real)
 * | is not for it, no ICMP     |      | (the spoof range)  |      |  LAN that spoofs)       |
 * +----------------------------+      +--------------------+      +-------------------------+
 *
 * The flood host sends spoofed floods (lab/flood.ts) with sources in 198.19.0.0/16; the gateway
 * routes that range back to it, so every reply to a spoofed source stays in the lab and ends at the
 * flood host, which does not forward and answers nothing (no RST, no ICMP: with forwarding off the
 * kernel drops frames for addresses it does not own silently).
 *
 * The direct-routing topology (directRouting: true), for LVS-DR: the client is behind a router, and the
 * router, the balancer (one-armed) and the reals share the backend LAN. The reals answer the client
 * directly, through the router: their replies never reach the balancer.
 *
 *  client <id>-c          router <id>-rt                     switch <id>-sw          real <id>-rI
 * +----------------+     +-----------------------------+    +---------------+      +-------------------------+
 * | eth0           |     | eth0           eth1         |    | p-rt          |      | eth0 198.18.1.(10+I)    |
 * | 198.18.0.2/24  |=veth| 198.18.0.1/24  198.18.1.1/24|=veth|  br0 -- p-rI  |=veth=| lo: the VIPs (/32)      |
 * | default via    |     | ip_forward=1, proxy ARP for |    |   \-- p-gw    |      | arp_ignore=1,           |
 * |   198.18.0.1   |     | the VIPs, via 198.18.1.2    |    +-------|-------+      | arp_announce=2,         |
 * +----------------+     +-----------------------------+            |              | rp_filter=2 (loose)     |
 *                                                     gateway <id>-gw (the balancer) | default via 198.18.1.1  |
 *                                                     eth1 198.18.1.2/24, default    | (the router)            |
 *                                                     via 198.18.1.1; no eth0        +-------------------------+
 *
 * With balancerArm (direct-routing topology only) the balancer is two-armed: a link of its own from
 * the router (eth2, 198.18.3.1/24) to the gateway (eth0, 198.18.3.2/24). The router routes the VIPs
 * over it, and the gateway routes the client subnet back over it; eth1 stays on the backend LAN with
 * the reals, whose default route is still the router. natlb then runs nat (the reals route the client
 * subnet via 198.18.1.2), fullnat (no route on the reals) and dr with the reals behind its second arm.
 *
 * The full-NAT topology (fullNat: true), for forwarding "fullnat": the NAT topology, but the reals'
 * default route is a router <id>-lr on the backend LAN (198.18.1.1, which reaches no client), not the
 * balancer; the balancer has 198.18.1.2 on eth1 and the pool addresses 198.18.1.3 and .4 (FULLNAT_POOL_IPS).
 * A reply reaches the client only because the real answers the balancer's pool address.
 *
 *  client <id>-c       gateway <id>-gw                       switch <id>-sw        real <id>-rI
 *  eth0 198.18.0.2 === eth0 198.18.0.1   eth1 198.18.1.2  === br0 -- p-rI ======= eth0 198.18.1.(10+I)
 *                                         + 198.18.1.3, .4     \-- p-lr          default via 198.18.1.1
 *                                                                 |
 *                                                  router <id>-lr eth1 198.18.1.1 (LAN only)
 *
 * IPv6 is off in every namespace (no RS/MLD/DAD noise frames). With offloads=false, TSO/GSO/GRO are off
 * on every veth end and on the bridge, so frames are MTU-sized like on a NIC without GRO.
 * Veth pairs are created directly inside their namespaces: the root namespace is never touched.
 */
import { randomBytes } from 'node:crypto';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import {
  BACKEND_ROGUE_IP,
  BALANCER_ARM_GATEWAY_IP,
  BALANCER_ARM_ROUTER_IP,
  CLIENT_SUBNET,
  CLIENT_IP,
  DR_GATEWAY_IP,
  FULLNAT_GATEWAY_IP,
  FULLNAT_POOL_IPS,
  FLOOD_HOST_IP,
  GATEWAY_BACKEND_IP,
  GATEWAY_CLIENT_IP,
  GATEWAY_FLOOD_IP,
  MAX_REALS,
  PREFIX_LEN,
  SPOOF_RANGE,
  VIP,
  VIP2,
  realIp,
} from './labAddresses';
import { registerLab, unregisterLab, type LiveLab } from './labRegistry';
import { LabError } from './labError';
import { NamespaceBoundLab } from './labNamespaceRunner';
import { IP_BIN, runIn, runInChecked, sbin, type RunOptions, type RunResult } from './netns';
import { stopProcesses } from './processes';
import { OWNER_ALIAS_PREFIX, listNamespaces, removeNamespace } from './staleLabs';
import { waitUntil } from './wait';

export { listLabNamespaces, removeStaleLabs } from './staleLabs';

export interface LabOptions {
  /** Number of real servers, 1..8. */
  reals: number;
  /** true: veth default offloads (TSO/GSO/GRO on, ~64 KB frames); false: all off (MTU frames). */
  offloads: boolean;
  /** Namespace name prefix: a lower-case letter then up to 5 letters/digits. Default "nl". */
  prefix?: string;
  /** Receive and transmit queues of the veth pairs at the gateway (both ends), 1..8. Default 1. */
  gatewayQueues?: number;
  /**
   * 4 lower-case hex digits to use instead of a random id (reproducible names). A name collision then
   * shows up as a creation failure, and what was made is removed.
   */
  id?: string;
  /**
   * Adds the flood host <id>-f on a link of its own to the gateway (gateway eth2), and a gateway route
   * that sends the spoof range (SPOOF_RANGE) back to it. Default false.
   */
  floodHost?: boolean;
  /** Adds the rogue host <id>-x on the backend bridge, 198.18.1.99, default route via the gateway. Default false. */
  backendRogue?: boolean;
  /**
   * The direct-routing topology (the diagram above): a router <id>-rt between the client and the
   * backend LAN, the gateway one-armed on that LAN, the VIPs on the reals' lo. Default false.
   */
  directRouting?: boolean;
  /** The full-NAT topology (above): the reals' default route is a LAN router, not the gateway. Default false. */
  fullNat?: boolean;
  /** With directRouting: the balancer's client-side arm (above), so it is two-armed. Default false. */
  balancerArm?: boolean;
}

/** One addressed interface of a lab namespace. */
export interface LabHost {
  ns: string;
  ifname: string;
  ip: string;
  mac: string;
}

/** In the direct-routing topology the gateway is one-armed (clientIf and backendIf are both eth1) unless it has the balancer arm. */
export interface LabGateway {
  ns: string;
  clientIf: 'eth0' | 'eth1';
  backendIf: 'eth1';
  clientIp: string;
  backendIp: string;
  clientMac: string;
  backendMac: string;
}

/** The flood host (LabOptions.floodHost): eth0 is its side of the link to the gateway's eth2. */
export interface LabFloodHost extends LabHost {
  gatewayIf: 'eth2';
  gatewayIp: string;
  gatewayMac: string;
  /** The source range of its spoofed floods, routed back to it by the gateway. */
  spoofRange: string;
}

/** The direct-routing topology's router: eth0 towards the client, eth1 on the backend LAN. */
export interface LabRouter {
  ns: string;
  clientIf: 'eth0';
  lanIf: 'eth1';
  clientIp: string;
  lanIp: string;
  clientMac: string;
  lanMac: string;
}

export interface LabSwitch {
  ns: string;
  bridge: 'br0';
  /** Bridge ports: "p-gw" (towards the gateway), then "p-r1".."p-rN", then "p-x" with a backend rogue, then "p-rt" with a router. */
  ports: string[];
}

export interface Lab {
  /** <prefix><4 hex>, the common beginning of every namespace name of this lab. */
  readonly id: string;
  readonly offloads: boolean;
  readonly client: LabHost;
  readonly gateway: LabGateway;
  readonly switch: LabSwitch;
  /** reals[0] is r1 (198.18.1.11), reals[i] is r(i+1). */
  readonly reals: LabHost[];
  readonly vip: string;
  readonly vip2: string;
  /** The flood host, or null unless createLab was asked for one (floodHost). */
  readonly floodHost: LabFloodHost | null;
  /** The rogue host on the backend LAN, or null unless createLab was asked for one (backendRogue). */
  readonly backendRogue: LabHost | null;
  /** The router of the direct-routing topology, or null unless createLab was asked for it (directRouting). */
  readonly router: LabRouter | null;
  /** The full-NAT topology's LAN router (the reals' default route), or null unless asked for (fullNat). */
  readonly lanRouter: LabHost | null;
  /** The full-NAT topology's pool addresses on the gateway's eth1 (empty in the other topologies). */
  readonly fullNatPool: readonly string[];
  /** Every namespace of the lab. */
  readonly namespaces: readonly string[];
  readonly destroyed: boolean;
  /** Runs a command in one of the lab's namespaces; throws a CommandError (with stderr) unless it exits 0. */
  exec(ns: string, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Like exec but never throws: inspect `code`. */
  tryExec(ns: string, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /**
   * Starts a process in one of the lab's namespaces; it is killed by destroy() (and on process exit).
   * stdio defaults to ['ignore', 'pipe', 'pipe']: read stdout/stderr (or pass `stdio`) so it never blocks.
   */
  spawn(ns: string, cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Kills tracked processes (SIGTERM, SIGKILL after 2 s) and deletes every namespace. Idempotent. */
  destroy(): Promise<void>;
}

/** The lab's real by 1-based index (1 = r1 = 198.18.1.11), with a clear error when out of range. */
export function realByIndex(lab: Pick<Lab, 'reals'>, realIndex: number): LabHost {
  const real = lab.reals[realIndex - 1];
  if (!Number.isInteger(realIndex) || real === undefined) {
    throw new RangeError(`realIndex is 1-based (r1..r${lab.reals.length}), got ${realIndex}`);
  }
  return real;
}

export { LabError };

/** A namespace the lab wanted to create already exists. */
export class NamespaceExistsError extends LabError {
  override readonly name = 'NamespaceExistsError';
}

const PREFIX_RE = /^[a-z][a-z0-9]{0,5}$/;
const BRIDGE = 'br0';
const ROGUE_PORT = 'p-x';
const FLOOD_GATEWAY_IF = 'eth2';
const ROUTER_PORT = 'p-rt';
const LAN_ROUTER_PORT = 'p-lr';
/** The router's end of the balancer arm. */
const ROUTER_ARM_IF = 'eth2';

interface LabNames {
  id: string;
  client: string;
  gateway: string;
  sw: string;
  reals: string[];
  flood: string | null;
  rogue: string | null;
  router: string | null;
  lanRouter: string | null;
  /** The balancer's client-side arm (direct-routing topology). */
  balancerArm: boolean;
  all: string[];
}

/** The optional hosts a lab is built with. */
interface LabExtras {
  floodHost: boolean;
  backendRogue: boolean;
  directRouting: boolean;
  fullNat: boolean;
  balancerArm: boolean;
}

/** Builds the lab. On any failure everything created so far is removed and the error is rethrown. */
export async function createLab(options: LabOptions): Promise<Lab> {
  const prefix = options.prefix ?? 'nl';
  if (!PREFIX_RE.test(prefix)) {
    throw new LabError(`lab prefix must be a lower-case letter followed by up to 5 letters/digits, got "${prefix}"`);
  }
  if (!Number.isInteger(options.reals) || options.reals < 1 || options.reals > MAX_REALS) {
    throw new LabError(`reals must be an integer in 1..${MAX_REALS}, got ${String(options.reals)}`);
  }
  if (typeof options.offloads !== 'boolean') throw new LabError('offloads must be true or false');
  const extras: LabExtras = {
    floodHost: options.floodHost ?? false,
    backendRogue: options.backendRogue ?? false,
    directRouting: options.directRouting ?? false,
    fullNat: options.fullNat ?? false,
    balancerArm: options.balancerArm ?? false,
  };
  if (typeof extras.balancerArm !== 'boolean') throw new LabError('balancerArm must be true or false');
  if (extras.balancerArm && !extras.directRouting) throw new LabError('balancerArm is a part of the direct-routing topology: set directRouting too');
  if (typeof extras.fullNat !== 'boolean') throw new LabError('fullNat must be true or false');
  if (extras.fullNat && extras.directRouting) throw new LabError('fullNat and directRouting are two different topologies: choose one');
  if (typeof extras.floodHost !== 'boolean') throw new LabError('floodHost must be true or false');
  if (typeof extras.directRouting !== 'boolean') throw new LabError('directRouting must be true or false');
  if (extras.directRouting && extras.floodHost) throw new LabError('the direct-routing topology has no flood host (its gateway has no eth2)');
  if (typeof extras.backendRogue !== 'boolean') throw new LabError('backendRogue must be true or false');
  const queues = options.gatewayQueues ?? 1;
  if (!Number.isInteger(queues) || queues < 1 || queues > 8) {
    throw new LabError(`gatewayQueues must be an integer in 1..8, got ${String(options.gatewayQueues)}`);
  }
  if (process.getuid?.() !== 0) throw new LabError('the lab needs root (CAP_NET_ADMIN/CAP_SYS_ADMIN) to create network namespaces');

  if (options.id !== undefined && !/^[0-9a-f]{4}$/.test(options.id)) {
    throw new LabError(`lab id must be 4 lower-case hex digits, got "${options.id}"`);
  }
  for (let attempt = 1; ; attempt++) {
    const names = await pickNames(prefix, options.reals, extras, options.id);
    const live: LiveLab = { id: names.id, namespaces: [], children: new Set() };
    registerLab(live);
    try {
      const parts = await build(names, options.offloads, queues, live);
      return new NetnsLab(names, options.offloads, live, parts);
    } catch (e) {
      await teardown(live).catch(() => undefined);
      // Another process picked the same random id at the same moment: take another one.
      if (e instanceof NamespaceExistsError && options.id === undefined && attempt < 3) continue;
      throw e;
    }
  }
}

function labNames(id: string, reals: number, extras: LabExtras): LabNames {
  const realNames = Array.from({ length: reals }, (_, i) => `${id}-r${i + 1}`);
  const flood = extras.floodHost ? `${id}-f` : null;
  const rogue = extras.backendRogue ? `${id}-x` : null;
  const router = extras.directRouting ? `${id}-rt` : null;
  const lanRouter = extras.fullNat ? `${id}-lr` : null;
  const names = { id, client: `${id}-c`, gateway: `${id}-gw`, sw: `${id}-sw`, reals: realNames, flood, rogue, router, lanRouter, balancerArm: extras.balancerArm };
  const optional = [flood, rogue, router, lanRouter].filter((n): n is string => n !== null);
  return { ...names, all: [names.client, names.gateway, names.sw, ...realNames, ...optional] };
}

async function pickNames(prefix: string, reals: number, extras: LabExtras, fixedId: string | undefined): Promise<LabNames> {
  if (fixedId !== undefined) return labNames(`${prefix}${fixedId}`, reals, extras);
  const existing = await listNamespaces();
  for (let attempt = 0; attempt < 20; attempt++) {
    const id = `${prefix}${randomBytes(2).toString('hex')}`;
    if (!existing.some((n) => n.startsWith(`${id}-`))) return labNames(id, reals, extras);
  }
  throw new LabError(`could not find an unused lab id for prefix "${prefix}"; remove stale labs (removeStaleLabs)`);
}

interface BuiltParts {
  client: LabHost;
  gateway: LabGateway;
  sw: LabSwitch;
  reals: LabHost[];
  floodHost: LabFloodHost | null;
  backendRogue: LabHost | null;
  router: LabRouter | null;
  lanRouter: LabHost | null;
}

/** ip -n <ns> ...: iproute2 switches namespace itself, no `ip netns exec` needed. */
export function ipIn(ns: string, ...args: string[]): Promise<RunResult> {
  return runInChecked(null, IP_BIN, ['-n', ns, ...args], { timeoutMs: 15_000 });
}

async function build(names: LabNames, offloads: boolean, gatewayQueues: number, live: LiveLab): Promise<BuiltParts> {
  // 1. Namespaces: IPv6 off before any interface exists, owner marker, lo up.
  for (const ns of names.all) {
    await addNamespace(ns);
    live.namespaces.push(ns);
  }
  await Promise.all(
    names.all.map(async (ns) => {
      await runInChecked(ns, sbin('sysctl'), ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      await ipIn(ns, 'link', 'set', 'dev', 'lo', 'alias', `${OWNER_ALIAS_PREFIX}${process.pid}`);
      await ipIn(ns, 'link', 'set', 'dev', 'lo', 'up');
    }),
  );

  // 2. Links. Each veth pair is created inside its namespaces (peer netns), never in the root one.
  const realPorts = names.reals.map((_, i) => `p-r${i + 1}`);
  const ports = ['p-gw', ...realPorts, ...(names.rogue !== null ? [ROGUE_PORT] : []), ...(names.router !== null ? [ROUTER_PORT] : []), ...(names.lanRouter !== null ? [LAN_ROUTER_PORT] : [])];
  await ipIn(names.sw, 'link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0');
  const queues = ['numtxqueues', String(gatewayQueues), 'numrxqueues', String(gatewayQueues)];
  if (names.router !== null) {
    // Direct routing: the client's link goes to the router, which has a port on the backend LAN.
    await ipIn(names.client, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', names.router);
    await ipIn(names.router, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', ROUTER_PORT, 'netns', names.sw);
    if (names.balancerArm) {
      await ipIn(names.router, 'link', 'add', ROUTER_ARM_IF, ...queues, 'type', 'veth', 'peer', 'name', 'eth0', ...queues, 'netns', names.gateway);
    }
  } else {
    await ipIn(names.client, 'link', 'add', 'eth0', ...queues, 'type', 'veth', 'peer', 'name', 'eth0', ...queues, 'netns', names.gateway);
  }
  await ipIn(names.gateway, 'link', 'add', 'eth1', ...queues, 'type', 'veth', 'peer', 'name', 'p-gw', ...queues, 'netns', names.sw);
  if (names.lanRouter !== null) {
    await ipIn(names.lanRouter, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', LAN_ROUTER_PORT, 'netns', names.sw);
  }
  for (const [i, ns] of names.reals.entries()) {
    await ipIn(ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', realPorts[i] as string, 'netns', names.sw);
  }
  if (names.rogue !== null) await ipIn(names.rogue, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', ROGUE_PORT, 'netns', names.sw);
  if (names.flood !== null) await ipIn(names.gateway, 'link', 'add', FLOOD_GATEWAY_IF, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', names.flood);
  for (const port of ports) await ipIn(names.sw, 'link', 'set', 'dev', port, 'master', BRIDGE);

  // 3. Offloads (before the links come up, so no frame is ever sent with the other setting).
  const interfaces: Array<[string, string]> = [
    [names.client, 'eth0'],
    ...(names.router !== null
      ? [
          [names.router, 'eth0'] as [string, string],
          [names.router, 'eth1'] as [string, string],
          ...(names.balancerArm ? [[names.router, ROUTER_ARM_IF] as [string, string], [names.gateway, 'eth0'] as [string, string]] : []),
        ]
      : [[names.gateway, 'eth0'] as [string, string]]),
    [names.gateway, 'eth1'],
    ...(names.lanRouter !== null ? [[names.lanRouter, 'eth1'] as [string, string]] : []),
    [names.sw, BRIDGE],
    ...ports.map((p): [string, string] => [names.sw, p]),
    ...names.reals.map((ns): [string, string] => [ns, 'eth0']),
    ...(names.rogue !== null ? [[names.rogue, 'eth0'] as [string, string]] : []),
    ...(names.flood !== null ? [[names.gateway, FLOOD_GATEWAY_IF] as [string, string], [names.flood, 'eth0'] as [string, string]] : []),
  ];
  if (!offloads) {
    await Promise.all(
      interfaces.map(([ns, ifname]) => runInChecked(ns, sbin('ethtool'), ['-K', ifname, 'tso', 'off', 'gso', 'off', 'gro', 'off'])),
    );
  }

  // 4. Addresses, routes, forwarding.
  const cidr = (ip: string): string => `${ip}/${PREFIX_LEN}`;
  await ipIn(names.client, 'addr', 'add', cidr(CLIENT_IP), 'dev', 'eth0');
  if (names.router !== null) {
    // The router takes the gateway's addresses (so the client's and the reals' routes stay as they
    // are); the one-armed gateway has an address of its own on the LAN.
    await ipIn(names.router, 'addr', 'add', cidr(GATEWAY_CLIENT_IP), 'dev', 'eth0');
    await ipIn(names.router, 'addr', 'add', cidr(GATEWAY_BACKEND_IP), 'dev', 'eth1');
    await runInChecked(names.router, sbin('sysctl'), ['-q', '-w', 'net.ipv4.ip_forward=1']);
    await ipIn(names.gateway, 'addr', 'add', cidr(DR_GATEWAY_IP), 'dev', 'eth1');
    if (names.balancerArm) {
      await ipIn(names.router, 'addr', 'add', cidr(BALANCER_ARM_ROUTER_IP), 'dev', ROUTER_ARM_IF);
      await ipIn(names.gateway, 'addr', 'add', cidr(BALANCER_ARM_GATEWAY_IP), 'dev', 'eth0');
    }
    await Promise.all(names.reals.map((ns) => makeDirectRoutingReal(ns)));
  } else if (names.lanRouter !== null) {
    // Full NAT: the LAN router takes 198.18.1.1 (the reals' default route); the gateway has its own
    // address and the pool addresses on the LAN.
    await ipIn(names.gateway, 'addr', 'add', cidr(GATEWAY_CLIENT_IP), 'dev', 'eth0');
    for (const ip of [FULLNAT_GATEWAY_IP, ...FULLNAT_POOL_IPS]) await ipIn(names.gateway, 'addr', 'add', cidr(ip), 'dev', 'eth1');
    await ipIn(names.lanRouter, 'addr', 'add', cidr(GATEWAY_BACKEND_IP), 'dev', 'eth1');
    await runInChecked(names.lanRouter, sbin('sysctl'), ['-q', '-w', 'net.ipv4.ip_forward=1']);
  } else {
    await ipIn(names.gateway, 'addr', 'add', cidr(GATEWAY_CLIENT_IP), 'dev', 'eth0');
    await ipIn(names.gateway, 'addr', 'add', cidr(GATEWAY_BACKEND_IP), 'dev', 'eth1');
  }
  await runInChecked(names.gateway, sbin('sysctl'), ['-q', '-w', 'net.ipv4.ip_forward=1']);
  for (const [i, ns] of names.reals.entries()) await ipIn(ns, 'addr', 'add', cidr(realIp(i + 1)), 'dev', 'eth0');
  if (names.rogue !== null) await ipIn(names.rogue, 'addr', 'add', cidr(BACKEND_ROGUE_IP), 'dev', 'eth0');
  if (names.flood !== null) {
    await ipIn(names.gateway, 'addr', 'add', cidr(GATEWAY_FLOOD_IP), 'dev', FLOOD_GATEWAY_IF);
    await ipIn(names.flood, 'addr', 'add', cidr(FLOOD_HOST_IP), 'dev', 'eth0');
    // A host, not a router: what is not for its own address is dropped, silently.
    await runInChecked(names.flood, sbin('sysctl'), ['-q', '-w', 'net.ipv4.ip_forward=0']);
  }
  for (const [ns, ifname] of interfaces) await ipIn(ns, 'link', 'set', 'dev', ifname, 'up');
  await ipIn(names.client, 'route', 'add', 'default', 'via', GATEWAY_CLIENT_IP, 'dev', 'eth0');
  for (const ns of names.reals) await ipIn(ns, 'route', 'add', 'default', 'via', GATEWAY_BACKEND_IP, 'dev', 'eth0');
  if (names.router !== null) {
    await ipIn(names.gateway, 'route', 'add', 'default', 'via', GATEWAY_BACKEND_IP, 'dev', 'eth1');
    if (names.balancerArm) await ipIn(names.gateway, 'route', 'add', CLIENT_SUBNET, 'via', BALANCER_ARM_ROUTER_IP, 'dev', 'eth0');
    const [vipNextHop, vipDev] = names.balancerArm ? [BALANCER_ARM_GATEWAY_IP, ROUTER_ARM_IF] : [DR_GATEWAY_IP, 'eth1'];
    for (const vip of [VIP, VIP2]) {
      await ipIn(names.router, 'route', 'add', `${vip}/32`, 'via', vipNextHop, 'dev', vipDev);
      // The VIPs are in the client's subnet: the router answers the client's ARP for them (as natlb
      // does in the NAT topology) and routes their traffic to natlb.
      await ipIn(names.router, 'neigh', 'add', 'proxy', vip, 'dev', 'eth0');
    }
  }
  if (names.rogue !== null) await ipIn(names.rogue, 'route', 'add', 'default', 'via', GATEWAY_BACKEND_IP, 'dev', 'eth0');
  if (names.flood !== null) {
    await ipIn(names.flood, 'route', 'add', 'default', 'via', GATEWAY_FLOOD_IP, 'dev', 'eth0');
    await ipIn(names.gateway, 'route', 'add', SPOOF_RANGE, 'via', FLOOD_HOST_IP, 'dev', FLOOD_GATEWAY_IF);
  }

  // 5. Wait until every link is up and every bridge port forwards.
  await waitUntil('lab links to come up', () => allLinksUp(interfaces), 10_000, 50);
  await waitUntil('bridge ports to forward', () => bridgePortsForwarding(names.sw, ports), 10_000, 50);

  const mac = (ns: string, ifname: string): Promise<string> => macOf(ns, ifname);
  const client: LabHost = { ns: names.client, ifname: 'eth0', ip: CLIENT_IP, mac: await mac(names.client, 'eth0') };
  const gatewayMac = await mac(names.gateway, 'eth1');
  const gateway: LabGateway =
    names.router !== null && !names.balancerArm
      ? { ns: names.gateway, clientIf: 'eth1', backendIf: 'eth1', clientIp: DR_GATEWAY_IP, backendIp: DR_GATEWAY_IP, clientMac: gatewayMac, backendMac: gatewayMac }
      : names.router !== null
        ? {
            ns: names.gateway,
            clientIf: 'eth0',
            backendIf: 'eth1',
            clientIp: BALANCER_ARM_GATEWAY_IP,
            backendIp: DR_GATEWAY_IP,
            clientMac: await mac(names.gateway, 'eth0'),
            backendMac: gatewayMac,
          }
        : {
          ns: names.gateway,
          clientIf: 'eth0',
          backendIf: 'eth1',
          clientIp: GATEWAY_CLIENT_IP,
          backendIp: names.lanRouter !== null ? FULLNAT_GATEWAY_IP : GATEWAY_BACKEND_IP,
          clientMac: await mac(names.gateway, 'eth0'),
          backendMac: gatewayMac,
        };
  const router: LabRouter | null =
    names.router === null
      ? null
      : {
          ns: names.router,
          clientIf: 'eth0',
          lanIf: 'eth1',
          clientIp: GATEWAY_CLIENT_IP,
          lanIp: GATEWAY_BACKEND_IP,
          clientMac: await mac(names.router, 'eth0'),
          lanMac: await mac(names.router, 'eth1'),
        };
  const reals: LabHost[] = [];
  for (const [i, ns] of names.reals.entries()) reals.push({ ns, ifname: 'eth0', ip: realIp(i + 1), mac: await mac(ns, 'eth0') });
  const floodHost: LabFloodHost | null =
    names.flood === null
      ? null
      : {
          ns: names.flood,
          ifname: 'eth0',
          ip: FLOOD_HOST_IP,
          mac: await mac(names.flood, 'eth0'),
          gatewayIf: FLOOD_GATEWAY_IF,
          gatewayIp: GATEWAY_FLOOD_IP,
          gatewayMac: await mac(names.gateway, FLOOD_GATEWAY_IF),
          spoofRange: SPOOF_RANGE,
        };
  const backendRogue: LabHost | null =
    names.rogue === null ? null : { ns: names.rogue, ifname: 'eth0', ip: BACKEND_ROGUE_IP, mac: await mac(names.rogue, 'eth0') };
  const lanRouter: LabHost | null =
    names.lanRouter === null ? null : { ns: names.lanRouter, ifname: 'eth1', ip: GATEWAY_BACKEND_IP, mac: await mac(names.lanRouter, 'eth1') };
  return { client, gateway, sw: { ns: names.sw, bridge: BRIDGE, ports }, reals, floodHost, backendRogue, router, lanRouter };
}

/**
 * A real server for direct routing (LVS-DR): it holds the VIPs on lo, so it takes the frames natlb
 * forwards unchanged and answers from the VIP, but never answers ARP for them (arp_ignore=1: only for
 * addresses of the interface asked on) nor uses them as the source of its own ARP requests
 * (arp_announce=2), so the LAN keeps sending VIP traffic to natlb. rp_filter=2 (loose): a frame to the
 * VIP is accepted when the client is reachable at all, whatever interface the route back uses.
 */
export async function makeDirectRoutingReal(ns: string, vips: readonly string[] = [VIP, VIP2]): Promise<void> {
  const sysctls = ['all', 'eth0'].flatMap((i) => [
    `net.ipv4.conf.${i}.arp_ignore=1`,
    `net.ipv4.conf.${i}.arp_announce=2`,
    `net.ipv4.conf.${i}.rp_filter=2`,
  ]);
  await runInChecked(ns, sbin('sysctl'), ['-q', '-w', ...sysctls]);
  for (const vip of vips) await ipIn(ns, 'addr', 'add', `${vip}/32`, 'dev', 'lo');
}

/** Creates a lab namespace (shared with haPairTopology.ts and ecmpTopology.ts); NamespaceExistsError when the name is taken. */
export async function addNamespace(ns: string): Promise<void> {
  // Concurrent first-time `ip netns add` calls can race on mounting /run/netns: retry a little.
  let last: RunResult | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    last = await runIn(null, IP_BIN, ['netns', 'add', ns], { timeoutMs: 10_000 });
    if (last.code === 0) return;
    if (/exists/i.test(last.stderr)) {
      throw new NamespaceExistsError(`network namespace ${ns} already exists (another lab with the same id?): ${last.stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new LabError(`could not create network namespace ${ns}: ${last?.stderr.trim() ?? ''}`);
}

interface IpLink {
  ifname: string;
  operstate?: string;
  address?: string;
  linkinfo?: { info_slave_data?: { state?: string } };
}

async function links(ns: string, details = false): Promise<IpLink[]> {
  const r = await ipIn(ns, ...(details ? ['-d'] : []), '-j', 'link', 'show');
  return JSON.parse(r.stdout) as IpLink[];
}

export async function allLinksUp(interfaces: Array<[string, string]>): Promise<boolean> {
  const byNs = new Map<string, IpLink[]>();
  for (const [ns] of interfaces) if (!byNs.has(ns)) byNs.set(ns, await links(ns));
  return interfaces.every(([ns, ifname]) => byNs.get(ns)?.find((l) => l.ifname === ifname)?.operstate === 'UP');
}

export async function bridgePortsForwarding(ns: string, ports: string[]): Promise<boolean> {
  const all = await links(ns, true);
  return ports.every((p) => all.find((l) => l.ifname === p)?.linkinfo?.info_slave_data?.state === 'forwarding');
}

export async function macOf(ns: string, ifname: string): Promise<string> {
  const r = await ipIn(ns, '-j', 'link', 'show', 'dev', ifname);
  const mac = (JSON.parse(r.stdout) as IpLink[])[0]?.address;
  if (mac === undefined) throw new LabError(`no MAC address on ${ifname} in ${ns}`);
  return mac;
}

/** Kills the lab's processes, deletes its namespaces, forgets it (shared with haPairTopology.ts and ecmpTopology.ts). */
export async function teardown(live: LiveLab): Promise<void> {
  await stopProcesses(live.children, 2000);
  live.children.clear();
  const errors: string[] = [];
  // Reals and switch first, client last: order does not matter to the kernel, only to readability.
  for (const ns of [...live.namespaces].reverse()) {
    try {
      await removeNamespace(ns);
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  unregisterLab(live.id);
  if (errors.length > 0) throw new LabError(`lab ${live.id} was not fully removed: ${errors.join('; ')}`);
}

class NetnsLab extends NamespaceBoundLab implements Lab {
  readonly id: string;
  readonly client: LabHost;
  readonly gateway: LabGateway;
  readonly switch: LabSwitch;
  readonly reals: LabHost[];
  readonly vip = VIP;
  readonly vip2 = VIP2;
  readonly floodHost: LabFloodHost | null;
  readonly backendRogue: LabHost | null;
  readonly router: LabRouter | null;
  readonly lanRouter: LabHost | null;
  readonly fullNatPool: readonly string[];
  readonly namespaces: readonly string[];

  constructor(
    names: LabNames,
    readonly offloads: boolean,
    live: LiveLab,
    parts: BuiltParts,
  ) {
    super(live);
    this.id = names.id;
    this.namespaces = [...names.all];
    this.client = parts.client;
    this.gateway = parts.gateway;
    this.switch = parts.sw;
    this.reals = parts.reals;
    this.floodHost = parts.floodHost;
    this.backendRogue = parts.backendRogue;
    this.router = parts.router;
    this.lanRouter = parts.lanRouter;
    this.fullNatPool = parts.lanRouter !== null ? FULLNAT_POOL_IPS : [];
  }

  destroy(): Promise<void> {
    this.destroying ??= teardown(this.live);
    return this.destroying;
  }
}
