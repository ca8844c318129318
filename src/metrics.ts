// Prometheus metrics over HTTP (prom-client), read from the balancer at scrape time: the engine's
// frame counters and drops by reason, the flow map, and per real server its weight, health and
// active/inactive connections. Off unless the config names an address ("metrics": {"listen": ...}).
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Registry } from "prom-client";
import type { Balancer } from "./balancer";
import { COUNTER_NAMES } from "./native";

export interface MetricsServer {
  readonly address: string;
  close(): Promise<void>;
}

function buildRegistry(balancer: Balancer): Registry & { collectNatlb: () => void } {
  const registry = new Registry();
  const realLabels = ["vip", "port", "protocol", "real"] as const;
  const gauges = {
    active: new Gauge({ name: "natlb_real_active_connections", help: "ESTABLISHED connections per real server", labelNames: realLabels, registers: [registry] }),
    inactive: new Gauge({ name: "natlb_real_inactive_connections", help: "connections in other states per real server", labelNames: realLabels, registers: [registry] }),
    up: new Gauge({ name: "natlb_real_up", help: "1 when the real server's health check passes", labelNames: realLabels, registers: [registry] }),
    weight: new Gauge({ name: "natlb_real_weight", help: "configured weight of the real server", labelNames: realLabels, registers: [registry] }),
    flows: new Gauge({ name: "natlb_flows", help: "live flows in the flow map", registers: [registry] }),
    capacity: new Gauge({ name: "natlb_flow_capacity", help: "flow map capacity", registers: [registry] }),
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
    gauges.flows.set(status.flows.live);
    gauges.capacity.set(status.flows.capacity);
    gauges.kernelFlows.set(status.kernelFastPath.flows);
    gauges.unassured.set({ class: "half_open_tcp" }, status.flows.unassured.halfOpenTcp);
    gauges.unassured.set({ class: "udp" }, status.flows.unassured.udp);
    evicted.reset();
    const e = status.flows.evicted;
    evicted.inc({ class: "half_open_tcp", reason: "share" }, e.halfOpenTcpShare);
    evicted.inc({ class: "udp", reason: "share" }, e.udpShare);
    evicted.inc({ class: "half_open_tcp", reason: "room" }, e.halfOpenTcpRoom);
    evicted.inc({ class: "udp", reason: "room" }, e.udpRoom);
    evicted.inc({ class: "any", reason: "pressure_timeout" }, status.flows.expiredUnderPressure);
    frames.reset();
    drops.reset();
    for (const name of COUNTER_NAMES) {
      const value = status.counters[name];
      if (name.startsWith("drop")) drops.inc({ reason: name.slice(4).replace(/^./, (c) => c.toLowerCase()) }, value);
      else if (name === "ringDrops") drops.inc({ reason: "ring" }, value);
      else frames.inc({ counter: name }, value);
    }
  };
  return Object.assign(registry, { collectNatlb: collect });
}

export async function startMetricsServer(balancer: Balancer, listen: string): Promise<MetricsServer> {
  const registry = buildRegistry(balancer);
  const [host, port] = [listen.slice(0, listen.lastIndexOf(":")), Number(listen.slice(listen.lastIndexOf(":") + 1))];
  const server: Server = createServer((request, response) => {
    if (request.method !== "GET" || request.url !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("natlb serves /metrics only\n");
      return;
    }
    try {
      registry.collectNatlb();
      void registry.metrics().then((text) => response.writeHead(200, { "content-type": registry.contentType }).end(text));
    } catch (error) {
      response.writeHead(500, { "content-type": "text/plain" }).end(`${(error as Error).message}\n`);
    }
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
