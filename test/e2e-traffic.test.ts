// End to end, real packets: a client, the natlb daemon on the gateway, three real servers, in network
// namespaces; with veth offloads on (64 KB GSO frames) and off (MTU frames).
import test from "ava";
import { blobUrl, runDownload } from "../lab/download";
import { runUdpClient } from "../lab/udpEcho";
import { requestControl } from "../src/control";
import type { ConnectionPage } from "../src/flows/connectionQuery";
import type { Connection } from "../src/flows/flowMap";
import { SERVICE_PORT, startUdpEchoes, tcpService, udpService, withNatLab, withUdpLab } from "./support/lab";
import { assertRewrittenCapture, captureDownloadThroughVip } from "./support/trafficChecks";

const MiB = 1024 * 1024;

for (const offloads of [true, false]) {
  const mode = offloads ? "offloads on" : "offloads off";

  // With offloads on, the defaults (the kernel schedules and forwards the connections); with them off, user
  // space (kernelFastPath false), whose merge of MTU segments into GSO super-frames this checks.
  const config = offloads ? undefined : (lab: Parameters<typeof tcpService>[0]) => ({ services: [tcpService(lab, [1, 1, 1])], kernelFastPath: false });
  test.serial(`${mode}: a 512 MiB download through the VIP arrives intact from 3 real servers (${offloads ? "defaults" : "user space"})`, async (t) => {
    await withNatLab(t, { offloads, ...(config ? { config } : {}) }, async ({ lab, servers, natlb }) => {
      const summary = await runDownload(lab, {
        url: blobUrl(lab.vip, SERVICE_PORT, 512 * MiB, `big-${mode}`),
        conns: 3,
        count: 3,
        localPortBase: 20000,
        timeoutMs: 120_000,
      });
      t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
      const served = servers.flatMap((s) => s.served());
      for (const result of summary.results) {
        t.is(result.bytes, 512 * MiB);
        const server = served.find((e) => e.peerPort === result.localPort && e.peer === lab.client.ip);
        t.truthy(server, `no server logged the connection from port ${result.localPort}`);
        t.is(result.sha256, server?.sha256 ?? null, "sha256 at the client differs from the server's");
      }
      t.is(new Set(summary.results.map((r) => r.real)).size, 3, "round robin over 3 equal reals uses all 3");
      const status = await natlb!.status();
      // By default the kernel schedules and forwards these connections; without the fast path user space does.
      const { toReal, toClient, kernelScheduledFlows, kernelForwardedPackets } = status.counters;
      t.true((toReal > 0 && toClient > 0) || (kernelScheduledFlows === 3 && kernelForwardedPackets > 0), JSON.stringify({ toReal, toClient, kernelScheduledFlows }));
      // Ring drops are a router's congestion signal on this 2-core box (the client, servers and natlb
      // share the CPUs): TCP recovers, the content check above is what proves correctness.
      t.is(status.counters.dropTxError, 0);
      t.is(status.counters.dropNoNeighbour + status.counters.dropNoRoute + status.counters.dropMalformed, 0);
      if (!offloads) t.true(status.counters.txCoalescedSegments > 0, "MTU segments went out coalesced into GSO super-frames");
    });
  });

  test.serial(`${mode}: weights 3:1:1 over 300 connections give 60/20/20 within 5 points`, async (t) => {
    await withNatLab(t, { offloads, config: (lab) => ({ services: [tcpService(lab, [3, 1, 1])] }) }, async ({ lab, natlb }) => {
      const summary = await runDownload(lab, {
        url: blobUrl(lab.vip, SERVICE_PORT, 2048, "small"),
        conns: 10,
        count: 300,
        localPortBase: 30000,
        timeoutMs: 60_000,
      });
      t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error).slice(0, 3)));
      const share = (ip: string) => (100 * summary.results.filter((r) => r.real === ip).length) / summary.results.length;
      const expected = [60, 20, 20];
      lab.reals.forEach((real, i) => {
        const actual = share(real.ip);
        t.true(Math.abs(actual - expected[i]!) <= 5, `${real.ip}: ${actual.toFixed(1)} % (expected ${expected[i]} ± 5)`);
      });
      const status = await natlb!.status();
      const conns = status.services[0]!.reals.map((r) => r.activeConns + r.inactiveConns);
      t.is(conns.reduce((a, b) => a + b, 0), 300, "the flow map holds every connection (TIME_WAIT)");
      // status's counts are the data plane's per-real counters; the flow map itself must agree, real by
      // real and state by state, also through GET /conns's real filter.
      const flows = await natlb!.connections();
      for (const real of status.services[0]!.reals) {
        const mine = flows.filter((c) => c.real.ip === real.ip && c.real.port === real.port);
        t.is(real.activeConns, mine.filter((c) => c.state === "ESTABLISHED").length, `${real.ip}: active`);
        t.is(real.inactiveConns, mine.filter((c) => c.state !== "ESTABLISHED").length, `${real.ip}: inactive`);
        const filtered = (await requestControl(natlb!.socket, `GET /conns?real=${real.ip}:${real.port}&limit=10000`)) as ConnectionPage<Connection>;
        t.is(filtered.connections.length, real.activeConns + real.inactiveConns, `${real.ip}: GET /conns?real=`);
        t.false(filtered.more);
      }
    });
  });

  test.serial(`${mode}: UDP request/response through the VIP`, async (t) => {
    await withNatLab(
      t,
      {
        offloads,
        config: (lab) => ({
          services: [udpService(lab)],
        }),
      },
      async ({ lab, natlb }) => {
        const echoes = await startUdpEchoes(lab);
        const summary = await runUdpClient(lab, { host: lab.vip, port: 53, count: 30, sockets: 6, localPortBase: 40000 });
        t.is(summary.received, 30, `lost: ${summary.lost.join(",")}`);
        for (const reply of summary.replies) t.is(reply.from, `${lab.vip}:53`);
        t.is(new Set(summary.replies.map((r) => r.real)).size, 3);
        const echoed = echoes.flatMap((e) => e.echoes());
        t.true(echoed.every((e) => e.peer === lab.client.ip), "real servers see the client's own address");
        // UDP flows count as inactive (ipvsadm's InActConn), one per client socket, each on the real it went to.
        const status = await natlb!.status();
        const flows = await natlb!.connections();
        t.is(flows.length, 6);
        for (const real of status.services[0]!.reals) {
          t.is(real.activeConns, 0);
          t.is(real.inactiveConns, flows.filter((c) => c.real.ip === real.ip && c.real.port === real.port).length, `${real.ip}: inactive`);
        }
      },
    );
  });

  test.serial(`${mode}: captured packets carry VIP:vport at the client, RIP:rport at the reals, valid checksums`, async (t) => {
    await withNatLab(t, { offloads }, async ({ lab }) => {
      const { summary, client, reals } = await captureDownloadThroughVip(lab, "capture");
      t.is(summary.failed, 0);
      assertRewrittenCapture(t, lab, client, reals);
    });
  });
}

test.serial("UDP datagrams larger than the MTU pass both ways, and the reals' own UDP keeps working", async (t) => {
  await withUdpLab(t, async ({ lab, natlb }) => {
      // 4000-byte requests and replies: three IPv4 fragments each way.
      const big = await runUdpClient(lab, { host: lab.vip, port: 53, count: 12, sockets: 4, localPortBase: 40800, payloadBytes: 4000 });
      t.is(big.received, 12, `lost: ${big.lost.join(",")}`);
      t.is(big.late, 0, "no second copy of a reply (the kernel's, from the real's address) arrives");
      t.deepEqual([...new Set(big.replies.map((r) => r.from))], [`${lab.vip}:53`]);
      const counters = (await natlb!.status()).counters;
      t.true(counters.fragmentsForwarded >= 24, `fragmentsForwarded ${counters.fragmentsForwarded}`);
      // A direct exchange with a real is not natlb's: the kernel forwards it, fragments and all.
      const beforeDirect = (await natlb!.status()).counters;
      const direct = await runUdpClient(lab, { host: lab.reals[0]!.ip, port: 5353, count: 5, localPortBase: 40900, payloadBytes: 3000 });
      t.is(direct.received, 5);
      t.deepEqual([...new Set(direct.replies.map((r) => r.from))], [`${lab.reals[0]!.ip}:5353`]);
      t.is((await natlb!.status()).counters.toClient, beforeDirect.toClient);
    },
  );
});
