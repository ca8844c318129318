// Kernel NAT: iptables (nf_tables backend) DNAT in PREROUTING, round robin over the reals with
// `-m statistic --mode nth` (the nat table sees each connection's first packet only, so this counts
// connections; for the UDP service of the flood lab, each new UDP flow). The VIP is a local /32
// address so the gateway answers ARP for it. Tear-down deletes the whole `ip nat` table, which also
// unhooks conntrack from the namespace, so the other variants do not pay for connection tracking
// afterwards (its entries stay until they time out; the flood lab flushes them before each step).
// Conntrack runs as the kernel has it: no limit or timeout is changed.
// In the modes lab's direct-routing topology, where the reals' default route is the router:
// POSTROUTING also rewrites the source of the DNAT'ed connections to the gateway's LAN address, so the
// reals answer the gateway - the kernel's equivalent of full NAT. Its ports (1024..16383) stay apart
// from natlb fullnat's pool ports and the gateway's own ephemeral ports (HAProxy's connections to the
// same reals), so no real ever sees one source ip:port with two TCP timestamp clocks (PAWS).
import { sbin } from "../../lab/netns";
import type { Lab } from "../../lab/topology";
import { addVipAddress, removeVipAddress } from "./gatewayState";
import type { BenchServices, Variant } from "./types";

/** iptables rule specs (after -A/-D PREROUTING): the i-th rule takes every (N-i)-th remaining connection. */
function dnatRules(services: BenchServices): string[][] {
  const rules: string[][] = [];
  const tcp = [services.bulk, services.small].map((svc) => ({ ...svc, protocol: "tcp" }));
  const udp = services.udp === undefined ? [] : [{ ...services.udp, protocol: "udp" }];
  for (const svc of [...tcp, ...udp]) {
    const n = services.reals.length;
    services.reals.forEach((real, i) => {
      const match = ["-d", `${services.vip}/32`, "-p", svc.protocol, "--dport", String(svc.vport)];
      const nth = i < n - 1 ? ["-m", "statistic", "--mode", "nth", "--every", String(n - i), "--packet", "0"] : [];
      rules.push([...match, ...nth, "-j", "DNAT", "--to-destination", `${real}:${svc.realPort}`]);
    });
  }
  return rules;
}

/** The POSTROUTING rules of the direct-routing lab's gateway, one per protocol (none when the reals route through it). */
function snatRules(lab: Lab, services: BenchServices): string[][] {
  if (lab.router === null) return [];
  const protocols = ["tcp", ...(services.udp === undefined ? [] : ["udp"])];
  return protocols.map((p) => [
    "-o", lab.gateway.backendIf, "-p", p, "-m", "conntrack", "--ctstate", "DNAT", "-j", "SNAT", "--to-source", `${lab.gateway.backendIp}:1024-16383`,
  ]);
}

async function removeAll(lab: Lab, services: BenchServices, rules: string[][]): Promise<void> {
  const ns = lab.gateway.ns;
  for (const rule of rules) await lab.tryExec(ns, sbin("iptables"), ["-t", "nat", "-D", "PREROUTING", ...rule]);
  for (const rule of snatRules(lab, services)) await lab.tryExec(ns, sbin("iptables"), ["-t", "nat", "-D", "POSTROUTING", ...rule]);
  const left = await lab.tryExec(ns, sbin("iptables"), ["-t", "nat", "-S"]);
  if (left.code === 0 && /^-A /m.test(left.stdout)) throw new Error(`kernel NAT: rules left after removal:\n${left.stdout}`);
  // Only this benchmark uses netfilter in its own lab gateway: the table is ours to delete.
  const del = await lab.tryExec(ns, sbin("nft"), ["delete", "table", "ip", "nat"]);
  if (del.code !== 0 && !/No such file|does not exist/i.test(del.stderr)) throw new Error(`kernel NAT: nft delete table ip nat: ${del.stderr.trim()}`);
  await removeVipAddress(lab, services.vip);
}

export const kernelNat: Variant = {
  id: "kernelNat",
  label: "kernel NAT (iptables DNAT nth)",
  setUp: async (lab, services) => {
    const rules = dnatRules(services);
    try {
      await addVipAddress(lab, services.vip);
      for (const rule of rules) await lab.exec(lab.gateway.ns, sbin("iptables"), ["-t", "nat", "-A", "PREROUTING", ...rule]);
      for (const rule of snatRules(lab, services)) await lab.exec(lab.gateway.ns, sbin("iptables"), ["-t", "nat", "-A", "POSTROUTING", ...rule]);
    } catch (e) {
      await removeAll(lab, services, rules).catch(() => undefined);
      throw e;
    }
    return {
      bulkTargets: [{ ip: services.vip, port: services.bulk.vport }],
      smallTargets: [{ ip: services.vip, port: services.small.vport }],
      pid: null,
      diagnostics: async () => ({}),
      tearDown: () => removeAll(lab, services, rules),
    };
  },
};
