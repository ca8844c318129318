// Prometheus metrics (prom-client), read from the balancer at scrape time: the engine's frame
// counters and drops by reason, the flow map, per real server its weight, health and
// active/inactive connections, and per service and real the traffic of lb.stats() (connections,
// packets and bytes by direction as true counters; the service's rates as gauges). Served on the control socket (GET /metrics, read role) always, and
// over HTTP when the config names an address ("metrics": {"listen": ...}; loopback unless
// allowNonLoopback: the listener has no authentication).
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Registry, type LabelValues } from "prom-client";
import type { Balancer } from "./balancer";
import { COUNTER_NAMES, GATEWAY_ROLES } from "./native";

export interface MetricsServer {
  readonly address: string;
  close(): Promise<void>;
}

/** natlb's metrics, rendered on demand. */
export interface NatlbMetrics {
  /** The Prometheus text format's content type. */
  readonly contentType: string;
  /** Reads the balancer's status and stats once and renders every metric. */
  scrape(): Promise<string>;
}

/**
 * Keeps prom-client counters equal to totals the engine counts itself: each scrape adds what the
 * total grew by since the last one, so a counter only ever goes up (no reset and re-increment).
 */
function counterMirror<T extends string>(counter: Counter<T>): (labels: LabelValues<T>, total: number) => void {
  const seen = new Map<string, number>();
  return (labels, total) => {
    const key = JSON.stringify(labels);
    const before = seen.get(key);
    seen.set(key, total);
    // The first scrape makes every series appear, those at 0 too.
    if (before === undefined) counter.inc(labels, total);
    else if (total > before) counter.inc(labels, total - before);
    else if (total < before) {
      // The source started again from zero (it never does within one daemon): start the series again too.
      counter.remove(labels);
      counter.inc(labels, total);
    }
  };
}

function buildRegistry(balancer: Pick<Balancer, "status" | "stats">): Registry & { collectNatlb: () => void } {
  const registry = new Registry();
  const realLabels = ["vip", "port", "protocol", "real"] as const;
  const gauges = {
    active: new Gauge({ name: "natlb_real_active_connections", help: "ESTABLISHED connections per real server", labelNames: realLabels, registers: [registry] }),
    inactive: new Gauge({ name: "natlb_real_inactive_connections", help: "connections in other states per real server", labelNames: realLabels, registers: [registry] }),
    up: new Gauge({ name: "natlb_real_up", help: "1 when the real server's health check passes", labelNames: realLabels, registers: [registry] }),
    weight: new Gauge({ name: "natlb_real_weight", help: "configured weight of the real server", labelNames: realLabels, registers: [registry] }),
    flows: new Gauge({ name: "natlb_flows", help: "live flows in the flow map", registers: [registry] }),
    capacity: new Gauge({ name: "natlb_flow_capacity", help: "flow map capacity", registers: [registry] }),
    haRole: new Gauge({
      name: "natlb_ha_role", help: "1 for this gateway's role in an active/backup pair (config ha), 0 for the others; absent for a lone gateway",
      labelNames: ["role"], registers: [registry],
    }),
    kernelFlows: new Gauge({ name: "natlb_kernel_fast_path_flows", help: "flows the kernel fast path forwards now", registers: [registry] }),
    unassured: new Gauge({
      name: "natlb_unassured_flows", help: "flows that have not proven themselves yet (first to go in a flood), by class",
      labelNames: ["class"], registers: [registry],
    }),
  };
  const evicted = new Counter({
    name: "natlb_flows_evicted_total", help: "unassured flows the flood defences removed, by class and reason",
    labelNames: ["class", "reason"], registers: [registry],
  });
  const frames = new Counter({ name: "natlb_frames_total", help: "frames by outcome (engine counters that are not drops)", labelNames: ["counter"], registers: [registry] });
  const drops = new Counter({ name: "natlb_drops_total", help: "frames dropped, by reason", labelNames: ["reason"], registers: [registry] });
  const sync = new Counter({
    name: "natlb_sync_total", help: "flow sync: datagrams, records and bytes sent and received, records applied, rejected and dropped by reason (native/sync/sync_counters.h)",
    labelNames: ["counter"], registers: [registry],
  });

  // lb.stats(): per service (every real it has had, removed ones included) and per configured real.
  const serviceLabels = ["vip", "port", "protocol"] as const;
  const traffic = {
    serviceConnections: new Counter({ name: "natlb_service_connections_total", help: "connections created, per service", labelNames: serviceLabels, registers: [registry] }),
    servicePackets: new Counter({
      name: "natlb_service_packets_total", help: "packets per service, in (client to real) and out (real to client); a GSO super-frame counts once",
      labelNames: [...serviceLabels, "direction"], registers: [registry],
    }),
    serviceBytes: new Counter({ name: "natlb_service_bytes_total", help: "IP bytes per service, in and out", labelNames: [...serviceLabels, "direction"], registers: [registry] }),
    realConnections: new Counter({ name: "natlb_real_connections_total", help: "connections created, per real server", labelNames: realLabels, registers: [registry] }),
    realPackets: new Counter({ name: "natlb_real_packets_total", help: "packets per real server, in and out", labelNames: [...realLabels, "direction"], registers: [registry] }),
    realBytes: new Counter({ name: "natlb_real_bytes_total", help: "IP bytes per real server, in and out", labelNames: [...realLabels, "direction"], registers: [registry] }),
  };
  const rates = {
    connections: new Gauge({ name: "natlb_service_connections_per_second", help: "new connections per second (natlb's 2 s estimator)", labelNames: serviceLabels, registers: [registry] }),
    packets: new Gauge({ name: "natlb_service_packets_per_second", help: "packets per second by direction (natlb's 2 s estimator)", labelNames: [...serviceLabels, "direction"], registers: [registry] }),
    bytes: new Gauge({ name: "natlb_service_bytes_per_second", help: "IP bytes per second by direction (natlb's 2 s estimator)", labelNames: [...serviceLabels, "direction"], registers: [registry] }),
  };
  const trafficTotals = Object.fromEntries(Object.entries(traffic).map(([name, counter]) => [name, counterMirror(counter as Counter<string>)])) as Record<
    keyof typeof traffic, (labels: LabelValues<string>, total: number) => void
  >;

  const evictedTotal = counterMirror(evicted);
  const framesTotal = counterMirror(frames);
  const dropsTotal = counterMirror(drops);
  const syncTotal = counterMirror(sync);

  // One status read per scrape fills every metric.
  const collect = () => {
    const status = balancer.status();
    for (const gauge of [gauges.active, gauges.inactive, gauges.up, gauges.weight]) gauge.reset();
    for (const service of status.services) {
      for (const real of service.reals) {
        const labels = { vip: service.vip, port: String(service.port), protocol: service.protocol, real: `${real.ip}:${real.port}` };
        gauges.active.set(labels, real.activeConns);
        gauges.inactive.set(labels, real.inactiveConns);
        gauges.up.set(labels, real.up ? 1 : 0);
        gauges.weight.set(labels, real.weight);
      }
    }
    for (const gauge of Object.values(rates)) gauge.reset();
    for (const service of balancer.stats().services) {
      const labels = { vip: service.vip, port: String(service.port), protocol: service.protocol };
      const c = service.counts;
      trafficTotals.serviceConnections(labels, c.connections);
      trafficTotals.servicePackets({ ...labels, direction: "in" }, c.packetsIn);
      trafficTotals.servicePackets({ ...labels, direction: "out" }, c.packetsOut);
      trafficTotals.serviceBytes({ ...labels, direction: "in" }, c.bytesIn);
      trafficTotals.serviceBytes({ ...labels, direction: "out" }, c.bytesOut);
      rates.connections.set(labels, service.rates.connectionsPerSecond);
      rates.packets.set({ ...labels, direction: "in" }, service.rates.packetsInPerSecond);
      rates.packets.set({ ...labels, direction: "out" }, service.rates.packetsOutPerSecond);
      rates.bytes.set({ ...labels, direction: "in" }, service.rates.bytesInPerSecond);
      rates.bytes.set({ ...labels, direction: "out" }, service.rates.bytesOutPerSecond);
      for (const real of service.reals) {
        const realLabelValues = { ...labels, real: `${real.ip}:${real.port}` };
        trafficTotals.realConnections(realLabelValues, real.counts.connections);
        trafficTotals.realPackets({ ...realLabelValues, direction: "in" }, real.counts.packetsIn);
        trafficTotals.realPackets({ ...realLabelValues, direction: "out" }, real.counts.packetsOut);
        trafficTotals.realBytes({ ...realLabelValues, direction: "in" }, real.counts.bytesIn);
        trafficTotals.realBytes({ ...realLabelValues, direction: "out" }, real.counts.bytesOut);
      }
    }
    gauges.flows.set(status.flows.live);
    gauges.capacity.set(status.flows.capacity);
    gauges.kernelFlows.set(status.kernelFastPath.flows);
    if (status.ha) for (const role of GATEWAY_ROLES) gauges.haRole.set({ role }, status.ha.role === role ? 1 : 0);
    gauges.unassured.set({ class: "half_open_tcp" }, status.flows.unassured.halfOpenTcp);
    gauges.unassured.set({ class: "udp" }, status.flows.unassured.udp);
    const e = status.flows.evicted;
    evictedTotal({ class: "half_open_tcp", reason: "share" }, e.halfOpenTcpShare);
    evictedTotal({ class: "udp", reason: "share" }, e.udpShare);
    evictedTotal({ class: "half_open_tcp", reason: "room" }, e.halfOpenTcpRoom);
    evictedTotal({ class: "udp", reason: "room" }, e.udpRoom);
    evictedTotal({ class: "any", reason: "pressure_timeout" }, status.flows.expiredUnderPressure);
    for (const name of COUNTER_NAMES) {
      const value = status.counters[name];
      if (name.startsWith("drop")) dropsTotal({ reason: name.slice(4).replace(/^./, (c) => c.toLowerCase()) }, value);
      else if (name === "ringDrops") dropsTotal({ reason: "ring" }, value);
      else framesTotal({ counter: name }, value);
    }
    for (const [name, value] of Object.entries(status.sync?.counters ?? {})) syncTotal({ counter: name }, value);
  };
  return Object.assign(registry, { collectNatlb: collect });
}

export function natlbMetrics(balancer: Pick<Balancer, "status" | "stats">): NatlbMetrics {
  const registry = buildRegistry(balancer);
  return {
    contentType: registry.contentType,
    async scrape(): Promise<string> {
      registry.collectNatlb();
      return registry.metrics();
    },
  };
}

/** Serves `metrics` over HTTP at `listen` (an address the config has validated: loopback unless allowed otherwise). */
export async function startMetricsServer(metrics: NatlbMetrics, listen: string): Promise<MetricsServer> {
  const [host, port] = [listen.slice(0, listen.lastIndexOf(":")), Number(listen.slice(listen.lastIndexOf(":") + 1))];
  const server: Server = createServer((request, response) => {
    if (request.method !== "GET" || request.url !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("natlb serves /metrics only\n");
      return;
    }
    metrics.scrape().then(
      (text) => response.writeHead(200, { "content-type": metrics.contentType }).end(text),
      (error: unknown) => response.writeHead(500, { "content-type": "text/plain" }).end(`${(error as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return {
    address: listen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
