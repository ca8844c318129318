// End to end, real packets: the traffic stats (lb.stats(), GET /stats, `natlb stats`, Prometheus)
// against the bytes and connections the lab moved, with the kernel fast path (default) and with user
// space only. A 64 MiB download (sha256 checked) through one real: its bytes out hold the body plus at
// least 40 B (IP + TCP header) per counted packet, and equal, to the byte, the IP bytes the real's
// interface sent (its frames less their Ethernet headers and its few ARP frames), both directions: so
// nothing is lost and nothing counted twice whichever path moved it. Connections per real equal those
// the clients made through it (12 short downloads spread by rr); a service's totals are the sum of its
// reals'; a paced stream shows a rate while it runs that falls back near 0 after it; `natlb stats
// --json` says what GET /stats says; Prometheus counters never go down. Namespace prefix "st".
import test, { type ExecutionContext } from "ava";
import type { BalancerStatus } from "../src/balancer";
import { requestControl } from "../src/control";
import type { BalancerStats, RealTrafficStats } from "../src/stats/trafficStats";
import { TRAFFIC_COUNT_NAMES } from "../src/stats/trafficCounts";
import type { BalancerProcess } from "../lab/balancerProcess";
import { startBalancer } from "../lab/balancerProcess";
import { blobUrl, runDownload } from "../lab/download";
import type { Lab, LabHost } from "../lab/topology";
import { sleep, waitUntil } from "../lab/wait";
import { REAL_PORT, SERVICE_PORT, tcpService, withNatLab } from "./support/lab";
import { startPacedClient, startPacedServer } from "./support/pacedStream";

const MiB = 1024 * 1024;
const MIN_HEADER = 40;  // IP 20 + TCP 20
const PACED_SERVICE_PORT = 81;
const PACED_REAL_PORT = 9000;

const stats = async (natlb: BalancerProcess) => (await requestControl(natlb.socket, "GET /stats")) as BalancerStats;
const statusOf = async (natlb: BalancerProcess) => (await requestControl(natlb.socket, "GET /status")) as BalancerStatus;
const countsKey = (s: BalancerStats) => JSON.stringify(s.services.map((service) => [service.counts, service.reals.map((r) => r.counts)]));

/**
 * Stats once the counts stop moving: the kernel's counts of offloaded flows are read back about once a
 * second, so two reads 1.5 s apart that agree have everything.
 */
async function settledStats(natlb: BalancerProcess): Promise<BalancerStats> {
  let previous = await stats(natlb);
  return waitUntil("the stats to settle", async () => {
    await sleep(1500);
    const next = await stats(natlb);
    const same = countsKey(next) === countsKey(previous);
    previous = next;
    return same ? next : undefined;
  }, 20_000, 0);
}

/** Every natlb_service_* and natlb_real_* counter of a Prometheus text, by series. */
function trafficCounters(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^(natlb_(?:service|real)_[a-z_]+_total\{[^}]*\}) (\S+)$/.exec(line);
    if (match) out.set(match[1]!, Number(match[2]));
  }
  return out;
}

/** What a lab host's interface has sent: frames and bytes (Ethernet header included), as `ip -s link` counts them. */
async function sentByHost(lab: Lab, host: LabHost): Promise<{ frames: number; bytes: number }> {
  const r = await lab.exec(host.ns, "ip", ["-j", "-s", "link", "show", "dev", host.ifname]);
  const tx = (JSON.parse(r.stdout) as Array<{ stats64?: { tx?: { packets?: number; bytes?: number } } }>)[0]?.stats64?.tx;
  if (tx?.packets === undefined || tx.bytes === undefined) throw new Error(`no counters for ${host.ifname} in ${host.ns}`);
  return { frames: tx.packets, bytes: tx.bytes };
}

function realOf(s: BalancerStats, port: number, ip: string): RealTrafficStats {
  const real = s.services.find((service) => service.port === port)?.reals.find((r) => r.ip === ip);
  if (!real) throw new Error(`no real ${ip} in the stats of port ${port}`);
  return real;
}

/** Nothing lost: the IP bytes of one direction hold the payload and at least a minimal header per packet. */
function assertHoldsPayload(t: ExecutionContext, what: string, bytes: number, packets: number, payload: number): void {
  t.true(bytes - MIN_HEADER * packets >= payload, `${what}: ${bytes} bytes in ${packets} packets, less than ${payload} payload bytes and ${MIN_HEADER} B per packet`);
}

/**
 * Exactly once: natlb counted every IP packet the host sent through it, and nothing more. The host's
 * interface counts frames with their 14-byte Ethernet header, and also its ARP frames (28 bytes after
 * that header; at most a few in a run): what is left after them is natlb's count to the byte.
 */
function assertSentOnce(t: ExecutionContext, what: string, counted: { bytes: number; packets: number }, sent: { frames: number; bytes: number }): void {
  const ipBytes = sent.bytes - 14 * sent.frames;
  const arpFrames = sent.frames - counted.packets;
  t.log(`${what}: the host sent ${sent.frames} frames, ${ipBytes} bytes after Ethernet headers; natlb counted ${counted.packets} packets, ${counted.bytes} bytes`);
  t.true(arpFrames >= 0 && arpFrames <= 4, `${what}: ${arpFrames} frames more than natlb counted packets`);
  t.is(counted.bytes, ipBytes - 28 * arpFrames, `${what}: natlb's bytes are not the host's IP bytes`);
}

for (const kernelFastPath of [true, false]) {
  const mode = kernelFastPath ? "kernel fast path" : "user space only";

  test.serial(`${mode}: stats count the bytes, packets and connections moved, once; rates follow a transfer; the surfaces agree`, async (t) => {
    await withNatLab(t, { offloads: true, prefix: "st", startNatlb: false }, async (env) => {
      const { lab, servers } = env;
      // The gateway's kernel learns its neighbours (the fast path forwards by them), as any traffic would.
      for (const [i, real] of lab.reals.entries()) await runDownload(lab, { url: blobUrl(real.ip, REAL_PORT, 1024, "warm"), localPortBase: 30100 + i });
      const paced = { vip: lab.vip, port: PACED_SERVICE_PORT, protocol: "tcp", scheduler: "rr", reals: [{ ip: lab.reals[0]!.ip, port: PACED_REAL_PORT }] };
      env.natlb = await startBalancer(lab, {
        services: [tcpService(lab, [1, 1, 1], { scheduler: "rr" }), paced],
        kernelFastPath,
        timeouts: { tcpTimeWait: 3, tcpFinWait: 3, tcpClose: 3 },
      });
      const natlb = env.natlb;
      const scrapes: Array<Map<string, number>> = [trafficCounters(String(await requestControl(natlb.socket, "GET /metrics")))];
      const start = await stats(natlb);
      t.true(start.services.every((s) => TRAFFIC_COUNT_NAMES.every((name) => s.counts[name] === 0)), JSON.stringify(start));

      // One 64 MiB download through one real.
      const body = 64 * MiB;
      const sentBefore = await Promise.all([...lab.reals, lab.client].map((r) => sentByHost(lab, r)));
      const big = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, body, "stats-big"), localPortBase: 31000 });
      t.is(big.failed, 0, JSON.stringify(big.results));
      const result = big.results[0]!;
      const server = servers.find((s) => s.real.ip === result.real)!;
      const served = await waitUntil("the server's log line", () => server.served().find((e) => e.peerPort === result.localPort), 3000, 20);
      t.is(result.sha256, served.sha256, "sha256 at the client differs from the server's");
      t.is(result.bytes, body);
      scrapes.push(trafficCounters(String(await requestControl(natlb.socket, "GET /metrics"))));

      const afterBig = await settledStats(natlb);
      const sentAfter = await Promise.all([...lab.reals, lab.client].map((r) => sentByHost(lab, r)));
      const sentDuring = (i: number) => ({ frames: sentAfter[i]!.frames - sentBefore[i]!.frames, bytes: sentAfter[i]!.bytes - sentBefore[i]!.bytes });
      const status = await statusOf(natlb);
      const real = realOf(afterBig, SERVICE_PORT, result.real!);
      t.log(mode, JSON.stringify(real.counts), `kernelForwardedBytes ${status.counters.kernelForwardedBytes}`);
      if (kernelFastPath) {
        t.true(status.kernelFastPath.enabled);
        t.true(status.counters.kernelForwardedBytes > 0.9 * body, "the kernel moved most of the bytes (the stats had to fold them in)");
      } else {
        t.false(status.kernelFastPath.enabled);
        t.is(status.counters.kernelForwardedBytes, 0);
      }
      t.is(real.counts.connections, 1);
      assertHoldsPayload(t, "out", real.counts.bytesOut, real.counts.packetsOut, body);
      // Headers: with no retransmission, bytes out = body + the HTTP head (< 1 KiB) + 40..80 B per packet
      // (IP 20 + TCP 20..60); a retransmitted segment adds its payload again, so only the exact check
      // against what the hosts sent bounds it from above.
      assertSentOnce(t, "real -> client", { bytes: real.counts.bytesOut, packets: real.counts.packetsOut }, sentDuring(lab.reals.findIndex((r) => r.ip === result.real)));
      assertSentOnce(t, "client -> real", { bytes: real.counts.bytesIn, packets: real.counts.packetsIn }, sentDuring(lab.reals.length));
      // Packets: at least the SYN-ACK, a data segment and the FIN; at most one per 1000 body bytes (MSS
      // ~1448; a GSO super-frame counts once) plus a few without data.
      t.true(real.counts.packetsOut >= 3 && real.counts.packetsOut <= body / 1000 + 20, `packetsOut ${real.counts.packetsOut}`);
      t.true(real.counts.packetsIn >= 3, `packetsIn ${real.counts.packetsIn}`);
      for (const other of lab.reals.filter((r) => r.ip !== result.real)) {
        t.deepEqual(realOf(afterBig, SERVICE_PORT, other.ip).counts, { connections: 0, packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0 });
      }

      // A paced stream (6 s): its rate shows while it runs, and falls back near 0 after it.
      const chunkBytes = 64 * 1024;
      const chunks = 60;
      const streamServer = await startPacedServer(lab, 1, PACED_REAL_PORT, { chunkBytes, intervalMs: 100, chunks });
      const client = startPacedClient(lab, { host: lab.vip, port: PACED_SERVICE_PORT, localPort: 31500, expectBytes: chunks * chunkBytes, timeoutMs: 30_000 });
      try {
        await client.waitForBytes(40 * chunkBytes, 15_000);
        const during = (await stats(natlb)).services.find((s) => s.port === PACED_SERVICE_PORT)!;
        const paceRate = chunkBytes * 10;  // bytes a second
        t.log(`during the stream: ${JSON.stringify(during.rates)} (paced at ${paceRate} B/s)`);
        t.true(during.rates.bytesOutPerSecond > 0.1 * paceRate && during.rates.bytesOutPerSecond < 2 * paceRate, JSON.stringify(during.rates));
        t.true(during.reals[0]!.rates.bytesOutPerSecond > 0);
        const received = await client.received(20_000);
        const sent = await streamServer.sentTo(31500, 5000);
        t.is(received.sha256, sent.sha256);
      } finally {
        await client.stop();
        await streamServer.stop();
      }
      let peak = 0;
      const quiet = await waitUntil("the stream's rate back near 0", async () => {
        const rate = (await stats(natlb)).services.find((s) => s.port === PACED_SERVICE_PORT)!.rates.bytesOutPerSecond;
        peak = Math.max(peak, rate);
        return rate < 0.1 * peak ? rate : undefined;
      }, 40_000, 500);
      t.log(`peak ${Math.round(peak)} B/s, then ${Math.round(quiet)} B/s`);
      t.true(peak > 0);

      // 12 short connections spread by rr: each real's connections grow by those it answered.
      const short = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 1000, "stats-short"), count: 12, localPortBase: 31100 });
      t.is(short.failed, 0, JSON.stringify(short.results));
      scrapes.push(trafficCounters(String(await requestControl(natlb.socket, "GET /metrics"))));
      const end = await settledStats(natlb);
      const streamReal = realOf(end, PACED_SERVICE_PORT, lab.reals[0]!.ip);
      t.is(streamReal.counts.connections, 1);
      assertHoldsPayload(t, "stream out", streamReal.counts.bytesOut, streamReal.counts.packetsOut, chunks * chunkBytes);
      for (const r of lab.reals) {
        const answered = short.results.filter((x) => x.real === r.ip).length;
        t.true(answered >= 3, `rr gave ${r.ip} ${answered} of 12`);
        const before = realOf(afterBig, SERVICE_PORT, r.ip).counts.connections;
        t.is(realOf(end, SERVICE_PORT, r.ip).counts.connections - before, answered, `connections of ${r.ip}`);
      }
      // A service's totals are the sum of its reals' (none was removed).
      for (const service of end.services) {
        for (const name of TRAFFIC_COUNT_NAMES) {
          t.is(service.counts[name], service.reals.reduce((sum, r) => sum + r.counts[name], 0), `${service.port} ${name}`);
        }
      }

      // The CLI says what the socket says (idle: the counts hold still).
      const cli = await natlb.cli(["stats", "--json"]);
      t.is(cli.code, 0, cli.stderr);
      const fromCli = JSON.parse(cli.stdout) as BalancerStats;
      t.is(countsKey(fromCli), countsKey(end));
      const text = await natlb.cli(["stats"]);
      t.regex(text.stdout, /Conns\s+InPkts\s+OutPkts\s+InBytes\s+OutBytes/);
      const endBytesOut = realOf(end, SERVICE_PORT, result.real!).counts.bytesOut;
      t.true(text.stdout.includes(`${lab.vip}:${SERVICE_PORT}`) && text.stdout.includes(String(endBytesOut)), text.stdout);
      const rates = await natlb.cli(["stats", "--rate"]);
      t.regex(rates.stdout, /CPS\s+InPPS\s+OutPPS\s+InBPS\s+OutBPS/);

      // Prometheus: counters that only grow, ending at the stats' totals.
      const last = trafficCounters(String(await requestControl(natlb.socket, "GET /metrics")));
      scrapes.push(last);
      for (let i = 1; i < scrapes.length; i++) {
        for (const [series, value] of scrapes[i - 1]!) {
          const later = scrapes[i]!.get(series);
          t.true(later !== undefined && later >= value, `${series} went from ${value} to ${later}`);
        }
      }
      const labels = `vip="${lab.vip}",port="${SERVICE_PORT}",protocol="tcp",real="${result.real}:${REAL_PORT}"`;
      const endReal = realOf(end, SERVICE_PORT, result.real!);
      t.is(last.get(`natlb_real_bytes_total{${labels},direction="out"}`), endReal.counts.bytesOut);
      t.is(last.get(`natlb_real_packets_total{${labels},direction="in"}`), endReal.counts.packetsIn);
      t.is(last.get(`natlb_real_connections_total{${labels}}`), endReal.counts.connections);
      const service = end.services.find((s) => s.port === SERVICE_PORT)!;
      t.is(last.get(`natlb_service_bytes_total{vip="${lab.vip}",port="${SERVICE_PORT}",protocol="tcp",direction="out"}`), service.counts.bytesOut);
    });
  });
}
