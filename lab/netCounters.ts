// Kernel counters of a lab namespace: an interface's packet counts (ip -s link) and the IP/ICMP/TCP/UDP
// counters of /proc/net/snmp. Floods are checked with them: what the flood host sent, what came back
// to it, and that it answered nothing (no RST, no ICMP).
import type { Lab } from './topology';

export interface LinkCounters {
  rxPackets: number;
  txPackets: number;
  rxDropped: number;
  txDropped: number;
}

interface IpLinkStats {
  stats64?: { rx?: { packets?: number; dropped?: number }; tx?: { packets?: number; dropped?: number } };
}

/** Packet counters of `ifname` in `ns`. */
export async function readLinkCounters(lab: Lab, ns: string, ifname: string): Promise<LinkCounters> {
  const r = await lab.exec(ns, 'ip', ['-j', '-s', 'link', 'show', 'dev', ifname]);
  const s = (JSON.parse(r.stdout) as IpLinkStats[])[0]?.stats64;
  if (s?.rx?.packets === undefined || s.tx?.packets === undefined) throw new Error(`no counters for ${ifname} in ${ns}`);
  return { rxPackets: s.rx.packets, txPackets: s.tx.packets, rxDropped: s.rx.dropped ?? 0, txDropped: s.tx.dropped ?? 0 };
}

/** Counter differences after - before, field by field. */
export function linkCountersDelta(before: LinkCounters, after: LinkCounters): LinkCounters {
  return {
    rxPackets: after.rxPackets - before.rxPackets,
    txPackets: after.txPackets - before.txPackets,
    rxDropped: after.rxDropped - before.rxDropped,
    txDropped: after.txDropped - before.txDropped,
  };
}

/** /proc/net/snmp of `ns` as "Group.Field" -> value, e.g. "Tcp.OutRsts", "Icmp.OutMsgs", "Ip.InAddrErrors". */
export async function readSnmpCounters(lab: Lab, ns: string): Promise<Map<string, number>> {
  // /proc/net is the reading process's namespace: cat runs inside `ns`.
  const text = (await lab.exec(ns, 'cat', ['/proc/net/snmp'])).stdout;
  return parseSnmp(text);
}

/** Parses /proc/net/snmp: pairs of "Group: names..." and "Group: values..." lines. */
export function parseSnmp(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [group, ...names] = (lines[i] as string).trim().split(/\s+/);
    const [group2, ...values] = (lines[i + 1] as string).trim().split(/\s+/);
    if (group === undefined || group !== group2) continue;
    names.forEach((name, j) => out.set(`${group.replace(/:$/, '')}.${name}`, Number(values[j])));
  }
  return out;
}
