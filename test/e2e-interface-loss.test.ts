// A failing interface, end to end with real packets and the kernel fast path (the default): a link that
// goes down and comes up again, and one that is deleted and created again (a new ifindex), is reported
// (log line and `link` in status) while natlb's data plane threads go on, and taken up again when it is
// back: the data plane restarts on it (rings, TC program, the ownership table's hooks) and downloads
// through the VIP arrive intact. Labs use the prefix "il".
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import type { BalancerStatus } from "../src/balancer";
import { startBalancer, type BalancerProcess } from "../lab/balancerProcess";
import type { BlobServerHandle } from "../lab/blobServer";
import { blobUrl, runDownload } from "../lab/download";
import { namespaceOwnerPid } from "../lab/staleLabs";
import { listLabNamespaces, type Lab } from "../lab/topology";
import { sleep, waitUntil } from "../lab/wait";
import { REAL_PORT, SERVICE_PORT, tcpService, withNatLab } from "./support/lab";

/** Connections the kernel fast path carried: handed over after the handshake, or scheduled by it (the default). */
const kernelFlows = (status: { counters: { flowsOffloaded: number; kernelScheduledFlows: number } }) =>
  status.counters.flowsOffloaded + status.counters.kernelScheduledFlows;

const MiB = 1024 * 1024;
const PREFIX = "il";
const NATIVE_MODULE = join(__dirname, "..", "src", "native.js");
/** The periodic check runs every 5 s: a change is seen within one period, plus the time to act on it. */
const DETECTION_MS = 15_000;

async function tcxProgramsOf(lab: Lab, ifname: string): Promise<number[]> {
  const script = `console.log(JSON.stringify(require(${JSON.stringify(NATIVE_MODULE)}).loadNative().tcxIngressPrograms(${JSON.stringify(ifname)})));`;
  return JSON.parse((await lab.exec(lab.gateway.ns, process.execPath, ["-e", script])).stdout) as number[];
}

async function ifindexOf(lab: Lab, ns: string, ifname: string): Promise<number> {
  return (JSON.parse((await lab.exec(ns, "ip", ["-j", "link", "show", "dev", ifname])).stdout) as Array<{ ifindex: number }>)[0]!.ifindex;
}

/** The link as the status reports it ("up" when it says nothing). */
function linkOf(status: BalancerStatus, name: string): string | undefined {
  const found = status.interfaces.find((i) => i.name === name);
  return found === undefined ? undefined : (found.link ?? "up");
}

async function waitForLink(natlb: BalancerProcess, name: string, state: string): Promise<BalancerStatus> {
  return waitUntil(`${name} reported ${state}`, async () => {
    const status = await natlb.status();
    return linkOf(status, name) === state ? status : undefined;
  }, DETECTION_MS, 200);
}

/** CPU time (ms) natlb used over `ms`: a worker spinning on a ring's error would use all of it. */
async function cpuMsOver(lab: Lab, pid: number, ms: number): Promise<number> {
  const ticks = async () => {
    const fields = (await lab.exec(lab.gateway.ns, "cat", [`/proc/${pid}/stat`])).stdout.split(") ")[1]!.split(" ");
    return Number(fields[11]) + Number(fields[12]);  // utime + stime, in clock ticks (100 a second)
  };
  const before = await ticks();
  await sleep(ms);
  return ((await ticks()) - before) * 10;
}

/** 3 downloads through the VIP, each with the body its real sent (sha256). */
async function assertDownloadsIntact(t: ExecutionContext, lab: Lab, servers: BlobServerHandle[], seed: string, localPortBase: number): Promise<void> {
  const bytes = 8 * MiB;
  const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, seed), conns: 3, count: 3, localPortBase, timeoutMs: 30_000 });
  t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
  await waitUntil("the servers' log lines", () =>
    summary.results.every((r) => servers.some((s) => s.served().some((e) => e.peerPort === r.localPort))), 3000, 20).catch(() => undefined);
  for (const result of summary.results) {
    t.is(result.bytes, bytes);
    const served = servers.find((s) => s.real.ip === result.real)?.served().filter((e) => e.peerPort === result.localPort).pop();
    t.is(result.sha256, served?.sha256 ?? null, `sha256 at the client differs from the server's (port ${result.localPort})`);
  }
}

async function warmNeighbours(lab: Lab, portBase: number): Promise<void> {
  for (const [i, real] of lab.reals.entries()) {
    await runDownload(lab, { url: blobUrl(real.ip, REAL_PORT, 1024, "warm"), localPortBase: portBase + i });
  }
}

test.serial("the backend link goes down and up: reported down, natlb stays idle (no spinning thread), then takes it up again and forwards", async (t) => {
  await withNatLab(t, { offloads: true, startNatlb: false, prefix: PREFIX }, async (env) => {
    const { lab, servers } = env;
    await warmNeighbours(lab, 50_000);
    env.natlb = await startBalancer(lab, { services: [tcpService(lab, [1, 1, 1])] });
    const natlb = env.natlb;
    await assertDownloadsIntact(t, lab, servers, "il-before", 50_100);
    const before = await natlb.status();
    t.true(before.kernelFastPath.enabled);
    t.is(linkOf(before, "eth1"), "up");

    await lab.exec(lab.gateway.ns, "ip", ["link", "set", "dev", "eth1", "down"]);
    try {
      const down = await waitForLink(natlb, "eth1", "down");
      t.is(linkOf(down, "eth0"), "up");
      t.regex(natlb.output(), /interface eth1 is down/);
      t.regex((await natlb.cli(["status"])).stdout, /eth1\(backend, af_packet, link DOWN: nothing forwarded through it\)/);
      const cpuMs = await cpuMsOver(lab, natlb.child.pid!, 2000);
      t.log({ cpuMsIn2sWhileDown: cpuMs, ringErrors: down.counters.ringErrors });
      t.true(cpuMs < 600, `natlb used ${cpuMs} ms of CPU in 2 s with eth1 down`);
      t.true(down.counters.ringErrors > 0, `the rings reported their interface's loss: ${down.counters.ringErrors}`);
    } finally {
      await lab.exec(lab.gateway.ns, "ip", ["link", "set", "dev", "eth1", "up"]);
    }
    const up = await waitForLink(natlb, "eth1", "up");
    await waitUntil("the restart to be logged", () => /data plane restarted/.test(natlb.output()), 5000, 100);
    t.regex(natlb.output(), /interface eth1 is up again/);
    t.is((await tcxProgramsOf(lab, "eth1")).length, 1, "the kernel fast path is attached to eth1");
    t.true(up.kernelFastPath.enabled);

    await assertDownloadsIntact(t, lab, servers, "il-after", 50_200);
    const after = await natlb.status();
    t.true(kernelFlows(after) >= kernelFlows(before) + 3, "the new connections took the kernel fast path");
    t.true(after.counters.toReal >= before.counters.toReal, "counters went on from where they were");
    t.is(natlb.child.exitCode, null);
  });
});

test.serial("the client link is deleted and created again: reported gone, then taken up on the new interface (new ifindex), and forwards", async (t) => {
  await withNatLab(t, { offloads: true, startNatlb: false, prefix: PREFIX }, async (env) => {
    const { lab, servers } = env;
    await warmNeighbours(lab, 51_000);
    env.natlb = await startBalancer(lab, { services: [tcpService(lab, [1, 1, 1])] });
    const natlb = env.natlb;
    await assertDownloadsIntact(t, lab, servers, "il-before", 51_100);
    const before = await natlb.status();
    const oldIndex = await ifindexOf(lab, lab.gateway.ns, "eth0");

    // Deleting the gateway's end deletes the client's too (a veth pair).
    await lab.exec(lab.gateway.ns, "ip", ["link", "del", "dev", "eth0"]);
    const gone = await waitForLink(natlb, "eth0", "gone");
    t.is(linkOf(gone, "eth1"), "up");
    t.regex(natlb.output(), /interface eth0 is gone/);
    t.regex((await natlb.cli(["status"])).stdout, /eth0\(client, af_packet, link GONE: nothing forwarded through it\)/);
    t.is(natlb.child.exitCode, null, "natlb still runs");

    // The pair as the lab made it, brought up before the gateway's end has its address (natlb must wait
    // for it), then the addresses and the client's default route.
    await lab.exec(lab.client.ns, "ip", ["link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", lab.gateway.ns]);
    await lab.exec(lab.gateway.ns, "ip", ["link", "set", "dev", "eth0", "up"]);
    await lab.exec(lab.client.ns, "ip", ["link", "set", "dev", "eth0", "up"]);
    await waitUntil("natlb to wait for the address", () => /the data plane waits for its interfaces/.test(natlb.output()), DETECTION_MS, 200);
    t.is(linkOf(await natlb.status(), "eth0"), "replaced", "not taken up without its address");
    await lab.exec(lab.client.ns, "ip", ["addr", "add", `${lab.client.ip}/24`, "dev", "eth0"]);
    await lab.exec(lab.gateway.ns, "ip", ["addr", "add", `${lab.gateway.clientIp}/24`, "dev", "eth0"]);
    await lab.exec(lab.client.ns, "ip", ["route", "add", "default", "via", lab.gateway.clientIp, "dev", "eth0"]);
    const newIndex = await ifindexOf(lab, lab.gateway.ns, "eth0");
    t.not(newIndex, oldIndex, "a new interface");

    await waitForLink(natlb, "eth0", "up");
    await waitUntil("the restart to be logged", () => /data plane restarted/.test(natlb.output()), 5000, 100);
    t.regex(natlb.output(), new RegExp(`eth0\\(client, ifindex ${newIndex}\\)`));
    t.is((await tcxProgramsOf(lab, "eth0")).length, 1, "the kernel fast path is attached to the new eth0");
    const nft = (await lab.exec(lab.gateway.ns, "/usr/sbin/nft", ["list", "table", "netdev", "natlb"])).stdout;
    t.regex(nft, /chain client_ingress \{\s*type filter hook ingress (device "eth0"|devices = \{ "?eth0"? \})/, nft);

    await assertDownloadsIntact(t, lab, servers, "il-after", 51_200);
    const after = await natlb.status();
    t.true(kernelFlows(after) >= kernelFlows(before) + 3, "the new connections took the kernel fast path");
    t.is(natlb.child.exitCode, null);
  });
});

test.serial("every il lab namespace made by this file is gone", async (t) => {
  const mine: string[] = [];
  for (const ns of await listLabNamespaces(PREFIX)) if ((await namespaceOwnerPid(ns)) === process.pid) mine.push(ns);
  t.deepEqual(mine, []);
});
