// What `natlb stats` prints: the look of `ipvsadm -L -n --stats --exact` (counts since natlb started)
// or, with --rate, of `ipvsadm -L -n --rate` (per second, rounded).
import type { BalancerStats } from "./trafficStats";
import type { TrafficCounts, TrafficRates } from "./trafficCounts";

const ADDRESS_WIDTH = 26;
const COLUMN_WIDTH = 13;

function row(prefix: string, address: string, values: readonly number[]): string {
  return `${prefix}${address.padEnd(ADDRESS_WIDTH)}${values.map((v) => String(Math.round(v)).padStart(COLUMN_WIDTH)).join("")}`;
}

const countValues = (c: TrafficCounts) => [c.connections, c.packetsIn, c.packetsOut, c.bytesIn, c.bytesOut];
const rateValues = (r: TrafficRates) => [r.connectionsPerSecond, r.packetsInPerSecond, r.packetsOutPerSecond, r.bytesInPerSecond, r.bytesOutPerSecond];

export function formatStats(stats: BalancerStats, rates: boolean): string {
  const columns = rates ? ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"] : ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"];
  const lines = [
    `Prot ${"LocalAddress:Port".padEnd(ADDRESS_WIDTH)}${columns.map((c) => c.padStart(COLUMN_WIDTH)).join("")}`,
    "  -> RemoteAddress:Port",
  ];
  for (const s of stats.services) {
    lines.push(row(`${s.protocol.toUpperCase().padEnd(4)} `, `${s.vip}:${s.port}`, rates ? rateValues(s.rates) : countValues(s.counts)));
    for (const r of s.reals) lines.push(row("  -> ", `${r.ip}:${r.port}`, rates ? rateValues(r.rates) : countValues(r.counts)));
  }
  lines.push(
    rates
      ? `rates: exponential average over ${stats.rateSampleSeconds} s samples (as IPVS's estimator)`
      : "counts since natlb started; a service's include its removed reals'",
  );
  return lines.join("\n");
}
