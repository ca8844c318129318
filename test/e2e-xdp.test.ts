// End to end, real packets, receivePath "af_xdp": natlb's XDP program steers the frames it owns to
// AF_XDP sockets on the gateway's interfaces (transmit stays AF_PACKET). Downloads arrive intact with
// offloads on and off, packets on the wire are rewritten with valid checksums (or valid seeds), the
// per-interface map mixes the two paths, UDP/ICMP/direct connections keep working, and the XDP
// program is gone from the interfaces when natlb stops, is killed, or fails to start.
// Every lab here uses the namespace prefix "xd".
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { NATLB_CLI, startBalancer } from "../lab/balancerProcess";
import type { BlobServerHandle } from "../lab/blobServer";
import { startCapture } from "../lab/capture";
import { blobUrl, runDownload, type DownloadSummary } from "../lab/download";
import { pingFrom, sendFragmentationNeeded } from "../lab/icmpProbe";
import { listLabNamespaces, type Lab } from "../lab/topology";
import { namespaceOwnerPid } from "../lab/staleLabs";
import { runUdpClient } from "../lab/udpEcho";
import { waitUntil } from "../lab/wait";
import {
  REAL_PORT,
  SERVICE_PORT,
  UDP_REAL_PORT,
  UDP_SERVICE_PORT,
  gatewaySnapshot,
  startUdpEchoes,
  withNatLab,
  type NatLab,
  tcpService,
  udpService,
} from "./support/lab";
import { assertDirectDownloads, assertRewrittenCapture, captureDownloadThroughVip } from "./support/trafficChecks";

/**
 * A flow's replies are steered once natlb has claimed them in the XDP program's map, which it does on
 * the first reply the kernel hands over through the rings: at most this many frames of `flows` flows
 * arrive that way.
 */
function firstRepliesThroughRings(flows: number): number {
  return 2 * flows;
}

const MiB = 1024 * 1024;
const PREFIX = "xd";
const GATEWAY_IFS = ["eth0", "eth1"] as const;

type XdLabOptions = Omit<Parameters<typeof withNatLab>[1], "prefix">;

/**
 * withNatLab with the "xd" namespace prefix, and natlb on receivePath "af_xdp" unless `config` says
 * otherwise. These tests are about the AF_XDP receive path in user space: xdpConfig turns the kernel
 * fast path off, which would otherwise take the established flows' frames before XDP steers them.
 */
function withXdLab(t: ExecutionContext, options: XdLabOptions, body: (env: NatLab) => Promise<void>): Promise<void> {
  return withNatLab(t, { config: xdpConfig, ...options, prefix: PREFIX }, body);
}

function xdpConfig(lab: Lab, receivePath: unknown = "af_xdp"): unknown {
  return { services: [tcpService(lab, lab.reals.map(() => 1))], receivePath, kernelFastPath: false };
}

interface IpLinkDetails {
  ifname: string;
  xdp?: { mode?: number; prog?: { name?: string } };
}

/** The XDP attachment of an interface of the gateway as `ip -d link` shows it; undefined when none. */
async function xdpOf(lab: Lab, ifname: string, ns = lab.gateway.ns): Promise<IpLinkDetails["xdp"]> {
  const result = await lab.exec(ns, "ip", ["-j", "-d", "link", "show", "dev", ifname]);
  return (JSON.parse(result.stdout) as IpLinkDetails[])[0]?.xdp;
}

async function xdpAttached(lab: Lab): Promise<Record<string, boolean>> {
  const out: Record<string, boolean> = {};
  for (const name of [...GATEWAY_IFS, "lo"]) out[name] = (await xdpOf(lab, name)) !== undefined;
  return out;
}

/** Waits (up to 5 s: a link's release may be deferred by the kernel) until no gateway interface has XDP. */
async function xdpGone(lab: Lab): Promise<boolean> {
  try {
    await waitUntil("XDP detached", async () => Object.values(await xdpAttached(lab)).every((on) => !on), 5000, 50);
    return true;
  } catch {
    return false;
  }
}

/** The offload settings of the gateway's veth peers (XDP on a veth changes its peer's features). */
async function peerOffloads(lab: Lab): Promise<string> {
  const client = await lab.exec(lab.client.ns, "ethtool", ["-k", "eth0"]);
  const bridgePort = await lab.exec(lab.switch.ns, "ethtool", ["-k", "p-gw"]);
  return client.stdout + bridgePort.stdout;
}

/** Lets the gateway's kernel learn its neighbours, as any traffic would (see e2e-lifecycle). */
async function warmNeighbours(lab: Lab, portBase: number): Promise<void> {
  for (const [i, real] of lab.reals.entries()) {
    await runDownload(lab, { url: blobUrl(real.ip, REAL_PORT, 1024, "warm"), localPortBase: portBase + i });
  }
}

/** Every download of `summary` completed with the body the server sent. */
function assertIntact(t: ExecutionContext, summary: DownloadSummary, servers: BlobServerHandle[], lab: Lab, bytes: number): void {
  t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
  const served = servers.flatMap((s) => s.served());
  for (const result of summary.results) {
    t.is(result.bytes, bytes);
    const server = served.find((e) => e.peerPort === result.localPort && e.peer === lab.client.ip);
    t.truthy(server, `no server logged the connection from port ${result.localPort}`);
    t.is(result.sha256, server?.sha256 ?? null, "sha256 at the client differs from the server's");
  }
}

function assertNoDataPlaneErrors(t: ExecutionContext, counters: Record<string, number>): void {
  t.is(counters.dropTxError, 0, "dropTxError");
  t.is(counters.dropTruncated, 0, "dropTruncated");
  t.is(counters.dropNoNeighbour! + counters.dropNoRoute! + counters.dropMalformed!, 0, JSON.stringify(counters));
}

// ---------------------------------------------------------------------------------------------------

for (const offloads of [false, true]) {
  const mode = offloads ? "offloads on" : "offloads off";

  test.serial(`${mode}, af_xdp: a 256 MiB download (3 connections) arrives intact, received by AF_XDP; XDP is gone after stop`, async (t) => {
    await withXdLab(t, { offloads, startNatlb: false }, async (env) => {
      const { lab, servers } = env;
      await warmNeighbours(lab, 20100);
      t.deepEqual(await xdpAttached(lab), { eth0: false, eth1: false, lo: false }, "no XDP before natlb");
      const before = await gatewaySnapshot(lab);
      const peersBefore = await peerOffloads(lab);

      env.natlb = await startBalancer(lab, xdpConfig(lab));
      const natlb = env.natlb;
      for (const name of GATEWAY_IFS) {
        const xdp = await xdpOf(lab, name);
        t.truthy(xdp, `${name}: no XDP program attached while natlb runs`);
        t.is(xdp?.prog?.name, "steer_to_socket", JSON.stringify(xdp));
      }
      t.false((await xdpAttached(lab)).lo, "lo is not managed: no XDP there");
      const status = await natlb.status();
      t.deepEqual(status.interfaces, [
        { name: "eth0", role: "client", receivePath: "af_xdp", xdp: { mode: "native", receiveQueues: 1 } },
        { name: "eth1", role: "backend", receivePath: "af_xdp", xdp: { mode: "native", receiveQueues: 1 } },
      ]);

      const bytes = 256 * MiB;
      const summary = await runDownload(lab, {
        url: blobUrl(lab.vip, SERVICE_PORT, bytes, `xdp-${mode}`),
        conns: 3,
        count: 3,
        localPortBase: 20000,
        timeoutMs: 180_000,
      });
      assertIntact(t, summary, servers, lab, bytes);
      t.is(new Set(summary.results.map((r) => r.real)).size, 3, "round robin over 3 equal reals uses all 3");

      const c = (await natlb.status()).counters;
      t.log(JSON.stringify({ rxFrames: c.rxFrames, rxSteeredFrames: c.rxSteeredFrames, toReal: c.toReal, toClient: c.toClient, ringDrops: c.ringDrops }));
      t.true(c.rxSteeredFrames > 0, "frames were received through AF_XDP");
      t.true(c.rxSteeredFrames <= c.rxFrames, "rxSteeredFrames is a part of rxFrames");
      t.true(c.rxSteeredFrames >= 0.9 * c.rxFrames, `most frames came by AF_XDP: ${c.rxSteeredFrames} of ${c.rxFrames}`);
      // Every NAT frame, both ways, is one the XDP program steers (TCP to the VIP, a flow's claimed replies)
      // but a flow's first replies: the kernel hands those over through the rings until the claim is in.
      t.true(c.rxSteeredFrames + firstRepliesThroughRings(3) >= c.toReal + c.toClient, `steered ${c.rxSteeredFrames} < toReal ${c.toReal} + toClient ${c.toClient}`);
      assertNoDataPlaneErrors(t, c as unknown as Record<string, number>);

      t.deepEqual(await natlb.stop("SIGTERM"), { code: 0, signal: null });
      t.true(await xdpGone(lab), `XDP still attached after stop: ${JSON.stringify(await xdpAttached(lab))}`);
      const after = await gatewaySnapshot(lab);
      for (const key of Object.keys(before)) t.is(after[key], before[key], `${key} differs after stop`);
      t.is(await peerOffloads(lab), peersBefore, "the veth peers' offloads are back as they were");
    });
  });

  test.serial(`${mode}, af_xdp: captured packets carry VIP:vport at the client, RIP:rport at the reals, valid checksums or seeds`, async (t) => {
    await withXdLab(t, { offloads }, async ({ lab, natlb }) => {
      const { summary, client, reals } = await captureDownloadThroughVip(lab, "xdp-capture");
      t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
      assertRewrittenCapture(t, lab, client, reals);
      const states: Record<string, number> = {};
      for (const p of [...client, ...reals.flat()]) states[p.l4Checksum] = (states[p.l4Checksum] ?? 0) + 1;
      t.log(`L4 checksums seen: ${JSON.stringify(states)}`);
      const c = (await natlb!.status()).counters;
      t.true(c.rxSteeredFrames + firstRepliesThroughRings(3) >= c.toReal + c.toClient, JSON.stringify({ steered: c.rxSteeredFrames, toReal: c.toReal, toClient: c.toClient }));
    });
  });
}

const MIXES = [
  { label: "AF_PACKET on the client side, AF_XDP towards the reals", receivePath: { default: "af_packet", interfaces: { eth1: "af_xdp" } }, xdp: { eth0: false, eth1: true } },
  { label: "AF_XDP on the client side, AF_PACKET towards the reals", receivePath: { default: "af_xdp", interfaces: { eth1: "af_packet" } }, xdp: { eth0: true, eth1: false } },
] as const;

for (const mix of MIXES) {
  test.serial(`per-interface receivePath, ${mix.label}: download intact, status and XDP show the mix`, async (t) => {
    await withXdLab(t, { offloads: false, config: (lab) => xdpConfig(lab, mix.receivePath) }, async ({ lab, servers, natlb }) => {
      const status = await natlb!.status();
      t.deepEqual(status.interfaces, [
        { name: "eth0", role: "client", ...(mix.xdp.eth0 ? { receivePath: "af_xdp", xdp: { mode: "native", receiveQueues: 1 } } : { receivePath: "af_packet" }) },
        { name: "eth1", role: "backend", ...(mix.xdp.eth1 ? { receivePath: "af_xdp", xdp: { mode: "native", receiveQueues: 1 } } : { receivePath: "af_packet" }) },
      ]);
      t.deepEqual(await xdpAttached(lab), { ...mix.xdp, lo: false });

      const bytes = 64 * MiB;
      const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "mix"), conns: 3, count: 3, localPortBase: 21000, timeoutMs: 120_000 });
      assertIntact(t, summary, servers, lab, bytes);

      const c = (await natlb!.status()).counters;
      t.log(JSON.stringify({ rxFrames: c.rxFrames, rxSteeredFrames: c.rxSteeredFrames, toReal: c.toReal, toClient: c.toClient }));
      const steeredSide = mix.xdp.eth1 ? c.toClient : c.toReal; // frames received on the AF_XDP interface
      const ringSide = mix.xdp.eth1 ? c.toReal : c.toClient; // frames received on the AF_PACKET interface
      t.true(c.rxSteeredFrames > 0);
      const unsteered = mix.xdp.eth1 ? firstRepliesThroughRings(3) : 0;
      t.true(c.rxSteeredFrames + unsteered >= steeredSide, `steered ${c.rxSteeredFrames} < ${steeredSide} frames forwarded from the AF_XDP side`);
      t.true(c.rxFrames - c.rxSteeredFrames >= ringSide, `ring frames ${c.rxFrames - c.rxSteeredFrames} < ${ringSide} forwarded from the AF_PACKET side`);
      assertNoDataPlaneErrors(t, c as unknown as Record<string, number>);

      await natlb!.stop();
      t.true(await xdpGone(lab));
    });
  });
}

test.serial("af_xdp: UDP through the VIP (also datagrams larger than the MTU), direct UDP to a real, ping and ICMP errors", async (t) => {
  await withXdLab(t, { offloads: true, config: (lab) => ({ services: [udpService(lab)], receivePath: "af_xdp" }) }, async ({ lab, natlb }) => {
    const echoes = await startUdpEchoes(lab);
    const summary = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 30, sockets: 6, localPortBase: 40000 });
    t.is(summary.received, 30, `lost: ${summary.lost.join(",")}`);
    t.deepEqual([...new Set(summary.replies.map((r) => r.from))], [`${lab.vip}:${UDP_SERVICE_PORT}`]);
    t.is(new Set(summary.replies.map((r) => r.real)).size, 3);
    t.true(echoes.flatMap((e) => e.echoes()).every((e) => e.peer === lab.client.ip), "real servers see the client's own address");
    let c = (await natlb!.status()).counters;
    t.true(c.rxSteeredFrames + firstRepliesThroughRings(6) >= 60, `the 30 requests and 30 replies came by AF_XDP (rxSteeredFrames ${c.rxSteeredFrames})`);

    // 4000-byte requests and replies: three IPv4 fragments each way, every one steered.
    const big = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 12, sockets: 4, localPortBase: 40800, payloadBytes: 4000 });
    t.is(big.received, 12, `lost: ${big.lost.join(",")}`);
    t.is(big.late, 0, "no second copy of a reply (the kernel's, from the real's address) arrives");
    t.deepEqual([...new Set(big.replies.map((r) => r.from))], [`${lab.vip}:${UDP_SERVICE_PORT}`]);
    c = (await natlb!.status()).counters;
    t.true(c.fragmentsForwarded >= 24, `fragmentsForwarded ${c.fragmentsForwarded}`);

    // A direct exchange with a real's own address: its replies are not natlb's, the kernel forwards them.
    const beforeDirect = (await natlb!.status()).counters;
    const direct = await runUdpClient(lab, { host: lab.reals[0]!.ip, port: UDP_REAL_PORT, count: 5, localPortBase: 40900, payloadBytes: 3000 });
    t.is(direct.received, 5);
    t.deepEqual([...new Set(direct.replies.map((r) => r.from))], [`${lab.reals[0]!.ip}:${UDP_REAL_PORT}`]);
    t.is((await natlb!.status()).counters.toClient, beforeDirect.toClient);

    // ICMP is not steered: pings to the VIP are answered on the AF_PACKET path.
    const ping = await pingFrom(lab, lab.client.ns, lab.vip, 3);
    t.is(ping.received, 3);
    t.deepEqual([...new Set(ping.from)], [lab.vip]);
    t.is((await natlb!.status()).counters.icmpEchoReplies, 3);

    // An ICMP error about a flow (frames steered) still reaches the flow's real, translated.
    const exchange = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 1, localPortBase: 40500 });
    t.is(exchange.received, 1);
    const real = lab.reals.find((r) => r.ip === exchange.replies[0]!.real)!;
    const capture = await startCapture(lab, real.ns, { filter: "icmp", maxPackets: 10, seconds: 20 });
    await sendFragmentationNeeded(lab, lab.client.ns, lab.vip, `${lab.vip}:${UDP_SERVICE_PORT}-${lab.client.ip}:40500`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const packets = await capture.stop();
    t.is(packets.length, 1, JSON.stringify(packets));
    t.is(packets[0]?.dst, real.ip);
    t.is(packets[0]?.icmpType, 3);
    t.is(packets[0]?.l4Checksum, "full");
    t.is((await natlb!.status()).counters.icmpErrorsToReal, 1);
  });
});

test.serial("af_xdp on interfaces with 2 receive queues: a socket on each queue, both carry traffic, 8 downloads arrive intact", async (t) => {
  await withXdLab(t, { offloads: false, gatewayQueues: 2 }, async ({ lab, servers, natlb }) => {
    // The bridge port in front of eth1 picks its transmit queue (eth1's receive queue) by a hash of
    // each flow, so 8 flows all land on one queue about once in 128 runs: a bounded few more rounds
    // of 8 make that vanishingly rare without hiding a queue that never carries anything.
    let stats = "";
    const redirected = (queue: number) => Number(new RegExp(`rx_queue_${queue}_xdp_redirect: (\\d+)`).exec(stats)?.[1] ?? "0");
    for (let round = 0; round < 4 && !(redirected(0) > 0 && redirected(1) > 0); round++) {
      const summary = await runDownload(lab, {
        url: blobUrl(lab.vip, SERVICE_PORT, 16 * MiB, `queues${round}`), conns: 8, count: 8, localPortBase: 28000 + round * 100,
      });
      // A queue without a socket would hand its flows to the kernel, which drops them (blackhole route).
      assertIntact(t, summary, servers, lab, 16 * MiB);
      stats = (await lab.exec(lab.gateway.ns, "ethtool", ["-S", "eth1"])).stdout;
    }
    t.true(redirected(0) > 0 && redirected(1) > 0, `XDP redirects per queue on eth1: ${redirected(0)} / ${redirected(1)}`);
    const status = await natlb!.status();
    t.deepEqual(status.interfaces.map((i) => i.xdp), [{ mode: "native", receiveQueues: 2 }, { mode: "native", receiveQueues: 2 }]);
    t.regex((await natlb!.cli(["status"])).stdout, /eth1\(backend, af_xdp native, 2 queue\(s\)\)/);
    const c = status.counters;
    // Every frame XDP redirected on eth1 reached the worker, unless a full ring dropped it.
    t.true(c.rxSteeredFrames + c.ringDrops >= redirected(0) + redirected(1), JSON.stringify({ steered: c.rxSteeredFrames, drops: c.ringDrops }));
  });
});

test.serial("af_xdp: a direct TCP connection from the client to a real's RIP:rport keeps working beside natlb", async (t) => {
  await withXdLab(t, { offloads: true }, async ({ lab, servers, natlb }) => {
    const before = (await natlb!.status()).counters;
    await assertDirectDownloads(t, lab, servers);
    const status = await natlb!.status();
    t.is(status.counters.rxSteeredFrames, before.rxSteeredFrames, "nothing of a direct connection was steered to natlb");
    t.is(status.counters.toClient, before.toClient);
    t.is(status.flows.live, 0, "direct connections are not NAT flows");
    // And NAT traffic through the VIP goes on beside it.
    const viaVip = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 4 * MiB, "beside"), conns: 3, count: 3, localPortBase: 22100 });
    assertIntact(t, viaVip, servers, lab, 4 * MiB);
  });
});

for (const receivePath of ["af_packet", "af_xdp"] as const) {
  test.serial(`${receivePath}: the gateway's own traffic with a real (TCP health checks, a TCP download, UDP) still reaches the gateway`, async (t) => {
    // Under AF_PACKET the kernel keeps every frame that is not natlb's (src/kernel/ownershipRuleset.ts):
    // replies to the gateway's own address are the kernel's to deliver. The XDP program must not
    // take those frames away from the kernel: TCP from a real's port and UDP from a real's address that
    // are addressed to the gateway itself. (The af_packet case is the control.)
    const healthCheck = { type: "tcp", intervalMs: 200, timeoutMs: 200, rise: 2, fall: 2 };
    await withXdLab(
      t,
      { offloads: false, config: (lab) => ({ services: [tcpService(lab, [1, 1, 1], { healthCheck }), udpService(lab)], receivePath }) },
      async ({ lab, servers, natlb }) => {
        await startUdpEchoes(lab);
        const problems: string[] = [];
        let up: boolean[] = [];
        const deadline = Date.now() + 5000;
        do {
          await new Promise((resolve) => setTimeout(resolve, 200));
          up = (await natlb!.status()).services[0]!.reals.map((r) => r.up);
        } while (!up.every(Boolean) && Date.now() < deadline);
        if (!up.every(Boolean)) problems.push(`TCP health checks from the gateway: reals up ${JSON.stringify(up)} after 5 s`);

        const own = await runDownload(lab, { ns: lab.gateway.ns, url: blobUrl(lab.reals[0]!.ip, REAL_PORT, MiB, "own"), timeoutMs: 10_000 });
        if (own.failed !== 0) {
          problems.push(`the gateway's own download from ${lab.reals[0]!.ip}:${REAL_PORT} failed: ${JSON.stringify(own.results.map((r) => r.error))}`);
        }

        // UDP from a real's address is steered too: the gateway's own exchange with a real's UDP port.
        const ownUdp = await runUdpClient(lab, { ns: lab.gateway.ns, host: lab.reals[0]!.ip, port: UDP_REAL_PORT, count: 5, timeoutMs: 500 });
        if (ownUdp.received !== 5) problems.push(`the gateway's own UDP exchange with ${lab.reals[0]!.ip}:${UDP_REAL_PORT}: ${ownUdp.received} of 5 replies`);

        // An address the gateway gains while natlb runs (here on lo) is the kernel's too, once natlb's
        // periodic refresh (5 s) has seen it.
        const added = "198.18.3.1";
        await lab.exec(lab.gateway.ns, "ip", ["addr", "add", `${added}/32`, "dev", "lo"]);
        let fromAdded: Awaited<ReturnType<typeof runDownload>> | undefined;
        for (let attempt = 0; attempt < 12 && fromAdded?.failed !== 0; attempt++) {
          fromAdded = await runDownload(lab, {
            ns: lab.gateway.ns, localAddress: added, url: blobUrl(lab.reals[0]!.ip, REAL_PORT, 64 * 1024, "added"), timeoutMs: 1000,
          });
        }
        if (fromAdded?.failed !== 0) problems.push(`the gateway's download from ${added} (added after start) kept failing for 12 s`);

        const viaVip = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, MiB, "hc"), conns: 3, count: 3, localPortBase: 22500, timeoutMs: 20_000 });
        if (viaVip.failed !== 0) problems.push(`${viaVip.failed} of 3 downloads through the VIP failed: ${JSON.stringify(viaVip.results.map((r) => r.error))}`);
        else assertIntact(t, viaVip, servers, lab, MiB);

        if (problems.length > 0) {
          const c = (await natlb!.status()).counters;
          t.log(JSON.stringify({ rxFrames: c.rxFrames, rxSteeredFrames: c.rxSteeredFrames, ignored: c.ignored, dropNoReal: c.dropNoReal }));
        }
        t.deepEqual(problems, []);
      },
    );
  });
}

/** Compiles a BPF program that passes every frame (clang is what builds natlb's own XDP program). */
function compilePassProgram(dir: string): string | undefined {
  const source = join(dir, "foreign_pass.bpf.c");
  const object = join(dir, "foreign_pass.o");
  writeFileSync(
    source,
    '#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\nSEC("xdp") int foreign_pass(struct xdp_md* ctx) { return XDP_PASS; }\nchar LICENSE[] SEC("license") = "GPL";\n',
  );
  const multiarch = spawnSync("gcc", ["-print-multiarch"], { encoding: "utf8" }).stdout?.trim() ?? "";
  const built = spawnSync("clang", ["-O2", "-g", "-target", "bpf", `-I/usr/include/${multiarch}`, "-c", source, "-o", object], { encoding: "utf8" });
  return built.status === 0 ? object : undefined;
}

const haveClang = spawnSync("clang", ["--version"]).status === 0;

(haveClang ? test.serial : test.serial.skip)(
  "af_xdp on an interface that already has another XDP program: start fails naming it, the other program stays, nothing else is left",
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "natlb-xd-foreign-"));
    try {
      const object = compilePassProgram(dir);
      if (object === undefined) return t.fail("clang could not build the test's XDP program");
      await withXdLab(t, { offloads: false, startNatlb: false }, async ({ lab }) => {
        await lab.exec(lab.gateway.ns, "ip", ["link", "set", "dev", "eth1", "xdp", "obj", object, "sec", "xdp"]);
        t.is((await xdpOf(lab, "eth1"))?.prog?.name, "foreign_pass");
        await warmNeighbours(lab, 26100);
        const before = await gatewaySnapshot(lab);
        const error = await t.throwsAsync(startBalancer(lab, xdpConfig(lab), { readyTimeoutMs: 15_000 }));
        t.regex(error!.message, /eth1 \(the interface already has an XDP program/, error!.message);
        t.is((await xdpOf(lab, "eth1"))?.prog?.name, "foreign_pass", "natlb left the other program attached");
        t.is(await xdpOf(lab, "eth0"), undefined, "natlb's program on eth0 went away with the failed start");
        t.deepEqual(await gatewaySnapshot(lab), before, "kernel state left behind");
        // The AF_PACKET path works beside the other program (it passes every frame to the stack).
        const natlb = await startBalancer(lab, xdpConfig(lab, { default: "af_packet", interfaces: { eth0: "af_xdp" } }));
        try {
          const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 4 * MiB, "foreign"), conns: 3, count: 3, localPortBase: 26000 });
          t.is(summary.failed, 0, JSON.stringify(summary.results.map((r) => r.error)));
        } finally {
          await natlb.stop();
          rmSync(natlb.socket, { force: true });
        }
        t.is((await xdpOf(lab, "eth1"))?.prog?.name, "foreign_pass");
        t.is(await xdpOf(lab, "eth0"), undefined);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

/** Sets the MTU of every link of the lab (both ends of every veth, and the bridge). */
async function setLabMtu(lab: Lab, mtu: number): Promise<void> {
  const links: Array<[string, string]> = [
    [lab.client.ns, "eth0"],
    [lab.gateway.ns, "eth0"],
    [lab.gateway.ns, "eth1"],
    ...lab.switch.ports.map((p): [string, string] => [lab.switch.ns, p]),
    [lab.switch.ns, lab.switch.bridge],
    ...lab.reals.map((r): [string, string] => [r.ns, "eth0"]),
  ];
  for (const [ns, ifname] of links) await lab.exec(ns, "ip", ["link", "set", "dev", ifname, "mtu", String(mtu)]);
}

for (const receivePath of ["af_packet", "af_xdp"] as const) {
  test.serial(`${receivePath} with a 9000-byte MTU: jumbo frames through the VIP arrive, or start is refused naming the MTU`, async (t) => {
    // The af_packet case is the control: the lab and the download are the same.
    await withXdLab(t, { offloads: false, reals: 1, startNatlb: false }, async (env) => {
      const { lab, servers } = env;
      await setLabMtu(lab, 9000);
      let refusal: Error | undefined;
      try {
        env.natlb = await startBalancer(lab, xdpConfig(lab, receivePath), { readyTimeoutMs: 15_000 });
      } catch (error) {
        refusal = error as Error;
      }
      if (refusal !== undefined) {
        t.regex(refusal.message, /MTU|mtu/, refusal.message);
        t.deepEqual(await xdpAttached(lab), { eth0: false, eth1: false, lo: false });
        return;
      }
      const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 16 * MiB, "jumbo"), localPortBase: 27000, timeoutMs: 20_000 });
      const c = (await env.natlb!.status()).counters;
      t.log(JSON.stringify({ rxFrames: c.rxFrames, rxSteeredFrames: c.rxSteeredFrames, ringDrops: c.ringDrops, toClient: c.toClient }));
      t.log(`XDP modes: eth0 ${(await xdpOf(lab, "eth0"))?.mode}, eth1 ${(await xdpOf(lab, "eth1"))?.mode} (1 native, 2 generic)`);
      assertIntact(t, summary, servers, lab, 16 * MiB);
    });
  });
}

test.serial("af_xdp: after SIGKILL of the daemon no XDP program is left; kernel-undo restores the rest; a new natlb attaches again", async (t) => {
  await withXdLab(t, { offloads: false, startNatlb: false }, async (env) => {
    const { lab, servers } = env;
    await warmNeighbours(lab, 23100);
    const before = await gatewaySnapshot(lab);
    const peersBefore = await peerOffloads(lab);
    env.natlb = await startBalancer(lab, xdpConfig(lab));
    t.deepEqual(await xdpAttached(lab), { eth0: true, eth1: true, lo: false });
    const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 8 * MiB, "kill"), conns: 3, count: 3, localPortBase: 23000 });
    assertIntact(t, summary, servers, lab, 8 * MiB);

    const killedAt = Date.now();
    t.deepEqual(await env.natlb.stop("SIGKILL"), { code: null, signal: "SIGKILL" });
    const gone = await xdpGone(lab);
    t.true(gone, `XDP still attached after SIGKILL: ${JSON.stringify(await xdpAttached(lab))}`);
    t.log(`XDP gone ${Date.now() - killedAt} ms after the kill`);
    rmSync(env.natlb.socket, { force: true });
    env.natlb = undefined;

    const undo = await lab.exec(lab.gateway.ns, process.execPath, [NATLB_CLI, "kernel-undo"]);
    t.regex(undo.stdout, /kernel set-up removed/);
    const after = await gatewaySnapshot(lab);
    for (const key of Object.keys(before)) t.is(after[key], before[key], `${key} differs after SIGKILL + kernel-undo`);
    t.is(await peerOffloads(lab), peersBefore, "the veth peers' offloads are back as they were");

    // Nothing blocks the next start: the XDP program attaches again and traffic flows.
    env.natlb = await startBalancer(lab, xdpConfig(lab));
    t.deepEqual(await xdpAttached(lab), { eth0: true, eth1: true, lo: false });
    const again = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 8 * MiB, "again"), conns: 3, count: 3, localPortBase: 23200 });
    assertIntact(t, again, servers, lab, 8 * MiB);
    t.true((await env.natlb.status()).counters.rxSteeredFrames > 0);
  });
});

test.serial("af_xdp without CAP_BPF and CAP_NET_ADMIN: start fails naming the capabilities and af_packet, and attaches nothing", async (t) => {
  await withXdLab(t, { offloads: false, startNatlb: false }, async ({ lab }) => {
    const wrapper = ["setpriv", "--bounding-set=-net_admin,-sys_admin,-bpf", "--inh-caps=-net_admin,-sys_admin,-bpf", "--"];
    const error = await startBalancer(lab, xdpConfig(lab), { runArgs: ["--no-kernel-setup"], wrapper }).then(
      async (natlb) => {
        await natlb.stop();
        return undefined;
      },
      (e: unknown) => e as Error,
    );
    t.truthy(error, "natlb started with AF_XDP but without the capabilities to load XDP");
    t.regex(error?.message ?? "", /CAP_BPF/);
    t.regex(error?.message ?? "", /"af_packet"/);
    t.deepEqual(await xdpAttached(lab), { eth0: false, eth1: false, lo: false });
  });
});

test.serial("a receivePath.interfaces entry naming an interface natlb does not manage fails start, naming it, and leaves nothing behind", async (t) => {
  await withXdLab(t, { offloads: true, startNatlb: false }, async ({ lab }) => {
    await warmNeighbours(lab, 24100);
    const before = await gatewaySnapshot(lab);
    const cases: Array<{ name: string; config: Record<string, unknown> }> = [
      // lo exists in the namespace but is not one of natlb's interfaces; eth9 does not exist at all.
      { name: "lo", config: { services: [tcpService(lab, [1, 1, 1])], receivePath: { default: "af_xdp", interfaces: { lo: "af_xdp" } } } },
      { name: "eth9", config: { services: [tcpService(lab, [1, 1, 1])], receivePath: { default: "af_xdp", interfaces: { eth9: "af_packet" } } } },
      {
        name: "lo",
        config: {
          services: [tcpService(lab, [1, 1, 1])],
          interfaces: { client: ["eth0"], backend: ["eth1"] },
          receivePath: { default: "af_packet", interfaces: { eth1: "af_xdp", lo: "af_xdp" } },
        },
      },
    ];
    for (const { name, config } of cases) {
      const error = await t.throwsAsync(startBalancer(lab, config, { readyTimeoutMs: 15_000 }));
      t.regex(error!.message, new RegExp(`receivePath\\.interfaces\\.${name}\\b`), error!.message);
      t.regex(error!.message, /is not an interface natlb works on/);
      t.deepEqual(await xdpAttached(lab), { eth0: false, eth1: false, lo: false }, `XDP left behind (${name})`);
      t.deepEqual(await gatewaySnapshot(lab), before, `kernel state left behind (${name})`);
      const status = await lab.tryExec(lab.gateway.ns, process.execPath, [NATLB_CLI, "status", "--json"]);
      t.not(status.code, 0, "no daemon runs");
    }
  });
});

test.serial("af_xdp: a reload that changes receivePath is refused (CLI and SIGHUP) and traffic keeps flowing", async (t) => {
  await withXdLab(t, { offloads: false }, async ({ lab, servers, natlb }) => {
    const first = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 4 * MiB, "r1"), conns: 3, count: 3, localPortBase: 25000 });
    assertIntact(t, first, servers, lab, 4 * MiB);
    const steeredBefore = (await natlb!.status()).counters.rxSteeredFrames;

    for (const receivePath of ["af_packet", { default: "af_xdp", interfaces: { eth1: "af_packet" } }, { default: "af_packet", interfaces: { eth0: "af_xdp", eth1: "af_xdp" } }]) {
      writeFileSync(natlb!.configPath, JSON.stringify(xdpConfig(lab, receivePath)));
      const reload = await natlb!.cli(["reload"]);
      t.not(reload.code, 0, `reload to ${JSON.stringify(receivePath)} was accepted: ${reload.stdout}`);
      t.regex(reload.stderr, /receivePath cannot change while running: restart natlb/, JSON.stringify(receivePath));
    }

    // SIGHUP reads the same file: refused too, logged, and the daemon goes on.
    writeFileSync(natlb!.configPath, JSON.stringify(xdpConfig(lab, "af_packet")));
    natlb!.child.kill("SIGHUP");
    await waitUntil("the refused SIGHUP reload to be logged", () => /reload refused/.test(natlb!.output()), 10_000, 100);
    t.regex(natlb!.output(), /receivePath cannot change while running/);

    // The same receivePath written another way is no change: that reload goes through (and applies the weights).
    writeFileSync(
      natlb!.configPath,
      JSON.stringify({ services: [tcpService(lab, [2, 1, 1])], receivePath: { default: "af_xdp", interfaces: {} }, kernelFastPath: false }),
    );
    const same = await natlb!.cli(["reload"]);
    t.is(same.code, 0, same.stderr);

    const status = await natlb!.status();
    t.deepEqual(status.services[0]!.reals.map((r) => r.weight), [2, 1, 1], "the accepted reload applied");
    t.deepEqual(status.interfaces.map((i) => i.receivePath), ["af_xdp", "af_xdp"], "still af_xdp everywhere");
    t.deepEqual(await xdpAttached(lab), { eth0: true, eth1: true, lo: false }, "the XDP programs stayed");

    const second = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 16 * MiB, "r2"), conns: 3, count: 3, localPortBase: 25100 });
    assertIntact(t, second, servers, lab, 16 * MiB);
    const c = (await natlb!.status()).counters;
    t.true(c.rxSteeredFrames > steeredBefore, "frames still come in by AF_XDP after the refused reloads");
    assertNoDataPlaneErrors(t, c as unknown as Record<string, number>);
  });
});

test.serial("every xd lab namespace made by this file is gone", async (t) => {
  const mine: string[] = [];
  for (const ns of await listLabNamespaces(PREFIX)) if ((await namespaceOwnerPid(ns)) === process.pid) mine.push(ns);
  t.deepEqual(mine, []);
});
