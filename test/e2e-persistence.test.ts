// Persistence (ipvsadm -p/-M) in the lab, real packets: a client's connections and UDP flows stick to
// one real while the same scheduler without persistence spreads them; the binding ends its timeout
// after the client's last connection; a netmask binds a whole network; a download on the kernel fast
// path keeps its client's binding past the timeout; a drained real keeps its persistent client, a
// real that goes down loses it; and a spoofed SYN flood cannot fill the flow map with bindings.
// Every download's body is checked by sha256.
import test, { type ExecutionContext } from "ava";
import { blobSha256 } from "../lab/blobContent";
import { blobUrl, runDownload, type DownloadSummary } from "../lab/download";
import { startFlood } from "../lab/flood";
import { runUdpClient } from "../lab/udpEcho";
import type { Lab } from "../lab/topology";
import { sleep, waitUntil } from "../lab/wait";
import type { BalancerProcess } from "../lab/balancerProcess";
import { paceDownloadPorts, withFloodLab } from "./support/floodChecks";
import { SERVICE_PORT, UDP_SERVICE_PORT, tcpService, udpService, withNatLab } from "./support/lab";

const KiB = 1024;
const MiB = 1024 * KiB;
/** Closed connections go quickly, so a binding's timeout starts soon after a download ends. */
const SHORT_CLOSING = { tcpFinWait: 1, tcpTimeWait: 1, tcpClose: 1 };

/** Downloads `count` blobs one connection after the other; every body intact; the reals that served them. */
async function realsServing(t: ExecutionContext, lab: Lab, vip: string, count: number, options: { seed: string; localAddress?: string; bytes?: number }): Promise<string[]> {
  const bytes = options.bytes ?? 64 * KiB;
  const summary = await runDownload(lab, {
    url: blobUrl(vip, SERVICE_PORT, bytes, options.seed), conns: 1, count, timeoutMs: 30_000,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  });
  assertIntact(t, summary, bytes, options.seed);
  return summary.results.map((r) => r.real!);
}

function assertIntact(t: ExecutionContext, summary: DownloadSummary, bytes: number, seed: string): void {
  t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
  const expected = blobSha256(seed, bytes);
  t.deepEqual(summary.results.filter((r) => r.sha256 !== expected || r.bytes !== bytes).map((r) => r.index), [], "every body intact (sha256)");
}

async function templatesOf(natlb: BalancerProcess, vip: string, port = SERVICE_PORT): Promise<number | undefined> {
  return (await natlb.status()).services.find((s) => s.vip === vip && s.port === port)?.templates;
}

test.serial("rr over 3 reals: 20 connections of one client land on one real with persistence, spread without; the binding is a template, not a connection", async (t) => {
  const config = (lab: Lab) => ({
    services: [
      tcpService(lab, [1, 1, 1], { scheduler: "rr", persistence: { timeoutS: 300 } }),
      { ...tcpService(lab, [1, 1, 1], { scheduler: "rr" }), vip: lab.vip2 },
    ],
    timeouts: SHORT_CLOSING,
  });
  await withNatLab(t, { offloads: true, config }, async ({ lab, natlb }) => {
    const persistent = await realsServing(t, lab, lab.vip, 20, { seed: "persistent" });
    t.is(new Set(persistent).size, 1, `persistent: ${persistent.join(" ")}`);
    const spread = await realsServing(t, lab, lab.vip2, 20, { seed: "spread" });
    t.is(new Set(spread).size, 3, `without persistence: ${spread.join(" ")}`);

    const status = await natlb!.status();
    t.is(status.services[0]!.templates, 1);
    t.is(status.services[1]!.templates, undefined, "a service without persistence has no template count");
    t.deepEqual(status.services[0]!.reals.map((r) => r.activeConns), [0, 0, 0], "the template is no active connection");
    const listed = await natlb!.cli(["conns", "--service", `${lab.vip}:${SERVICE_PORT}`, "--templates", "--json"]);
    t.is(listed.code, 0, listed.stderr);
    const templates = (JSON.parse(listed.stdout) as { connections: { client: { ip: string; port: number }; real: { ip: string }; template?: unknown }[] })
      .connections.filter((c) => c.template !== undefined);
    t.is(templates.length, 1);
    t.deepEqual(templates[0]!.client, { ip: lab.client.ip, port: 0 });
    t.is(templates[0]!.real.ip, persistent[0]);
    t.deepEqual((await natlb!.connections()).filter((c) => c.client.port === 0), [], "the default listing shows no template");
  });
});

test.serial("with timeoutS 2 the client moves once its binding has timed out after its last connection", async (t) => {
  const config = (lab: Lab) => ({ services: [tcpService(lab, [1, 1, 1], { scheduler: "rr", persistence: { timeoutS: 2 } })], timeouts: SHORT_CLOSING });
  await withNatLab(t, { offloads: true, config }, async ({ lab, natlb }) => {
    const seen: string[] = [];
    let moved = false;
    for (let attempt = 0; attempt < 5 && !moved; attempt++) {
      const reals = await realsServing(t, lab, lab.vip, 3, { seed: `move-${attempt}` });
      t.is(new Set(reals).size, 1, `within one binding: ${reals.join(" ")}`);
      moved = seen.length > 0 && reals[0] !== seen.at(-1);
      seen.push(reals[0]!);
      // Its connections close (1 s TIME_WAIT here), then the 2 s timeout runs: the template goes.
      const gone = await waitUntil("the template to expire", async () => ((await templatesOf(natlb!, lab.vip)) === 0 ? true : undefined), 15_000, 200).catch(() => false);
      t.true(gone, "the template outlived its connections by far more than its timeout");
    }
    t.true(moved, `the client never moved: ${seen.join(" ")}`);
  });
});

test.serial("netmask 255.255.255.0: two client addresses of one /24 share a real; a UDP service binds its client's flows too", async (t) => {
  const second = "198.18.0.3";
  const config = (lab: Lab) => ({
    services: [
      tcpService(lab, [1, 1, 1], { scheduler: "rr", persistence: { timeoutS: 300, netmask: "255.255.255.0" } }),
      udpService(lab, { persistence: { timeoutS: 300 } }),
      { ...udpService(lab), vip: lab.vip2 },
    ],
    timeouts: SHORT_CLOSING,
  });
  await withNatLab(t, { offloads: true, config, udpEchoes: true }, async ({ lab, natlb }) => {
    await lab.exec(lab.client.ns, "ip", ["addr", "add", `${second}/24`, "dev", lab.client.ifname]);
    const reals: string[] = [];
    for (let i = 0; i < 6; i++) {
      reals.push(...(await realsServing(t, lab, lab.vip, 1, { seed: `net-${i}`, localAddress: i % 2 === 0 ? lab.client.ip : second })));
    }
    t.is(new Set(reals).size, 1, `both addresses: ${reals.join(" ")}`);
    t.is(await templatesOf(natlb!, lab.vip), 1, "one template for the /24");
    const listed = await natlb!.cli(["conns", "--templates", "--service", `${lab.vip}:${SERVICE_PORT}`, "--json"]);
    const template = (JSON.parse(listed.stdout) as { connections: { client: { ip: string }; template?: unknown }[] }).connections.find((c) => c.template);
    t.is(template?.client.ip, "198.18.0.0");

    // UDP: 12 sockets (12 flows) of one client, each asking twice.
    const persistent = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 24, sockets: 12, timeoutMs: 2000, totalTimeoutMs: 30_000 });
    t.is(persistent.received, 24, `lost ${persistent.lost.join(",")}`);
    t.is(new Set(persistent.replies.map((r) => r.real)).size, 1, "every UDP flow of the client on one real");
    t.true(persistent.replies.every((r) => r.from === `${lab.vip}:${UDP_SERVICE_PORT}`));
    t.is(await templatesOf(natlb!, lab.vip, UDP_SERVICE_PORT), 1);
    const spread = await runUdpClient(lab, { host: lab.vip2, port: UDP_SERVICE_PORT, count: 24, sockets: 12, timeoutMs: 2000, totalTimeoutMs: 30_000 });
    t.is(spread.received, 24);
    t.is(new Set(spread.replies.map((r) => r.real)).size, 3, "without persistence rr spreads the flows");
  });
});

test.serial("a download on the kernel fast path keeps its client's binding past timeoutS; the next connection joins it", async (t) => {
  const bytes = 12 * MiB;
  const localPortBase = 23000;
  const config = (lab: Lab) => ({
    services: [tcpService(lab, [1, 1, 1], { scheduler: "rr", persistence: { timeoutS: 2 } })],
    kernelFastPath: true,
    timeouts: SHORT_CLOSING,
  });
  await withNatLab(t, { offloads: true, config }, async ({ lab, natlb }) => {
    // 12 MiB at 16 Mbit/s: about 6 s, three times the binding's timeout.
    await paceDownloadPorts(lab, localPortBase, 1, 16);
    const started = performance.now();
    const long = runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "long"), conns: 1, count: 1, localPortBase, timeoutMs: 40_000 });
    long.catch(() => undefined);
    await sleep(4500);
    const offloaded = (await natlb!.status()).counters.flowsOffloaded;
    t.is(await templatesOf(natlb!, lab.vip), 1, "the template lives while its offloaded flow does");
    const joined = await realsServing(t, lab, lab.vip, 2, { seed: "joined" });
    const summary = await long;
    t.true(performance.now() - started > 4500);
    assertIntact(t, summary, bytes, "long");
    t.true(summary.results[0]!.ms > 3000, `the download took ${summary.results[0]!.ms} ms: it must outlast the timeout for this test to mean anything`);
    t.true(offloaded >= 1, "the long download was on the kernel fast path");
    t.deepEqual(joined, [summary.results[0]!.real, summary.results[0]!.real], "later connections went to the download's real");
  });
});

test.serial("a drained real (weight 0) keeps its persistent client; a real that goes down loses it", async (t) => {
  const config = (lab: Lab) => ({
    services: [tcpService(lab, [1, 1, 1], {
      scheduler: "rr", persistence: { timeoutS: 300 }, healthCheck: { type: "tcp", intervalMs: 200, timeoutMs: 200, rise: 1, fall: 1 },
    })],
    timeouts: SHORT_CLOSING,
  });
  await withNatLab(t, { offloads: true, config }, async ({ lab, servers, natlb }) => {
    const [first] = await realsServing(t, lab, lab.vip, 2, { seed: "bound" });
    const index = lab.reals.findIndex((r) => r.ip === first);
    t.true(index >= 0, `served by ${first}`);
    const drain = await natlb!.cli(["real", "weight", `${lab.vip}:${SERVICE_PORT}`, first!, "0"]);
    t.is(drain.code, 0, drain.stderr);
    t.deepEqual(await realsServing(t, lab, lab.vip, 3, { seed: "drained" }), [first, first, first], "drained, it keeps its persistent client");
    const undrain = await natlb!.cli(["real", "weight", `${lab.vip}:${SERVICE_PORT}`, first!, "1"]);
    t.is(undrain.code, 0, undrain.stderr);

    await servers[index]!.stop();
    const down = await waitUntil("the real to be marked down", async () => ((await natlb!.status()).services[0]!.reals[index]!.up ? undefined : true), 10_000, 100).catch(() => false);
    t.true(down);
    const moved = await realsServing(t, lab, lab.vip, 3, { seed: "moved" });
    t.false(moved.includes(first!), `after ${first} went down: ${moved.join(" ")}`);
    t.is(new Set(moved).size, 1, "and it sticks to its new real");
  });
});

test.serial("a spoofed SYN flood at a persistent service: bindings stay within the half-open share, a real client gets in, the flood's bindings are reclaimed", async (t) => {
  const capacity = 4096;
  const config = (lab: Lab) => ({
    services: [tcpService(lab, [1, 1, 1], { scheduler: "rr", persistence: { timeoutS: 300 } })],
    flowCapacity: capacity,
    floodProtection: { halfOpenShare: 0.5, pressureAt: 0.25, pressureTimeout: 2 },
  });
  await withFloodLab(t, { config }, async ({ lab, natlb }) => {
    // 40 000 SYNs from random sources of 198.19.0.0/16: each would make a flow and a binding.
    const flood = await startFlood(lab, { kind: "syn", target: { ip: lab.vip, port: SERVICE_PORT }, rate: 5000, count: 40_000, seconds: 20, seed: 7 });
    let peakUnassured = 0;
    let download: DownloadSummary | undefined;
    try {
      await sleep(2000);
      download = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 4 * MiB, "flooded"), conns: 2, count: 4, timeoutMs: 30_000 });
      for (let i = 0; i < 3; i++) {
        const flows = (await natlb.status()).flows;
        peakUnassured = Math.max(peakUnassured, flows.unassured.halfOpenTcp);
        await sleep(500);
      }
    } finally {
      await flood.done.catch(() => undefined);
      await flood.stop().catch(() => undefined);
    }
    const during = await natlb.status();
    t.log(`flood: unassured half-open peak ${peakUnassured}, templates ${during.services[0]!.templates}, evicted ${JSON.stringify(during.flows.evicted)}`);
    assertIntact(t, download!, 4 * MiB, "flooded");
    t.true(peakUnassured <= capacity / 2 + 64, `half-open flows and bindings within their share: ${peakUnassured}`);
    t.true(during.flows.evicted.halfOpenTcpShare + during.flows.evicted.halfOpenTcpRoom > 0, "the flood's entries were evicted");
    t.true(during.flows.fullDrops === 0, `no new flow refused for room: ${during.flows.fullDrops}`);
    // After the flood: its bindings, unassured, expire (the short timeout while the map is under pressure).
    const reclaimed = await waitUntil("the flood's templates to be reclaimed", async () => {
      const templates = (await templatesOf(natlb, lab.vip)) ?? Infinity;
      return templates <= capacity * 0.25 ? templates : undefined;
    }, 20_000, 500).catch(() => undefined);
    t.not(reclaimed, undefined, `templates left: ${await templatesOf(natlb, lab.vip)}`);
    // The real client's binding is assured: it is still there, and its next connections go where it said.
    const after = await realsServing(t, lab, lab.vip, 3, { seed: "after" });
    t.is(new Set([...after, ...download!.results.map((r) => r.real!)]).size, 1, `the real client stayed on one real: ${after.join(" ")}`);
  });
});
