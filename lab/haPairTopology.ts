/*
 * The HA pair lab: two natlb gateways between one client LAN and one backend LAN, keepalived (VRRP)
 * deciding which of them is master. Namespaces are <prefix><id>-<role>, like createLab's.
 *
 *  client <id>-c        switch <id>-cs          gateway <id>-g1 / <id>-g2          switch <id>-bs        real <id>-rI
 * +---------------+    +-------------+        +---------------------------+     +-------------+      +------------------+
 * | eth0          |=veth= p-c        |        | eth0            eth1      |     |  p-g1       |      | eth0             |
 * | 198.18.0.2/24 |    |  br0 - p-g1 |=veth===| 198.18.0.3     198.18.1.3 |=veth=  br0 - p-rI |=veth=| 198.18.1.(10+I)  |
 * | VIPs on-link: |    |     \ p-g2  |=veth== | (g2: .0.4)     (g2: .1.4) |=veth=  p-g2       |      | default via      |
 * | ARP decides   |    +-------------+        | natlb + keepalived here;  |     +-------------+      |   198.18.1.1     |
 * | which gateway |                           | the master also holds     |                          | (VRRP address)   |
 * +---------------+                           | 198.18.1.1 (VRRP address) |                          +------------------+
 *                                             +---------------------------+
 *
 * The client reaches the VIPs (198.18.0.100, .101) on its own LAN: the master's natlb answers their
 * ARP and announces them when it takes over; the backup's stays silent. The reals route through
 * 198.18.1.1, which keepalived adds to the master's eth1 (and announces with gratuitous ARP). Each
 * gateway's keepalived has its config, pid files and log under the lab's temp dir. IPv6 off, veths
 * created inside their namespaces: the root namespace is never touched; destroy() removes it all.
 */
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BalancerHost } from './balancerProcess';
import { KEEPALIVED_BIN, keepalivedArgs, keepalivedProcess, writeKeepalivedFiles, type KeepalivedProcess, type VrrpInstanceOptions } from './keepalived';
import { CLIENT_IP, GATEWAY_BACKEND_IP, MAX_REALS, PAIR_GATEWAY_BACKEND_IPS, PAIR_GATEWAY_CLIENT_IPS, PREFIX_LEN, VIP, VIP2, realIp } from './labAddresses';
import { registerLab, type LiveLab } from './labRegistry';
import { NamespaceBoundLab } from './labNamespaceRunner';
import { IP_BIN, runIn, runInChecked, sbin, type RunOptions, type RunResult } from './netns';
import { LabError, NamespaceExistsError, addNamespace, allLinksUp, bridgePortsForwarding, ipIn, macOf, teardown, type LabHost, type LabSwitch } from './topology';
import { OWNER_ALIAS_PREFIX, listNamespaces } from './staleLabs';
import { sleep, waitUntil } from './wait';

export interface HaPairOptions {
  /** Real servers on the backend LAN, 1..8. Default 2. */
  reals?: number;
  /** Veth offloads (TSO/GSO/GRO) on (true) or off. Default true. */
  offloads?: boolean;
  /** Namespace prefix, like createLab's. Default "ha". */
  prefix?: string;
}

export interface PairGateway {
  readonly ns: string;
  readonly clientIf: 'eth0';
  readonly backendIf: 'eth1';
  readonly clientIp: string;
  readonly backendIp: string;
  readonly clientMac: string;
  readonly backendMac: string;
}

export interface KeepalivedOptions {
  readonly priority: number;
  readonly initialState: 'MASTER' | 'BACKUP';
  /** Seconds between VRRP adverts (fractions allowed). */
  readonly advertIntervalS: number;
  /**
   * How keepalived tells natlb (lab/keepalived.ts): "script" runs `command` per transition (TYPE NAME
   * STATE PRIORITY appended); "fifo" runs it once as the reader of a FIFO in the lab's temp dir.
   */
  readonly notify: { readonly via: 'script' | 'fifo'; readonly command: readonly string[] };
}

export interface HaPairLab {
  readonly id: string;
  readonly client: LabHost;
  readonly gateways: readonly [PairGateway, PairGateway];
  readonly clientSwitch: LabSwitch;
  readonly backendSwitch: LabSwitch;
  readonly reals: LabHost[];
  readonly vip: string;
  readonly vip2: string;
  /** The reals' default route, moved by VRRP to the master. */
  readonly vrrpIp: string;
  /** The lab's own temp dir (keepalived's files), removed by destroy(). */
  readonly tempDir: string;
  readonly namespaces: readonly string[];
  exec(ns: string, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  tryExec(ns: string, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Starts a process in a lab namespace; destroy() kills it. */
  spawn(ns: string, cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Gateway `index` as a place to run natlb (startBalancer). */
  balancerHost(index: 0 | 1): BalancerHost;
  /** Starts keepalived in gateway `index` (VRRP for vrrpIp on eth1, unicast to the other gateway). */
  startKeepalived(index: 0 | 1, options: KeepalivedOptions): KeepalivedProcess;
  /** The gateway dies: SIGKILL to every process in its namespace (natlb, keepalived), then its links down. */
  killGateway(index: 0 | 1): Promise<void>;
  destroy(): Promise<void>;
}

const BRIDGE = 'br0';
const PREFIX_RE = /^[a-z][a-z0-9]{0,5}$/;
const VIRTUAL_ROUTER_ID = 51;

interface PairNames {
  id: string;
  client: string;
  clientSwitch: string;
  gateways: [string, string];
  backendSwitch: string;
  reals: string[];
  all: string[];
}

function pairNames(id: string, reals: number): PairNames {
  const names = {
    id,
    client: `${id}-c`,
    clientSwitch: `${id}-cs`,
    gateways: [`${id}-g1`, `${id}-g2`] as [string, string],
    backendSwitch: `${id}-bs`,
    reals: Array.from({ length: reals }, (_, i) => `${id}-r${i + 1}`),
  };
  return { ...names, all: [names.client, names.clientSwitch, ...names.gateways, names.backendSwitch, ...names.reals] };
}

/** Builds the pair lab; on any failure everything made so far is removed and the error rethrown. */
export async function createHaPairLab(options: HaPairOptions = {}): Promise<HaPairLab> {
  const prefix = options.prefix ?? 'ha';
  if (!PREFIX_RE.test(prefix)) throw new LabError(`lab prefix must be a lower-case letter followed by up to 5 letters/digits, got "${prefix}"`);
  const reals = options.reals ?? 2;
  if (!Number.isInteger(reals) || reals < 1 || reals > MAX_REALS) throw new LabError(`reals must be an integer in 1..${MAX_REALS}, got ${String(reals)}`);
  if (process.getuid?.() !== 0) throw new LabError('the lab needs root (CAP_NET_ADMIN/CAP_SYS_ADMIN) to create network namespaces');
  for (let attempt = 1; ; attempt++) {
    const existing = await listNamespaces();
    let id = '';
    for (let i = 0; i < 20 && (id === '' || existing.some((n) => n.startsWith(`${id}-`))); i++) id = `${prefix}${randomBytes(2).toString('hex')}`;
    const names = pairNames(id, reals);
    const live: LiveLab = { id, namespaces: [], children: new Set() };
    registerLab(live);
    const tempDir = mkdtempSync(join(tmpdir(), `natlb-${id}-`));
    try {
      const parts = await build(names, options.offloads ?? true, live);
      return new PairLab(names, live, parts, tempDir);
    } catch (e) {
      await teardown(live).catch(() => undefined);
      rmSync(tempDir, { recursive: true, force: true });
      if (e instanceof NamespaceExistsError && attempt < 3) continue;
      throw e;
    }
  }
}

interface PairParts {
  client: LabHost;
  gateways: [PairGateway, PairGateway];
  clientSwitch: LabSwitch;
  backendSwitch: LabSwitch;
  reals: LabHost[];
}

async function build(names: PairNames, offloads: boolean, live: LiveLab): Promise<PairParts> {
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
  const [g1, g2] = names.gateways;
  const clientPorts = ['p-c', 'p-g1', 'p-g2'];
  const realPorts = names.reals.map((_, i) => `p-r${i + 1}`);
  const backendPorts = ['p-g1', 'p-g2', ...realPorts];
  for (const sw of [names.clientSwitch, names.backendSwitch]) await ipIn(sw, 'link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0');
  await ipIn(names.client, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'p-c', 'netns', names.clientSwitch);
  for (const [i, gw] of [g1, g2].entries()) {
    await ipIn(gw, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p-g${i + 1}`, 'netns', names.clientSwitch);
    await ipIn(gw, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', `p-g${i + 1}`, 'netns', names.backendSwitch);
  }
  for (const [i, ns] of names.reals.entries()) await ipIn(ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', realPorts[i]!, 'netns', names.backendSwitch);
  for (const port of clientPorts) await ipIn(names.clientSwitch, 'link', 'set', 'dev', port, 'master', BRIDGE);
  for (const port of backendPorts) await ipIn(names.backendSwitch, 'link', 'set', 'dev', port, 'master', BRIDGE);

  const interfaces: Array<[string, string]> = [
    [names.client, 'eth0'],
    [g1, 'eth0'], [g1, 'eth1'], [g2, 'eth0'], [g2, 'eth1'],
    [names.clientSwitch, BRIDGE], ...clientPorts.map((p): [string, string] => [names.clientSwitch, p]),
    [names.backendSwitch, BRIDGE], ...backendPorts.map((p): [string, string] => [names.backendSwitch, p]),
    ...names.reals.map((ns): [string, string] => [ns, 'eth0']),
  ];
  if (!offloads) {
    await Promise.all(interfaces.map(([ns, ifname]) => runInChecked(ns, sbin('ethtool'), ['-K', ifname, 'tso', 'off', 'gso', 'off', 'gro', 'off'])));
  }
  const cidr = (ip: string): string => `${ip}/${PREFIX_LEN}`;
  await ipIn(names.client, 'addr', 'add', cidr(CLIENT_IP), 'dev', 'eth0');
  for (const [i, gw] of [g1, g2].entries()) {
    await ipIn(gw, 'addr', 'add', cidr(PAIR_GATEWAY_CLIENT_IPS[i]!), 'dev', 'eth0');
    await ipIn(gw, 'addr', 'add', cidr(PAIR_GATEWAY_BACKEND_IPS[i]!), 'dev', 'eth1');
    await runInChecked(gw, sbin('sysctl'), ['-q', '-w', 'net.ipv4.ip_forward=1']);
  }
  for (const [i, ns] of names.reals.entries()) await ipIn(ns, 'addr', 'add', cidr(realIp(i + 1)), 'dev', 'eth0');
  for (const [ns, ifname] of interfaces) await ipIn(ns, 'link', 'set', 'dev', ifname, 'up');
  // The reals' route names the VRRP address, which only the master holds.
  for (const ns of names.reals) await ipIn(ns, 'route', 'add', 'default', 'via', GATEWAY_BACKEND_IP, 'dev', 'eth0', 'onlink');
  await waitUntil('pair lab links to come up', () => allLinksUp(interfaces), 10_000, 50);
  await waitUntil('client switch ports to forward', () => bridgePortsForwarding(names.clientSwitch, clientPorts), 10_000, 50);
  await waitUntil('backend switch ports to forward', () => bridgePortsForwarding(names.backendSwitch, backendPorts), 10_000, 50);

  const gateway = async (i: 0 | 1): Promise<PairGateway> => ({
    ns: names.gateways[i],
    clientIf: 'eth0',
    backendIf: 'eth1',
    clientIp: PAIR_GATEWAY_CLIENT_IPS[i],
    backendIp: PAIR_GATEWAY_BACKEND_IPS[i],
    clientMac: await macOf(names.gateways[i], 'eth0'),
    backendMac: await macOf(names.gateways[i], 'eth1'),
  });
  const reals: LabHost[] = [];
  for (const [i, ns] of names.reals.entries()) reals.push({ ns, ifname: 'eth0', ip: realIp(i + 1), mac: await macOf(ns, 'eth0') });
  return {
    client: { ns: names.client, ifname: 'eth0', ip: CLIENT_IP, mac: await macOf(names.client, 'eth0') },
    gateways: [await gateway(0), await gateway(1)],
    clientSwitch: { ns: names.clientSwitch, bridge: BRIDGE, ports: clientPorts },
    backendSwitch: { ns: names.backendSwitch, bridge: BRIDGE, ports: backendPorts },
    reals,
  };
}

class PairLab extends NamespaceBoundLab implements HaPairLab {
  readonly id: string;
  readonly client: LabHost;
  readonly gateways: readonly [PairGateway, PairGateway];
  readonly clientSwitch: LabSwitch;
  readonly backendSwitch: LabSwitch;
  readonly reals: LabHost[];
  readonly vip = VIP;
  readonly vip2 = VIP2;
  readonly vrrpIp = GATEWAY_BACKEND_IP;
  readonly namespaces: readonly string[];

  constructor(
    names: PairNames,
    live: LiveLab,
    parts: PairParts,
    readonly tempDir: string,
  ) {
    super(live);
    this.id = names.id;
    this.namespaces = [...names.all];
    this.client = parts.client;
    this.gateways = parts.gateways;
    this.clientSwitch = parts.clientSwitch;
    this.backendSwitch = parts.backendSwitch;
    this.reals = parts.reals;
  }

  balancerHost(index: 0 | 1): BalancerHost {
    return {
      id: `${this.id}g${index + 1}`,
      gateway: { ns: this.gateways[index].ns },
      spawn: (ns, cmd, args, opts) => this.spawn(ns, cmd, args, opts),
      tryExec: (ns, cmd, args, opts) => this.tryExec(ns, cmd, args, opts),
    };
  }

  startKeepalived(index: 0 | 1, options: KeepalivedOptions): KeepalivedProcess {
    const gateway = this.gateways[index];
    const peer = this.gateways[index === 0 ? 1 : 0];
    const dir = join(this.tempDir, `keepalived-g${index + 1}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const instance: VrrpInstanceOptions = {
      name: `natlb_${this.id}_g${index + 1}`,
      interface: gateway.backendIf,
      sourceIp: gateway.backendIp,
      peerIp: peer.backendIp,
      virtualIp: this.vrrpIp,
      prefixLength: PREFIX_LEN,
      virtualRouterId: VIRTUAL_ROUTER_ID,
      priority: options.priority,
      initialState: options.initialState,
      advertIntervalS: options.advertIntervalS,
      notify: options.notify.via === 'script' ? { via: 'script', command: options.notify.command } : { via: 'fifo', command: options.notify.command, fifo: join(dir, 'notify.fifo') },
    };
    const files = writeKeepalivedFiles(dir, instance);
    return keepalivedProcess(this.spawn(gateway.ns, KEEPALIVED_BIN, keepalivedArgs(files), { stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  async killGateway(index: 0 | 1): Promise<void> {
    const gateway = this.gateways[index];
    this.runner.check(gateway.ns);
    const pids = await runIn(null, IP_BIN, ['netns', 'pids', gateway.ns], { timeoutMs: 5000 });
    for (const pid of pids.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const ifname of [gateway.clientIf, gateway.backendIf]) await ipIn(gateway.ns, 'link', 'set', 'dev', ifname, 'down');
    // A process forked in between (a notify script) would still be there: the namespace must be quiet.
    await sleep(50);
    const left = await runIn(null, IP_BIN, ['netns', 'pids', gateway.ns], { timeoutMs: 5000 });
    for (const pid of left.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      try {
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  destroy(): Promise<void> {
    this.destroying ??= teardown(this.live).finally(() => rmSync(this.tempDir, { recursive: true, force: true }));
    return this.destroying;
  }
}
