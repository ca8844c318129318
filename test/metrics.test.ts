// The Prometheus metrics as natlb renders them: engine totals become counters that only go up (each
// scrape adds what the total grew by), per-real gauges follow the status, and the control socket
// serves the same text at GET /metrics. A stand-in for the balancer's status; no data plane.
import test from "ava";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BalancerStatus } from "../src/balancer";
import { CONTROL_ROUTES } from "../src/control/protocol";
import { startControlServer, TextAnswer } from "../src/control/server";
import { natlbMetrics } from "../src/metrics";
import { COUNTER_NAMES, type EngineCounters } from "../src/native";
import type { BalancerStats } from "../src/stats/trafficStats";

/** The parts of a status the metrics read, with engine totals from `counter`. */
function status(counter: (name: string) => number, weight: number): BalancerStatus {
  const counters = Object.fromEntries(COUNTER_NAMES.map((name) => [name, counter(name)])) as EngineCounters;
  return {
    services: [
      { vip: "198.18.0.100", port: 80, protocol: "tcp", reals: [{ ip: "198.18.1.11", port: 8080, weight, up: true, activeConns: 5, inactiveConns: 2 }] },
    ],
    flows: {
      capacity: 1024, live: 7, unassured: { halfOpenTcp: 1, udp: 0 },
      evicted: { halfOpenTcpShare: counter("e1"), udpShare: 0, halfOpenTcpRoom: 0, udpRoom: 0 }, expiredUnderPressure: 0,
    },
    kernelFastPath: { flows: 3 },
    counters,
  } as unknown as BalancerStatus;
}

/** One service with one real whose traffic counts are `scale` times a base; the service also has a removed real's counts. */
function stats(scale: number): BalancerStats {
  const counts = { connections: 2 * scale, packetsIn: 10 * scale, packetsOut: 20 * scale, bytesIn: 1000 * scale, bytesOut: 9000 * scale };
  const rates = { connectionsPerSecond: scale, packetsInPerSecond: 0, packetsOutPerSecond: 0, bytesInPerSecond: 5, bytesOutPerSecond: 7 * scale };
  return {
    services: [{
      vip: "198.18.0.100", port: 80, protocol: "tcp", rates,
      counts: { ...counts, connections: counts.connections + 1 },
      reals: [{ ip: "198.18.1.11", port: 8080, counts, rates }],
    }],
    rateSampleSeconds: 2,
  };
}

const NO_TRAFFIC = () => stats(0);

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test("engine totals are counters that follow the totals; gauges follow the status", async (t) => {
  let scrape = 1;
  let weight = 2;
  // Totals grow with each scrape; ringDrops stays.
  const metrics = natlbMetrics({
    status: () => status((name) => (name === "ringDrops" ? 4 : name === "dropVlan" ? 0 : 10 * scrape), weight), stats: () => stats(scrape),
  });
  const first = await metrics.scrape();
  t.is(sample(first, 'natlb_drops_total{reason="vlan"}'), 0, "a total at 0 is a series at 0");
  t.is(sample(first, 'natlb_frames_total{counter="toReal"}'), 10);
  t.is(sample(first, 'natlb_drops_total{reason="noNeighbour"}'), 10);
  t.is(sample(first, 'natlb_drops_total{reason="ring"}'), 4);
  t.is(sample(first, 'natlb_flows_evicted_total{class="half_open_tcp",reason="share"}'), 10);
  t.is(sample(first, 'natlb_real_weight{vip="198.18.0.100",port="80",protocol="tcp",real="198.18.1.11:8080"}'), 2);
  t.is(sample(first, "natlb_flows"), 7);
  const real = 'vip="198.18.0.100",port="80",protocol="tcp",real="198.18.1.11:8080"';
  const service = 'vip="198.18.0.100",port="80",protocol="tcp"';
  t.is(sample(first, `natlb_real_bytes_total{${real},direction="out"}`), 9000);
  t.is(sample(first, `natlb_real_packets_total{${real},direction="in"}`), 10);
  t.is(sample(first, `natlb_real_connections_total{${real}}`), 2);
  t.is(sample(first, `natlb_service_connections_total{${service}}`), 3, "the service's own total (a removed real's connection in it)");
  t.is(sample(first, `natlb_service_bytes_per_second{${service},direction="out"}`), 7);
  scrape = 3;
  weight = 0;
  const second = await metrics.scrape();
  t.is(sample(second, 'natlb_frames_total{counter="toReal"}'), 30);
  t.is(sample(second, 'natlb_drops_total{reason="ring"}'), 4, "an unchanged total stays");
  t.is(sample(second, 'natlb_real_weight{vip="198.18.0.100",port="80",protocol="tcp",real="198.18.1.11:8080"}'), 0);
  t.regex(second, /# TYPE natlb_frames_total counter/);
  t.is(sample(second, `natlb_real_bytes_total{${real},direction="out"}`), 27000);
  t.is(sample(second, `natlb_service_connections_total{${service}}`), 7);
  t.is(sample(second, `natlb_service_bytes_per_second{${service},direction="out"}`), 21, "a rate is a gauge: it follows");
  t.regex(second, /# TYPE natlb_real_bytes_total counter/);
  // A third scrape with the same totals reports the same values (nothing added twice).
  t.is(sample(await metrics.scrape(), 'natlb_frames_total{counter="toReal"}'), 30);
});

test("the flow sync's counters are counters labelled by name, only with a sync", async (t) => {
  let scrape = 1;
  const withSync = (n: number) => ({ ...status(() => 0, 1), sync: { listen: "198.18.1.1:8848", peers: [], refreshS: 30, counters: { sentRecords: 41 * n, rejectedBadMac: n } } });
  const metrics = natlbMetrics({ status: () => withSync(scrape) as BalancerStatus, stats: NO_TRAFFIC });
  t.is(sample(await metrics.scrape(), 'natlb_sync_total{counter="sentRecords"}'), 41);
  scrape = 2;
  const second = await metrics.scrape();
  t.is(sample(second, 'natlb_sync_total{counter="sentRecords"}'), 82);
  t.is(sample(second, 'natlb_sync_total{counter="rejectedBadMac"}'), 2);
  const without = await natlbMetrics({ status: () => status(() => 0, 1), stats: NO_TRAFFIC }).scrape();
  t.false(without.includes("natlb_sync_total{"));
});

test("a status that fails makes the scrape fail, not the process", async (t) => {
  const metrics = natlbMetrics({
    status: () => {
      throw new Error("the engine is stopped");
    },
    stats: NO_TRAFFIC,
  });
  await t.throwsAsync(metrics.scrape(), { message: "the engine is stopped" });
});

test("the control socket serves the Prometheus text at GET /metrics", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "natlb-metrics-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const metrics = natlbMetrics({ status: () => status(() => 42, 1), stats: NO_TRAFFIC });
  const socketPath = join(dir, "natlb.sock");
  const server = await startControlServer(socketPath, {
    [CONTROL_ROUTES.metrics]: async () => new TextAnswer(metrics.contentType, await metrics.scrape()),
  });
  t.teardown(() => server.close());
  const answer = await new Promise<{ status: number; type: string; text: string }>((resolve, reject) => {
    const req = request({ socketPath, path: "/metrics" }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), text }));
    });
    req.on("error", reject);
    req.end();
  });
  t.is(answer.status, 200);
  t.regex(answer.type, /^text\/plain/);
  t.is(sample(answer.text, 'natlb_frames_total{counter="toClient"}'), 42);
});
