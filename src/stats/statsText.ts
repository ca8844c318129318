// What `natlb stats` prints: the look of `ipvsadm -L -n --stats --exact` (counts since natlb started)
// or, with --rate, of `ipvsadm -L -n --rate` (per second, rounded).
import type { BalancerStats } from "./trafficStats";
import { RATE_NAMES, TRAFFIC_COUNT_NAMES, type TrafficCountName, type TrafficCounts, type TrafficRates } from "./trafficCounts";

const ADDRESS_WIDTH = 26;
const COLUMN_WIDTH = 13;

function row(prefix: string, address: string, values: readonly number[]): string {
  return `${prefix}${address.padEnd(ADDRESS_WIDTH)}${values.map((v) => String(Math.round(v)).padStart(COLUMN_WIDTH)).join("")}`;
}

/** ipvsadm's column headings for each count, and for its rate. */
const COLUMNS: Record<TrafficCountName, { count: string; rate: string }> = {
  connections: { count: "Conns", rate: "CPS" },
  packetsIn: { count: "InPkts", rate: "InPPS" },
  packetsOut: { count: "OutPkts", rate: "OutPPS" },
  bytesIn: { count: "InBytes", rate: "InBPS" },
  bytesOut: { count: "OutBytes", rate: "OutBPS" },
};

const countValues = (c: TrafficCounts) => TRAFFIC_COUNT_NAMES.map((name) => c[name]);
const rateValues = (r: TrafficRates) => TRAFFIC_COUNT_NAMES.map((name) => r[RATE_NAMES[name]]);

export function formatStats(stats: BalancerStats, rates: boolean): string {
  const columns = TRAFFIC_COUNT_NAMES.map((name) => (rates ? COLUMNS[name].rate : COLUMNS[name].count));
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
