// End to end, direct routing with the kernel fast path (kernelFastPath "auto", as root): the lab's
// direct-routing topology (natlb one-armed on the backend LAN, the client behind a router, the VIPs on
// the reals' lo). An established DR flow's client -> VIP segments are forwarded by the TC program, which
// changes nothing but the MACs and redirects them out of the interface they came in on; only the
// handshake and FIN/RST reach natlb's rings. Every lab here uses the namespace prefix "df".
import { join } from "node:path";
import test from "ava";
import { startBalancer } from "../lab/balancerProcess";
import { startCapture } from "../lab/capture";
import { blobUrl, runDownload } from "../lab/download";
import type { Lab } from "../lab/topology";
import { sleep, waitUntil } from "../lab/wait";
import { requestControl } from "../src/control";
import type { BalancerStats } from "../src/stats/trafficStats";
import { assertDirectPath, drService, warmNeighbours } from "./support/directRouting";
import { SERVICE_PORT, gatewaySnapshot, withNatLab } from "./support/lab";

const MiB = 1024 * 1024;
const PREFIX = "df";
const NATIVE_MODULE = join(__dirname, "..", "src", "native.js");
/** Short closing timeouts (seconds), so that the closed flows expire within the test. */
const SHORT_CLOSING_TIMEOUTS = { tcpTimeWait: 3, tcpFinWait: 3, tcpClose: 3 };

/** The ids of the BPF programs at tcx ingress of the gateway's `ifname`, asked through the addon. */
async function tcxProgramsOf(lab: Lab, ifname: string): Promise<number[]> {
  const script = `console.log(JSON.stringify(require(${JSON.stringify(NATIVE_MODULE)}).loadNative().tcxIngressPrograms(${JSON.stringify(ifname)})));`;
  return JSON.parse((await lab.exec(lab.gateway.ns, process.execPath, ["-e", script])).stdout) as number[];
}

test.serial("dr with the kernel fast path: a 256 MiB download arrives intact, the kernel forwards the client's segments with the MACs changed only, the flows expire and leave the kernel, kernel state restored", async (t) => {
  await withNatLab(
    t,
    { offloads: true, reals: 2, directRouting: true, prefix: PREFIX, startNatlb: false, blobReals: [1, 2], realPort: SERVICE_PORT },
    async (env) => {
      const { lab, servers } = env;
      await warmNeighbours(lab);
      t.deepEqual(await tcxProgramsOf(lab, lab.gateway.backendIf), [], "nothing at tcx ingress before natlb");
      const before = await gatewaySnapshot(lab);
      const natlb = await startBalancer(lab, { services: [drService(lab, [1, 1])], timeouts: SHORT_CLOSING_TIMEOUTS });
      env.natlb = natlb;
      t.deepEqual((await natlb.status()).kernelFastPath, { setting: "auto", enabled: true, flows: 0, scheduling: { setting: true, active: true, services: 0 } }, "dr and fullnat services are not the kernel's to schedule");
      t.is((await tcxProgramsOf(lab, lab.gateway.backendIf)).length, 1, "the TC program is at the ingress of natlb's one interface");

      const atGateway = await startCapture(lab, lab.gateway.ns, { ifname: lab.gateway.backendIf, filter: `tcp and host ${lab.vip}`, maxPackets: 4000, seconds: 120, snaplen: 96 });
      const atReal = await startCapture(lab, lab.reals[0]!.ns, { filter: `tcp and host ${lab.vip}`, maxPackets: 4000, seconds: 120, snaplen: 96 });
      const bytes = 256 * MiB;
      const download = runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "df-big"), conns: 2, count: 2, localPortBase: 22_000, timeoutMs: 180_000 });
      // While it runs: the kernel map holds the offloaded flows (one entry each: no reply direction).
      let finished = false;
      void download.then(() => (finished = true), () => (finished = true));
      let peakKernelFlows = 0;
      for (let i = 0; i < 600 && !finished; i++) {
        peakKernelFlows = Math.max(peakKernelFlows, (await natlb.status()).kernelFastPath.flows);
        await sleep(100);
      }
      const summary = await download;
      const atGatewayPackets = await atGateway.stop();
      const atRealPackets = await atReal.stop();

      t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
      for (const result of summary.results) {
        t.is(result.bytes, bytes);
        const served = servers.find((s) => s.real.ip === result.real)?.served().filter((e) => e.peerPort === result.localPort).pop();
        t.truthy(served, `no server logged the connection from port ${result.localPort}`);
        t.is(result.sha256, served?.sha256 ?? null, "sha256 at the client differs from the server's");
      }
      t.is(new Set(summary.results.map((r) => r.real)).size, 2, "the two equal reals took one download each");
      t.true(peakKernelFlows >= 1 && peakKernelFlows <= 2, `kernel fast path flows during the downloads: ${peakKernelFlows}`);

      // The frames at the real are the kernel's too (more than user space sent): MACs changed, IP alone.
      assertDirectPath(t, lab, atGatewayPackets, atRealPackets);
      const c0 = (await natlb.status()).counters;
      const toVipAtReal = atRealPackets.filter((p) => p.dst === lab.vip).length;
      t.true(toVipAtReal > c0.toRealDirect, `${toVipAtReal} frames to the VIP captured at one real, user space sent ${c0.toRealDirect} to both`);

      // The closed flows expire (3 s) and take their kernel entries with them; their last kernel counts
      // are read back on the way.
      const idle = await waitUntil("the flows to expire", async () => {
        const s = await natlb.status();
        return s.flows.live === 0 && s.kernelFastPath.flows === 0 ? s : undefined;
      }, 20_000, 200).catch(() => undefined);
      t.truthy(idle, `flows still there 20 s after the downloads: ${JSON.stringify((await natlb.status()).kernelFastPath)}`);

      const c = (await natlb.status()).counters;
      t.log(JSON.stringify({ rxFrames: c.rxFrames, toRealDirect: c.toRealDirect, kernelForwardedPackets: c.kernelForwardedPackets, kernelForwardedBytes: c.kernelForwardedBytes, flowsOffloaded: c.flowsOffloaded }));
      t.is(c.flowsOffloaded, 2, "each connection was handed over to the kernel once");
      t.is(c.offloadRefused, 0, "offloadRefused");
      t.is(c.toClient + c.toReal, 0, "natlb forwarded no reply and NAT-rewrote nothing");
      t.is(c.dropNotOnLink + c.dropNoRoute + c.dropNoNeighbour + c.dropMalformed + c.dropTxError + c.dropNoFlow, 0, JSON.stringify(c));
      t.true(c.kernelForwardedPackets > 10 * c.toRealDirect, `the kernel forwarded ${c.kernelForwardedPackets} frames, user space ${c.toRealDirect}`);
      // The reals' counts hold both paths' bytes (the kernel's read back): most of them are the kernel's.
      const stats = (await requestControl(natlb.socket, "GET /stats")) as BalancerStats;
      const reals = stats.services[0]!.reals;
      const bytesIn = reals.reduce((sum, r) => sum + r.counts.bytesIn, 0);
      t.true(c.kernelForwardedBytes >= 0.9 * bytesIn && c.kernelForwardedBytes <= bytesIn, `kernelForwardedBytes ${c.kernelForwardedBytes} of ${bytesIn} bytes in`);
      for (const real of reals) t.is(real.counts.packetsOut, 0, `${real.ip}: no packet out (replies bypass natlb)`);

      await natlb.stop();
      env.natlb = undefined;
      await waitUntil("tcx ingress empty", async () => ((await tcxProgramsOf(lab, lab.gateway.backendIf)).length === 0 ? true : undefined), 5000, 100).catch(() => undefined);
      t.deepEqual(await tcxProgramsOf(lab, lab.gateway.backendIf), [], "no TC program left after stop");
      t.deepEqual(await gatewaySnapshot(lab), before, "the gateway's kernel state is as before natlb ran");
    },
  );
});
