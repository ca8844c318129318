/*
 * The smallest lab with two balancers, for the flow sync: the NAT lab (lab/topology.ts, with its
 * backend rogue host) plus a second gateway <id>-g2 on the same backend LAN. Its client side leads to a
 * stub host <id>-s2 only: the tests drive traffic through the first gateway and read what the second
 * learned by sync (the HA pair lab, with failover, is another topology).
 *
 *  client <id>-c    gateway A <id>-gw            switch <id>-sw            real <id>-rI
 *  198.18.0.2 ===== eth0 198.18.0.1  eth1 198.18.1.1 === br0 -- p-rI ====== 198.18.1.(10+I)
 *                                                        |  \-- p-x ====== rogue <id>-x 198.18.1.99
 *                                                        \---- p-g2
 *                                                               ||
 *  stub <id>-s2     gateway B <id>-g2                          ||
 *  198.18.3.2 ===== eth0 198.18.3.1  eth1 198.18.1.2 =========//
 *
 * The sync runs between 198.18.1.1 and 198.18.1.2 (port 8848). The reals route through A; B never
 * sees their packets. B routes the client's subnet towards the stub (which forwards nothing), so its
 * synced flows have next hops on its own interfaces, as on an instance that takes over. Veth pairs are created inside the namespaces; the root namespace is untouched.
 */
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { CLIENT_SUBNET, PREFIX_LEN } from './labAddresses';
import { registerLab, unregisterLab, type LiveLab } from './labRegistry';
import { LabNamespaceRunner } from './labNamespaceRunner';
import { IP_BIN, runIn, runInChecked, sbin, type RunOptions, type RunResult } from './netns';
import { stopProcesses } from './processes';
import { OWNER_ALIAS_PREFIX, removeNamespace } from './staleLabs';
import { createLab, LabError, type Lab, type LabGateway, type LabHost } from './topology';
import { waitUntil } from './wait';

export const PEER_GATEWAY_BACKEND_IP = '198.18.1.2';
export const PEER_GATEWAY_STUB_IP = '198.18.3.1';
export const PEER_STUB_IP = '198.18.3.2';
const PEER_PORT = 'p-g2';

export interface SyncPairLab {
  /** The NAT lab; its gateway is A. */
  readonly lab: Lab;
  /** Gateway B: clientIf eth0 (towards the stub), backendIf eth1 on the backend LAN. */
  readonly peer: LabGateway;
  readonly stub: LabHost;
  /** The lab as seen from B: `gateway` is B (for startBalancer), every namespace of the pair usable. */
  readonly fromPeer: Lab;
  /** The lab with every namespace of the pair usable, gateway A. */
  readonly fromA: Lab;
  destroy(): Promise<void>;
}

function ipIn(ns: string, ...args: string[]): Promise<RunResult> {
  return runInChecked(null, IP_BIN, ['-n', ns, ...args], { timeoutMs: 15_000 });
}

/** The base lab plus namespaces of its own: exec and spawn reach both; destroy removes both. */
class PairView implements Lab {
  private readonly extraRunner: LabNamespaceRunner;
  constructor(
    private readonly base: Lab,
    private readonly extra: LiveLab,
    readonly gateway: LabGateway,
    private readonly destroyAll: () => Promise<void>,
  ) {
    this.extraRunner = new LabNamespaceRunner(extra, () => base.destroyed);
  }
  get id() { return this.base.id; }
  get offloads() { return this.base.offloads; }
  get client() { return this.base.client; }
  get switch() { return this.base.switch; }
  get reals() { return this.base.reals; }
  get vip() { return this.base.vip; }
  get vip2() { return this.base.vip2; }
  get floodHost() { return this.base.floodHost; }
  get backendRogue() { return this.base.backendRogue; }
  get router() { return this.base.router; }
  get lanRouter() { return this.base.lanRouter; }
  get fullNatPool() { return this.base.fullNatPool; }
  get namespaces() { return [...this.base.namespaces, ...this.extra.namespaces]; }
  get destroyed() { return this.base.destroyed; }
  // The pair's own namespaces through its runner, the base lab's through the base lab.
  exec(ns: string, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return this.extra.namespaces.includes(ns) ? this.extraRunner.exec(ns, cmd, args, opts) : this.base.exec(ns, cmd, args, opts);
  }
  tryExec(ns: string, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return this.extra.namespaces.includes(ns) ? this.extraRunner.tryExec(ns, cmd, args, opts) : this.base.tryExec(ns, cmd, args, opts);
  }
  spawn(ns: string, cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess {
    return this.extra.namespaces.includes(ns) ? this.extraRunner.spawn(ns, cmd, args, opts) : this.base.spawn(ns, cmd, args, opts);
  }
  destroy(): Promise<void> {
    return this.destroyAll();
  }
}

export async function createSyncPairLab(options: { reals: number; offloads: boolean; prefix?: string }): Promise<SyncPairLab> {
  const lab = await createLab({ reals: options.reals, offloads: options.offloads, backendRogue: true, ...(options.prefix ? { prefix: options.prefix } : {}) });
  const extra: LiveLab = { id: `${lab.id}-pair`, namespaces: [], children: new Set() };
  registerLab(extra);
  let destroying: Promise<void> | undefined;
  const destroyAll = () => {
    destroying ??= (async () => {
      await stopProcesses(extra.children, 2000);
      for (const ns of [...extra.namespaces].reverse()) await removeNamespace(ns).catch(() => undefined);
      unregisterLab(extra.id);
      await lab.destroy();
    })();
    return destroying;
  };
  try {
    const peerNs = `${lab.id}-g2`;
    const stubNs = `${lab.id}-s2`;
    for (const ns of [peerNs, stubNs]) {
      const added = await runIn(null, IP_BIN, ['netns', 'add', ns], { timeoutMs: 10_000 });
      if (added.code !== 0) throw new LabError(`could not create network namespace ${ns}: ${added.stderr.trim()}`);
      extra.namespaces.push(ns);
      await runInChecked(ns, sbin('sysctl'), ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      await ipIn(ns, 'link', 'set', 'dev', 'lo', 'alias', `${OWNER_ALIAS_PREFIX}${process.pid}`);
      await ipIn(ns, 'link', 'set', 'dev', 'lo', 'up');
    }
    await ipIn(peerNs, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', PEER_PORT, 'netns', lab.switch.ns);
    await ipIn(peerNs, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', stubNs);
    await ipIn(lab.switch.ns, 'link', 'set', 'dev', PEER_PORT, 'master', lab.switch.bridge);
    const links: Array<[string, string]> = [[peerNs, 'eth0'], [peerNs, 'eth1'], [stubNs, 'eth0'], [lab.switch.ns, PEER_PORT]];
    if (!options.offloads) {
      for (const [ns, ifname] of links) await runInChecked(ns, sbin('ethtool'), ['-K', ifname, 'tso', 'off', 'gso', 'off', 'gro', 'off']);
    }
    await ipIn(peerNs, 'addr', 'add', `${PEER_GATEWAY_STUB_IP}/${PREFIX_LEN}`, 'dev', 'eth0');
    await ipIn(peerNs, 'addr', 'add', `${PEER_GATEWAY_BACKEND_IP}/${PREFIX_LEN}`, 'dev', 'eth1');
    await ipIn(stubNs, 'addr', 'add', `${PEER_STUB_IP}/${PREFIX_LEN}`, 'dev', 'eth0');
    await runInChecked(peerNs, sbin('sysctl'), ['-q', '-w', 'net.ipv4.ip_forward=1']);
    for (const [ns, ifname] of links) await ipIn(ns, 'link', 'set', 'dev', ifname, 'up');
    await ipIn(peerNs, 'route', 'add', CLIENT_SUBNET, 'via', PEER_STUB_IP, 'dev', 'eth0');
    await waitUntil('the second gateway\'s links to come up', async () => {
      for (const [ns, ifname] of links) {
        const shown = JSON.parse((await ipIn(ns, '-j', 'link', 'show', 'dev', ifname)).stdout) as { operstate?: string }[];
        if (shown[0]?.operstate !== 'UP') return false;
      }
      return true;
    }, 10_000, 50);
    const macOf = async (ns: string, ifname: string) =>
      (JSON.parse((await ipIn(ns, '-j', 'link', 'show', 'dev', ifname)).stdout) as { address: string }[])[0]!.address;
    const peer: LabGateway = {
      ns: peerNs, clientIf: 'eth0', backendIf: 'eth1', clientIp: PEER_GATEWAY_STUB_IP, backendIp: PEER_GATEWAY_BACKEND_IP,
      clientMac: await macOf(peerNs, 'eth0'), backendMac: await macOf(peerNs, 'eth1'),
    };
    const stub: LabHost = { ns: stubNs, ifname: 'eth0', ip: PEER_STUB_IP, mac: await macOf(stubNs, 'eth0') };
    return {
      lab, peer, stub,
      fromPeer: new PairView(lab, extra, peer, destroyAll),
      fromA: new PairView(lab, extra, lab.gateway, destroyAll),
      destroy: destroyAll,
    };
  } catch (error) {
    await destroyAll().catch(() => undefined);
    throw error;
  }
}
