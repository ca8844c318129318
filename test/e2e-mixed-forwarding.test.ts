// End to end, natlb two-armed in the direct-routing topology (lab option balancerArm: the router sends
// the VIPs' traffic over a link of its own to natlb's eth0; natlb's eth1 is on the reals' LAN, whose
// default route is the router). Two cases of issue #11: "dr" reals on natlb's backend interface while
// the clients come on its client interface, and one service whose reals each have their own forwarding
// (nat, dr and fullnat; the dr one added with `natlb real add --forwarding dr`), each real checked by
// captures and counters to get its own mode.
import test, { type ExecutionContext } from "ava";
import { startCapture, type CapturedPacket } from "../lab/capture";
import { blobUrl, runDownload, type DownloadSummary } from "../lab/download";
import { pingFrom } from "../lab/icmpProbe";
import { CLIENT_SUBNET } from "../lab/labAddresses";
import type { Lab } from "../lab/topology";
import { requestControl } from "../src/control";
import type { BalancerStats } from "../src/stats/trafficStats";
import { startBalancer } from "../lab/balancerProcess";
import type { BlobServerHandle } from "../lab/blobServer";
import { assertDirectPath, drService, warmNeighbours } from "./support/directRouting";
import { SERVICE_PORT, gatewaySnapshot, withNatLab } from "./support/lab";

const MiB = 1024 * 1024;
const PREFIX = "mf";
/** natlb's full-NAT ports on its LAN address, apart from the kernel's own ephemeral ones there. */
const POOL_PORTS = { first: 16384, last: 32767 };

/** Every download arrived whole, with the content its server sent. */
function assertDownloads(t: ExecutionContext, summary: DownloadSummary, servers: BlobServerHandle[], bytes: number): void {
  t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
  for (const result of summary.results) {
    t.is(result.bytes, bytes);
    const served = servers.find((s) => s.real.ip === result.real)?.served().filter((e) => e.bytes === bytes) ?? [];
    t.true(served.length > 0, `no server logged a download of ${bytes} bytes for ${result.real}`);
    t.true(served.some((e) => e.sha256 === result.sha256), `sha256 at the client differs from ${result.real}'s`);
  }
}

/** The gateway's neighbours that the traffic makes it learn, learned before a kernel-state snapshot. */
async function warmArm(lab: Lab): Promise<void> {
  await warmNeighbours(lab);
  const echo = await pingFrom(lab, lab.router!.ns, lab.gateway.clientIp, 1);
  if (echo.received !== 1) throw new Error(`the router cannot reach the gateway's arm: ${JSON.stringify(echo)}`);
}

test.serial("two-armed dr: clients on natlb's client interface, dr reals on its backend one; a 64 MiB download intact, no reply crosses natlb, kernel state restored", async (t) => {
  await withNatLab(
    t,
    { offloads: true, reals: 2, directRouting: true, balancerArm: true, prefix: PREFIX, startNatlb: false, blobReals: [1, 2], realPort: SERVICE_PORT },
    async (env) => {
      const { lab, servers } = env;
      t.deepEqual([lab.gateway.clientIf, lab.gateway.backendIf], ["eth0", "eth1"]);
      await warmArm(lab);
      const before = await gatewaySnapshot(lab);
      const natlb = await startBalancer(lab, { services: [drService(lab, [1, 1])], interfaces: { client: ["eth0"], backend: ["eth1"] } });
      env.natlb = natlb;
      const status0 = await natlb.status();
      t.is(status0.services[0]!.forwarding, "dr");

      const vipTcp = `tcp and host ${lab.vip}`;
      const atClientSide = await startCapture(lab, lab.gateway.ns, { ifname: "eth0", filter: vipTcp, maxPackets: 4000, seconds: 60, snaplen: 96 });
      const atBackend = await startCapture(lab, lab.gateway.ns, { ifname: "eth1", filter: vipTcp, maxPackets: 4000, seconds: 60, snaplen: 96 });
      const atReal = await startCapture(lab, lab.reals[0]!.ns, { filter: vipTcp, maxPackets: 4000, seconds: 60, snaplen: 96 });
      const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 64 * MiB, "mf-dr"), conns: 2, count: 2, localPortBase: 21_000, timeoutMs: 90_000 });
      const clientSide = await atClientSide.stop();
      const backend = await atBackend.stop();
      const real = await atReal.stop();

      assertDownloads(t, summary, servers, 64 * MiB);
      t.is(new Set(summary.results.map((r) => r.real)).size, 2, "the two equal reals took one download each");
      assertDirectPath(t, lab, backend, real);
      t.true(clientSide.filter((p) => p.dst === lab.vip).length > 20, "the client's frames came in on eth0");
      t.is(clientSide.filter((p) => p.src === lab.vip).length, 0, "no reply on natlb's client interface either");
      t.is(backend.filter((p) => p.srcMac === lab.router!.lanMac && p.dst === lab.vip).length, 0, "the router sent nothing for the VIP to the LAN arm");

      const c = (await natlb.status()).counters;
      t.true(c.toRealDirect > 0, JSON.stringify(c));
      t.is(c.toClient, 0, "natlb forwarded no reply");
      t.is(c.toReal, 0, "no frame was NAT-rewritten");
      t.is(c.dropNotOnLink + c.dropNoRoute + c.dropNoNeighbour + c.dropMalformed + c.dropTxError, 0, JSON.stringify(c));

      await natlb.stop();
      env.natlb = undefined;
      t.deepEqual(await gatewaySnapshot(lab), before, "the gateway's kernel state is as before natlb ran");
    },
  );
});

/** Frames of the client's downloads as one real saw them (TCP to or from the service port). */
function toReal(packets: CapturedPacket[]): CapturedPacket[] {
  return packets.filter((p) => p.dport === SERVICE_PORT);
}

test.serial("one service, three reals with their own forwarding (nat, dr, fullnat): each real gets its mode, seen in captures and per-real counters", async (t) => {
  await withNatLab(
    t,
    { offloads: true, reals: 3, directRouting: true, balancerArm: true, prefix: PREFIX, startNatlb: false, blobReals: [1, 2, 3], realPort: SERVICE_PORT },
    async (env) => {
      const { lab, servers } = env;
      const [nat, dr, fullnat] = lab.reals as [Lab["reals"][number], Lab["reals"][number], Lab["reals"][number]];
      const lanIp = lab.gateway.backendIp;
      // The nat real routes the clients back via natlb (its default route is the router); the others need no route.
      await lab.exec(nat.ns, "ip", ["route", "add", CLIENT_SUBNET, "via", lanIp, "dev", nat.ifname]);
      await warmArm(lab);
      const service = {
        vip: lab.vip,
        port: SERVICE_PORT,
        scheduler: "wrr",
        fullnat: { localAddresses: [lanIp], localPorts: POOL_PORTS },
        reals: [{ ip: nat.ip }, { ip: fullnat.ip, forwarding: "fullnat" }],
      };
      const natlb = await startBalancer(lab, { services: [service] });
      env.natlb = natlb;
      // The dr real comes over the control socket, with its own mode.
      const added = await natlb.cli(["real", "add", `${lab.vip}:${SERVICE_PORT}`, dr.ip, "--forwarding", "dr"]);
      t.is(added.code, 0, added.stderr);
      t.regex(added.stdout, /forwarding dr/);
      const status0 = await natlb.status();
      t.is(status0.services[0]!.forwarding, undefined, "the service's own mode is nat");
      t.deepEqual(status0.services[0]!.reals.map((r) => [r.ip, r.forwarding]), [[nat.ip, undefined], [fullnat.ip, "fullnat"], [dr.ip, "dr"]]);
      const text = (await natlb.cli(["status"])).stdout;
      t.regex(text, new RegExp(`${dr.ip.replace(/\./g, "\\.")}:80 .*\\(forwarding dr\\)`));
      t.regex(text, /198\.18\.0\.100:80 +wrr \(fullnat reals from 198\.18\.1\.2 ports 16384-32767\)$/m, "a nat service's pool serves its fullnat reals");

      const filter = `tcp port ${SERVICE_PORT}`;
      const captures = await Promise.all(lab.reals.map((r) => startCapture(lab, r.ns, { filter, maxPackets: 4000, seconds: 60, snaplen: 96 })));
      const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 32 * MiB, "mf-mixed"), conns: 3, count: 6, localPortBase: 22_000, timeoutMs: 90_000 });
      const [atNat, atDr, atFullnat] = (await Promise.all(captures.map((c) => c.stop()))).map(toReal) as [CapturedPacket[], CapturedPacket[], CapturedPacket[]];

      assertDownloads(t, summary, servers, 32 * MiB);
      for (const r of lab.reals) t.is(summary.results.filter((x) => x.real === r.ip).length, 2, `${r.ip}: two of the six downloads (wrr, equal weights)`);

      // nat: the destination rewritten to the real, the client's address kept.
      t.true(atNat.length > 20, `only ${atNat.length} frames at the nat real`);
      for (const p of atNat) t.is(`${p.src}>${p.dst}`, `${lab.client.ip}>${nat.ip}`, "a frame at the nat real");
      // dr: the frame as the client sent it, but for natlb's MAC as the source.
      t.true(atDr.length > 20, `only ${atDr.length} frames at the dr real`);
      for (const p of atDr) {
        t.is(`${p.src}>${p.dst}`, `${lab.client.ip}>${lab.vip}`, "a frame at the dr real");
        t.is(p.srcMac, lab.gateway.backendMac);
      }
      // fullnat: natlb's pool address and a pool port as the client.
      t.true(atFullnat.length > 20, `only ${atFullnat.length} frames at the fullnat real`);
      for (const p of atFullnat) {
        t.is(`${p.src}>${p.dst}`, `${lanIp}>${fullnat.ip}`, "a frame at the fullnat real");
        t.true(p.sport >= POOL_PORTS.first && p.sport <= POOL_PORTS.last, `pool port ${p.sport}`);
      }

      const c = (await natlb.status()).counters;
      t.true(c.toReal > 0 && c.toRealDirect > 0 && c.toClient > 0, JSON.stringify(c));
      const stats = (await requestControl(natlb.socket, "GET /stats")) as BalancerStats;
      const byIp = new Map(stats.services[0]!.reals.map((r) => [r.ip, r.counts]));
      for (const r of lab.reals) t.true((byIp.get(r.ip)?.packetsIn ?? 0) > 0, `${r.ip}: packets in`);
      t.true((byIp.get(nat.ip)?.packetsOut ?? 0) > 0, "the nat real's replies came through natlb");
      t.true((byIp.get(fullnat.ip)?.packetsOut ?? 0) > 0, "the fullnat real's replies came through natlb");
      t.is(byIp.get(dr.ip)?.packetsOut, 0, "the dr real's replies bypassed natlb");
    },
  );
});
