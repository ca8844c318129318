/*
 * The ECMP lab: several natlb instances behind a router that spreads the clients' flows over them
 * (kernel ECMP with an L4 hash), each instance announcing the VIPs over BGP with its own BIRD, and
 * direct-routing reals that answer the client through the router (so no reply needs an instance).
 *
 *  client <id>-c        router <id>-rt                          switch <id>-sw       instance <id>-gI (I = 1..N)
 * +---------------+    +-----------------------------------+    +--------------+     +---------------------------+
 * | eth0          |    | eth0 198.18.0.1   eth1 198.18.1.1 |    | p-rt         |     | eth1 198.18.1.(1+I)/24    |
 * | 198.18.0.2/24 |=veth=                                  |=veth=  br0 - p-gI |=veth=| natlb (dr, mh) + BIRD:    |
 * | default via   |    | BIRD: BGP AS 65000 to every       |    |     \- p-rJ  |     | BGP AS 65001 to the router|
 * |   198.18.0.1  |    | instance, kernel protocol with    |    +------|-------+     | exports its routes file's |
 * +---------------+    | merge paths: VIP/32 gets one      |           |             | VIPs; default via .1      |
 *                      | nexthop per announcing instance;  |           |             +---------------------------+
 *                      | fib_multipath_hash_policy=1 (L4)  |    real <id>-rJ: eth0 198.18.1.(10+J), the VIPs on lo
 *                      +-----------------------------------+    (arp_ignore=1, arp_announce=2), default via .1
 *
 * The VIPs (198.18.3.100, .101) are outside the client's subnet: the client routes them to the router,
 * which has a route to a VIP only while some instance announces it. The router routes the spoof range
 * (198.19.0.0/16) back to the client, so the client can send spoofed floods. BIRD's files (configuration,
 * control socket, pid file, the routes file natlb writes) live in the lab's temporary directory, which
 * destroy() removes with the namespaces. Only the router's namespace gets the L4 multipath hash.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { birdCommand } from '../src/bgp/birdControl';
import { CLIENT_IP, ECMP_VIP, ECMP_VIP2, GATEWAY_BACKEND_IP, GATEWAY_CLIENT_IP, MAX_REALS, PREFIX_LEN, SPOOF_RANGE, ecmpInstanceIp, realIp } from './labAddresses';
import { registerLab, unregisterLab, type LiveLab } from './labRegistry';
import { NamespaceBoundLab } from './labNamespaceRunner';
import { runInChecked, sbin } from './netns';
import { OWNER_ALIAS_PREFIX, listNamespaces } from './staleLabs';
import {
  LabError,
  addNamespace,
  allLinksUp,
  bridgePortsForwarding,
  ipIn,
  macOf,
  makeDirectRoutingReal,
  teardown,
  type Lab,
  type LabGateway,
  type LabHost,
  type LabRouter,
  type LabSwitch,
} from './topology';
import { waitUntil } from './wait';

export const BIRD_BIN = '/usr/sbin/bird';
export const ROUTER_AS = 65000;
export const INSTANCE_AS = 65001;

export interface EcmpLabOptions {
  /** natlb instances, 2 or 3. */
  instances: number;
  /** Real servers, 1..8. Default 3. */
  reals?: number;
  offloads: boolean;
  /** Namespace name prefix (a lower-case letter then up to 5 letters/digits). Default "ec". */
  prefix?: string;
}

/** One instance: a one-armed gateway on the LAN (clientIf = backendIf = eth1) with its BIRD's files. */
export interface EcmpInstance extends LabGateway {
  /** 1-based. */
  readonly index: number;
  readonly birdConfig: string;
  readonly birdSocket: string;
  readonly birdPidFile: string;
  /** What natlb's config bgp.routesFile names: BIRD's `protocol static natlb_vips` includes it. */
  readonly routesFile: string;
}

/** A BIRD daemon the lab started. */
export interface BirdProcess {
  readonly ns: string;
  readonly socket: string;
  readonly child: ChildProcess;
  /** What it wrote to stderr so far (its log). */
  output(): string;
  /** Sends `signal` (default SIGTERM) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface EcmpLab extends Lab {
  readonly router: LabRouter;
  readonly instances: readonly EcmpInstance[];
  /** Where the BIRD files live; removed by destroy(). */
  readonly tempDir: string;
  /** The router's BIRD, started by createEcmpLab. */
  readonly routerBird: BirdProcess;
  /** Starts instance `index`'s BIRD (its routes file as natlb last wrote it, or empty). */
  startInstanceBird(index: number): Promise<BirdProcess>;
  /** The instances the router's kernel sends `vip` to (the nexthops of its route), sorted; [] without a route. */
  routerNexthops(vip: string): Promise<string[]>;
}

const PREFIX_RE = /^[a-z][a-z0-9]{0,5}$/;
const BRIDGE = 'br0';

/** Builds the lab and starts the router's BIRD. On any failure everything created so far is removed. */
export async function createEcmpLab(options: EcmpLabOptions): Promise<EcmpLab> {
  const prefix = options.prefix ?? 'ec';
  if (!PREFIX_RE.test(prefix)) throw new LabError(`lab prefix must be a lower-case letter followed by up to 5 letters/digits, got "${prefix}"`);
  if (!Number.isInteger(options.instances) || options.instances < 2 || options.instances > 3) {
    throw new LabError(`instances must be 2 or 3, got ${String(options.instances)}`);
  }
  const realCount = options.reals ?? 3;
  if (!Number.isInteger(realCount) || realCount < 1 || realCount > MAX_REALS) throw new LabError(`reals must be an integer in 1..${MAX_REALS}`);
  if (process.getuid?.() !== 0) throw new LabError('the lab needs root (CAP_NET_ADMIN/CAP_SYS_ADMIN) to create network namespaces');

  const existing = await listNamespaces();
  let id = '';
  for (let attempt = 0; attempt < 20 && id === ''; attempt++) {
    const candidate = `${prefix}${randomBytes(2).toString('hex')}`;
    if (!existing.some((n) => n.startsWith(`${candidate}-`))) id = candidate;
  }
  if (id === '') throw new LabError(`could not find an unused lab id for prefix "${prefix}"; remove stale labs (removeStaleLabs)`);

  const live: LiveLab = { id, namespaces: [], children: new Set() };
  registerLab(live);
  const tempDir = mkdtempSync(join(tmpdir(), `natlb-ecmp-${id}-`));
  try {
    const lab = await build(id, options.instances, realCount, options.offloads, live, tempDir);
    return lab;
  } catch (error) {
    await teardown(live).catch(() => undefined);
    rmSync(tempDir, { recursive: true, force: true });
    throw error;
  }
}

async function build(id: string, instanceCount: number, realCount: number, offloads: boolean, live: LiveLab, tempDir: string): Promise<EcmpLab> {
  const client = `${id}-c`;
  const router = `${id}-rt`;
  const sw = `${id}-sw`;
  const instances = Array.from({ length: instanceCount }, (_, i) => `${id}-g${i + 1}`);
  const reals = Array.from({ length: realCount }, (_, i) => `${id}-r${i + 1}`);
  const all = [client, router, sw, ...instances, ...reals];

  for (const ns of all) {
    await addNamespace(ns);
    live.namespaces.push(ns);
  }
  await Promise.all(
    all.map(async (ns) => {
      await runInChecked(ns, sbin('sysctl'), ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      await ipIn(ns, 'link', 'set', 'dev', 'lo', 'alias', `${OWNER_ALIAS_PREFIX}${process.pid}`);
      await ipIn(ns, 'link', 'set', 'dev', 'lo', 'up');
    }),
  );

  // Links, each veth pair made inside its namespaces.
  const instancePorts = instances.map((_, i) => `p-g${i + 1}`);
  const realPorts = reals.map((_, i) => `p-r${i + 1}`);
  const ports = ['p-rt', ...instancePorts, ...realPorts];
  await ipIn(sw, 'link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0');
  await ipIn(client, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', router);
  await ipIn(router, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'p-rt', 'netns', sw);
  for (const [i, ns] of instances.entries()) await ipIn(ns, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', instancePorts[i]!, 'netns', sw);
  for (const [i, ns] of reals.entries()) await ipIn(ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', realPorts[i]!, 'netns', sw);
  for (const port of ports) await ipIn(sw, 'link', 'set', 'dev', port, 'master', BRIDGE);

  const interfaces: Array<[string, string]> = [
    [client, 'eth0'], [router, 'eth0'], [router, 'eth1'], [sw, BRIDGE],
    ...ports.map((p): [string, string] => [sw, p]),
    ...instances.map((ns): [string, string] => [ns, 'eth1']),
    ...reals.map((ns): [string, string] => [ns, 'eth0']),
  ];
  if (!offloads) {
    await Promise.all(interfaces.map(([ns, ifname]) => runInChecked(ns, sbin('ethtool'), ['-K', ifname, 'tso', 'off', 'gso', 'off', 'gro', 'off'])));
  }

  const cidr = (ip: string): string => `${ip}/${PREFIX_LEN}`;
  await ipIn(client, 'addr', 'add', cidr(CLIENT_IP), 'dev', 'eth0');
  await ipIn(router, 'addr', 'add', cidr(GATEWAY_CLIENT_IP), 'dev', 'eth0');
  await ipIn(router, 'addr', 'add', cidr(GATEWAY_BACKEND_IP), 'dev', 'eth1');
  // The L4 hash only here: each flow's 5-tuple picks its instance.
  await runInChecked(router, sbin('sysctl'), ['-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv4.fib_multipath_hash_policy=1']);
  for (const [i, ns] of instances.entries()) {
    await ipIn(ns, 'addr', 'add', cidr(ecmpInstanceIp(i + 1)), 'dev', 'eth1');
    await runInChecked(ns, sbin('sysctl'), ['-q', '-w', 'net.ipv4.ip_forward=1']);
  }
  for (const [i, ns] of reals.entries()) {
    await makeDirectRoutingReal(ns, [ECMP_VIP, ECMP_VIP2]);
    await ipIn(ns, 'addr', 'add', cidr(realIp(i + 1)), 'dev', 'eth0');
  }
  for (const [ns, ifname] of interfaces) await ipIn(ns, 'link', 'set', 'dev', ifname, 'up');
  await ipIn(client, 'route', 'add', 'default', 'via', GATEWAY_CLIENT_IP, 'dev', 'eth0');
  // The client may send spoofed floods (lab/flood.ts): the router passes them (its reverse-path check
  // finds the range behind the client) and sends what answers them to the client, which drops it.
  await ipIn(router, 'route', 'add', SPOOF_RANGE, 'via', CLIENT_IP, 'dev', 'eth0');
  for (const ns of [...instances, ...reals]) await ipIn(ns, 'route', 'add', 'default', 'via', GATEWAY_BACKEND_IP);
  await waitUntil('ECMP lab links to come up', () => allLinksUp(interfaces), 10_000, 50);
  await waitUntil('bridge ports to forward', () => bridgePortsForwarding(sw, ports), 10_000, 50);

  const routerMac = { client: await macOf(router, 'eth0'), lan: await macOf(router, 'eth1') };
  const instanceParts: EcmpInstance[] = [];
  for (const [i, ns] of instances.entries()) {
    const index = i + 1;
    const mac = await macOf(ns, 'eth1');
    const ip = ecmpInstanceIp(index);
    const files = {
      birdConfig: join(tempDir, `g${index}-bird.conf`),
      birdSocket: join(tempDir, `g${index}-bird.ctl`),
      birdPidFile: join(tempDir, `g${index}-bird.pid`),
      routesFile: join(tempDir, `g${index}-vips.conf`),
    };
    writeFileSync(files.birdConfig, instanceBirdConfig(ip, files.routesFile));
    writeFileSync(files.routesFile, '');
    instanceParts.push({ ns, index, clientIf: 'eth1', backendIf: 'eth1', clientIp: ip, backendIp: ip, clientMac: mac, backendMac: mac, ...files });
  }
  const routerConfig = join(tempDir, 'router-bird.conf');
  writeFileSync(routerConfig, routerBirdConfig(instanceParts.map((g) => g.clientIp)));

  const hosts = {
    client: { ns: client, ifname: 'eth0', ip: CLIENT_IP, mac: await macOf(client, 'eth0') },
    router: { ns: router, clientIf: 'eth0', lanIf: 'eth1', clientIp: GATEWAY_CLIENT_IP, lanIp: GATEWAY_BACKEND_IP, clientMac: routerMac.client, lanMac: routerMac.lan } as LabRouter,
    sw: { ns: sw, bridge: BRIDGE, ports } as LabSwitch,
    reals: await Promise.all(reals.map(async (ns, i): Promise<LabHost> => ({ ns, ifname: 'eth0', ip: realIp(i + 1), mac: await macOf(ns, 'eth0') }))),
  };
  const lab = new NetnsEcmpLab(id, offloads, live, all, tempDir, hosts, instanceParts);
  await lab.startRouterBird(routerConfig, join(tempDir, 'router-bird.ctl'), join(tempDir, 'router-bird.pid'));
  return lab;
}

/** An instance's BIRD: the VIPs of natlb's routes file, exported to the router with this instance as next hop. */
export function instanceBirdConfig(ip: string, routesFile: string): string {
  return `# natlb ECMP lab: one instance's BIRD (README, "Scale-out behind ECMP (BIRD)")
log stderr { warning, error, fatal };
router id ${ip};
protocol device { scan time 5; }
protocol static natlb_vips {
  ipv4;
  include "${routesFile}";
}
protocol bgp uplink {
  local ${ip} as ${INSTANCE_AS};
  neighbor ${GATEWAY_BACKEND_IP} as ${ROUTER_AS};
  hold time 3;
  keepalive time 1;
  connect retry time 1;
  ipv4 { import none; export where proto = "natlb_vips"; next hop self; };
}
`;
}

/** The router's BIRD: a BGP session per instance, every learned route to the kernel, equal ones merged (ECMP). */
export function routerBirdConfig(instanceIps: readonly string[]): string {
  return `# natlb ECMP lab: the router's BIRD
log stderr { warning, error, fatal };
router id ${GATEWAY_BACKEND_IP};
protocol device { scan time 5; }
protocol kernel {
  ipv4 { import none; export all; };
  merge paths on;
}
template bgp natlb_instance {
  local ${GATEWAY_BACKEND_IP} as ${ROUTER_AS};
  hold time 3;
  keepalive time 1;
  connect retry time 1;
  error wait time 1, 2;
  ipv4 { import all; export none; };
}
${instanceIps.map((ip, i) => `protocol bgp g${i + 1} from natlb_instance { neighbor ${ip} as ${INSTANCE_AS}; }`).join('\n')}
`;
}

interface EcmpHosts {
  client: LabHost;
  router: LabRouter;
  sw: LabSwitch;
  reals: LabHost[];
}

class NetnsEcmpLab extends NamespaceBoundLab implements EcmpLab {
  readonly vip = ECMP_VIP;
  readonly vip2 = ECMP_VIP2;
  readonly floodHost = null;
  readonly backendRogue = null;
  readonly lanRouter = null;
  readonly fullNatPool: readonly string[] = [];
  readonly client: LabHost;
  readonly router: LabRouter;
  readonly switch: LabSwitch;
  readonly reals: LabHost[];
  readonly gateway: LabGateway;
  private bird: BirdProcess | undefined;

  constructor(
    readonly id: string,
    readonly offloads: boolean,
    live: LiveLab,
    readonly namespaces: readonly string[],
    readonly tempDir: string,
    hosts: EcmpHosts,
    readonly instances: readonly EcmpInstance[],
  ) {
    super(live);
    this.client = hosts.client;
    this.router = hosts.router;
    this.switch = hosts.sw;
    this.reals = hosts.reals;
    this.gateway = instances[0]!;
  }

  get routerBird(): BirdProcess {
    if (!this.bird) throw new LabError('the router\'s BIRD is not started');
    return this.bird;
  }

  async startRouterBird(config: string, socket: string, pidFile: string): Promise<void> {
    this.bird = await this.startBird(this.router.ns, config, socket, pidFile);
  }

  startInstanceBird(index: number): Promise<BirdProcess> {
    const g = this.instances[index - 1];
    if (!g) throw new RangeError(`instance index is 1-based (g1..g${this.instances.length}), got ${index}`);
    return this.startBird(g.ns, g.birdConfig, g.birdSocket, g.birdPidFile);
  }

  async routerNexthops(vip: string): Promise<string[]> {
    const r = await this.exec(this.router.ns, sbin('ip'), ['-j', 'route', 'show', 'exact', `${vip}/32`]);
    const routes = JSON.parse(r.stdout) as Array<{ gateway?: string; nexthops?: Array<{ gateway?: string }> }>;
    const gateways = routes.flatMap((route) => (route.nexthops ? route.nexthops.map((n) => n.gateway) : [route.gateway]));
    return gateways.filter((g): g is string => g !== undefined).sort();
  }

  destroy(): Promise<void> {
    this.destroying ??= teardown(this.live).finally(() => {
      rmSync(this.tempDir, { recursive: true, force: true });
      unregisterLab(this.id);
    });
    return this.destroying;
  }

  /** BIRD in the foreground (-f), so the lab owns the process; ready once its control socket answers. */
  private async startBird(ns: string, config: string, socket: string, pidFile: string): Promise<BirdProcess> {
    rmSync(socket, { force: true });
    const child = this.spawn(ns, BIRD_BIN, ['-f', '-c', config, '-s', socket, '-P', pidFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let output = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      if (output.length < 64 * 1024) output += chunk.toString();
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let gone = false;
    void exited.then(() => (gone = true));
    await waitUntil(`BIRD in ${ns} to answer on ${socket}`, async () => {
      if (gone) throw new LabError(`BIRD in ${ns} exited: ${output.trim()}`);
      return birdCommand(socket, 'show status', 1000).then(() => true, () => false);
    }, 10_000, 50);
    return {
      ns,
      socket,
      child,
      output: () => output,
      stop: async (signal = 'SIGTERM') => {
        if (!gone) child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      },
    };
  }
}
