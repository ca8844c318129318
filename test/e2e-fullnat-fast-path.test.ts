// End to end, full NAT with the kernel fast path (kernelFastPath "auto", as root): the lab's full-NAT
// topology. An established full-NAT flow's segments are rewritten by the TC program at both endpoints
// (client -> VIP becomes local:lport -> real, real -> local:lport becomes VIP -> client); only the
// handshake, the first segments and FIN/RST reach natlb's rings. Every lab here uses the namespace
// prefix "ff".
import test from "ava";
import { startBalancer } from "../lab/balancerProcess";
import { startCapture } from "../lab/capture";
import { blobUrl, runDownload } from "../lab/download";
import { pingFrom } from "../lab/icmpProbe";
import type { Lab } from "../lab/topology";
import { waitUntil } from "../lab/wait";
import { requestControl } from "../src/control";
import type { BalancerStats } from "../src/stats/trafficStats";
import { REAL_PORT, SERVICE_PORT, gatewaySnapshot, withNatLab } from "./support/lab";

const MiB = 1024 * 1024;
const PREFIX = "ff";
/** Short closing timeouts (seconds), so that the closed flow expires within the test. */
const SHORT_CLOSING_TIMEOUTS = { tcpTimeWait: 3, tcpFinWait: 3, tcpClose: 3 };

function fullNatService(lab: Lab) {
  return {
    vip: lab.vip,
    port: SERVICE_PORT,
    forwarding: "fullnat",
    fullnat: { localAddresses: [...lab.fullNatPool] },
    scheduler: "rr",
    reals: lab.reals.map((r) => ({ ip: r.ip, port: REAL_PORT })),
  };
}

test.serial("fullnat with the kernel fast path: a 512 MiB download arrives intact, mostly forwarded by the kernel with both endpoints rewritten (pool address at the real, VIP at the client, valid checksums, one TTL less); the flow leaves the kernel at expiry; kernel state restored", async (t) => {
  await withNatLab(t, { offloads: true, reals: 2, fullNat: true, prefix: PREFIX, startNatlb: false, blobReals: [1, 2] }, async (env) => {
    const { lab, servers } = env;
    // Neighbours learned before the snapshot, as any traffic would teach them: the reals reach the pool
    // addresses, and the gateway the client (the kernel's redirect uses the gateway's neighbour table).
    for (const real of lab.reals) for (const local of lab.fullNatPool) await pingFrom(lab, real.ns, local, 1);
    t.is((await pingFrom(lab, lab.gateway.ns, lab.client.ip, 1)).received, 1, "the gateway reaches the client");
    const before = await gatewaySnapshot(lab);
    const natlb = await startBalancer(lab, { services: [fullNatService(lab)], timeouts: SHORT_CLOSING_TIMEOUTS });
    env.natlb = natlb;
    t.deepEqual((await natlb.status()).kernelFastPath, { setting: "auto", enabled: true, flows: 0, scheduling: { setting: true, active: true, services: 0 } }, "dr and fullnat services are not the kernel's to schedule");

    const capture = { filter: `tcp and (port ${REAL_PORT} or port ${SERVICE_PORT})`, maxPackets: 4000, seconds: 180, snaplen: 96 };
    const atClient = await startCapture(lab, lab.client.ns, capture);
    const atReals = await Promise.all(lab.reals.map((r) => startCapture(lab, r.ns, capture)));
    const bytes = 512 * MiB;
    const download = runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "ff-big"), conns: 1, count: 1, localPortBase: 23_000, timeoutMs: 180_000 });
    // While it runs, the kernel map holds the flow (sampled at most 900 times, 200 ms apart).
    let finished = false;
    void download.then(() => (finished = true), () => (finished = true));
    let peakKernelFlows = 0;
    for (let i = 0; i < 900 && !finished; i++) {
      peakKernelFlows = Math.max(peakKernelFlows, (await natlb.status()).kernelFastPath.flows);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const summary = await download;
    const clientPackets = await atClient.stop();
    const realPackets = (await Promise.all(atReals.map((c) => c.stop()))).flat();

    t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
    const result = summary.results[0]!;
    t.is(result.bytes, bytes);
    const served = servers.find((s) => s.real.ip === result.real)?.served().filter((e) => e.bytes === bytes).pop();
    t.truthy(served, `no server logged a 512 MiB download for ${result.real}`);
    t.is(result.sha256, served?.sha256 ?? null, "sha256 at the client differs from the server's");
    t.true(lab.fullNatPool.includes(served?.peer ?? ""), `the server's peer ${served?.peer}: not a pool address`);
    t.is(peakKernelFlows, 1, "the kernel map held the flow while it ran");

    const c0 = (await natlb.status()).counters;
    // At the real: the pool address and a local port as source, the real as destination, whether user
    // space or the kernel forwarded it (more frames arrived than user space sent).
    const toReal = realPackets.filter((p) => p.dport === REAL_PORT);
    t.true(toReal.length > c0.toReal, `${toReal.length} frames to the real captured, user space sent ${c0.toReal}`);
    for (const p of toReal) {
      t.true(lab.fullNatPool.includes(p.src), `source ${p.src}: not a pool address`);
      t.is(p.dst, result.real ?? "");
      t.true(p.sport >= 1024 && p.sport <= 32767, `local port ${p.sport}`);
    }
    t.false(realPackets.some((p) => p.src === lab.client.ip || p.dst === lab.client.ip), "the client's address never reaches the real");
    // At the client: VIP:vport as source, the client as destination, and more than user space sent.
    const fromVip = clientPackets.filter((p) => p.dst === lab.client.ip);
    t.true(fromVip.length > c0.toClient, `${fromVip.length} frames from the VIP captured, user space sent ${c0.toClient}`);
    for (const p of fromVip) {
      t.is(p.src, lab.vip);
      t.is(p.sport, SERVICE_PORT);
    }
    // TTL one less than the sender's, whichever path forwarded it.
    const sentByClient = new Set(clientPackets.filter((p) => p.src === lab.client.ip).map((p) => p.ttl));
    t.is(sentByClient.size, 1, `client TTLs ${[...sentByClient].join(",")}`);
    t.deepEqual([...new Set(toReal.map((p) => p.ttl))], [[...sentByClient][0]! - 1], "TTL of the client's frames at the real");
    const sentByReal = new Set(realPackets.filter((p) => p.sport === REAL_PORT).map((p) => p.ttl));
    t.is(sentByReal.size, 1, `real TTLs ${[...sentByReal].join(",")}`);
    t.deepEqual([...new Set(fromVip.map((p) => p.ttl))], [[...sentByReal][0]! - 1], "TTL of the real's frames at the client");
    // Checksums: IP always checked; TCP wherever the whole segment was captured (the ACKs to the real).
    const rewritten = [...toReal, ...fromVip];
    t.true(rewritten.every((p) => p.ipChecksum === "ok"), "IP checksums of the rewritten frames");
    t.true(rewritten.every((p) => p.l4Checksum !== "bad"), "TCP checksums of the rewritten frames");
    const checkedAcks = toReal.filter((p) => p.l4Checksum === "full" || p.l4Checksum === "seed").length;
    t.true(checkedAcks > c0.toReal, `${checkedAcks} TCP checksums verified at the real, user space sent ${c0.toReal} frames`);

    const idle = await waitUntil("the flow to expire", async () => {
      const s = await natlb.status();
      return s.flows.live === 0 && s.kernelFastPath.flows === 0 ? s : undefined;
    }, 20_000, 200).catch(() => undefined);
    t.truthy(idle, `flow still there 20 s after the download: ${JSON.stringify((await natlb.status()).kernelFastPath)}`);

    const c = (await natlb.status()).counters;
    t.log(JSON.stringify({ toReal: c.toReal, toClient: c.toClient, kernelForwardedPackets: c.kernelForwardedPackets, kernelForwardedBytes: c.kernelForwardedBytes, flowsOffloaded: c.flowsOffloaded }));
    t.is(c.flowsOffloaded, 1, "the connection was handed over to the kernel once");
    t.is(c.offloadRefused, 0, "offloadRefused");
    t.is(c.dropFullnatPortsExhausted + c.dropNoFlow + c.dropNoRoute + c.dropNoNeighbour + c.dropMalformed + c.dropTxError + c.dropOutOfWindow, 0, JSON.stringify(c));
    // The real's counts hold both paths' bytes (the kernel's read back): most of them are the kernel's.
    const stats = (await requestControl(natlb.socket, "GET /stats")) as BalancerStats;
    const total = stats.services[0]!.reals.reduce((sum, r) => sum + r.counts.bytesIn + r.counts.bytesOut, 0);
    t.true(total > bytes, `bytes through the real ${total}`);
    t.true(c.kernelForwardedBytes >= 0.9 * total && c.kernelForwardedBytes <= total, `kernelForwardedBytes ${c.kernelForwardedBytes} of ${total}`);

    await natlb.stop();
    env.natlb = undefined;
    t.deepEqual(await gatewaySnapshot(lab), before, "the gateway's kernel state is as before natlb ran");
  });
});
