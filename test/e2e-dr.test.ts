// End to end, direct routing (forwarding "dr", LVS-DR): the lab's direct-routing topology (a router
// between the client and the backend LAN, natlb one-armed on that LAN, the VIPs on the reals' lo), real
// packets. natlb changes only the MACs; the reals answer the client through the router, so no reply
// crosses natlb: its counters and a capture on its interface say so.
import test from "ava";
import { startCapture, type CapturedPacket } from "../lab/capture";
import { blobUrl, runDownload } from "../lab/download";
import { startUdpEcho, runUdpClient } from "../lab/udpEcho";
import type { Lab } from "../lab/topology";
import { requestControl } from "../src/control";
import type { BalancerStats } from "../src/stats/trafficStats";
import { startBalancer } from "../lab/balancerProcess";
import { assertChecksAndPersistence, checkedAndPersistent } from "./support/checksAndPersistence";
import { sleep, waitUntil } from "../lab/wait";
import { assertDirectPath, drService, warmNeighbours } from "./support/directRouting";
import { SERVICE_PORT, UDP_SERVICE_PORT, gatewaySnapshot, withNatLab } from "./support/lab";
import { startStreamClient, startStreamServer } from "./support/pacedStream";
import { endingFlowsTime } from "./support/routerChecks";

const MiB = 1024 * 1024;
const PREFIX = "dr";

function drUdpService(lab: Lab) {
  return { vip: lab.vip, port: UDP_SERVICE_PORT, protocol: "udp", forwarding: "dr", scheduler: "rr", reals: lab.reals.map((r) => ({ ip: r.ip })) };
}

const VARIANTS = [
  { name: "offloads on", offloads: true, receivePath: "af_packet", mib: 512 },
  { name: "offloads off", offloads: false, receivePath: "af_packet", mib: 64 },
  { name: "offloads off, af_xdp", offloads: false, receivePath: "af_xdp", mib: 64 },
] as const;

for (const variant of VARIANTS) test.serial(`dr, ${variant.name}: a ${variant.mib} MiB download arrives intact, frames reach the real unchanged but for the MACs, no reply crosses natlb, kernel state restored`, async (t) => {
  await withNatLab(
    t,
    { offloads: variant.offloads, reals: 2, directRouting: true, prefix: PREFIX, startNatlb: false, blobReals: [1, 2], realPort: SERVICE_PORT },
    async (env) => {
      const { lab, servers } = env;
      await warmNeighbours(lab);
      const before = await gatewaySnapshot(lab);
      const natlb = await startBalancer(lab, { services: [drService(lab, [1, 1])], receivePath: variant.receivePath });
      env.natlb = natlb;
      const status0 = await natlb.status();
      t.is(status0.services[0]!.forwarding, "dr");

      // natlb's only interface sees both its frames in and out; filter on TCP to and from the VIP.
      const atGateway = await startCapture(lab, lab.gateway.ns, { ifname: "eth1", filter: `tcp and host ${lab.vip}`, maxPackets: 4000, seconds: 60, snaplen: 96 });
      const atReal = await startCapture(lab, lab.reals[0]!.ns, { filter: `tcp and host ${lab.vip}`, maxPackets: 4000, seconds: 60, snaplen: 96 });
      const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, variant.mib * MiB, "dr-big"), conns: 2, count: 2, localPortBase: 21_000, timeoutMs: 30_000 + variant.mib * 200 });
      const atGatewayPackets = await atGateway.stop();
      const atRealPackets = await atReal.stop();

      t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
      for (const result of summary.results) {
        t.is(result.bytes, variant.mib * MiB);
        const served = servers.find((s) => s.real.ip === result.real)?.served().filter((e) => e.peerPort === result.localPort).pop();
        t.truthy(served, `no server logged the connection from port ${result.localPort}`);
        t.is(result.sha256, served?.sha256 ?? null, "sha256 at the client differs from the server's");
      }
      t.is(new Set(summary.results.map((r) => r.real)).size, 2, "the two equal reals took one download each");

      assertDirectPath(t, lab, atGatewayPackets, atRealPackets);

      const status = await natlb.status();
      const c = status.counters;
      t.true(c.toRealDirect > 0, JSON.stringify(c));
      t.is(c.toClient, 0, "natlb forwarded no reply");
      t.is(c.toReal, 0, "no frame was NAT-rewritten");
      // The kernel fast path ("auto", as root) takes each connection once established (e2e-dr-fast-path).
      t.is(c.flowsOffloaded, 2, "each direct-routing connection was handed over to the kernel fast path");
      t.true(c.kernelForwardedPackets > c.toRealDirect, `the kernel forwarded ${c.kernelForwardedPackets} frames, user space ${c.toRealDirect}`);
      // On the AF_XDP path, the handshake reaches natlb's socket, the offloaded segments pass to TC.
      if (variant.receivePath === "af_xdp") t.true(c.rxSteeredFrames > 0, "the XDP program steered the client's frames");
      t.is(c.dropNotOnLink + c.dropNoRoute + c.dropNoNeighbour + c.dropMalformed + c.dropTxError, 0, JSON.stringify(c));
      // The real's ACKs alone are fewer than its data segments; with no reply seen, the per-real
      // counts are the client's side only.
      const stats = (await requestControl(natlb.socket, "GET /stats")) as BalancerStats;
      for (const real of stats.services[0]!.reals) {
        t.true(real.counts.packetsIn > 0, `${real.ip}: packets in`);
        t.is(real.counts.packetsOut, 0, `${real.ip}: no packet out (replies bypass natlb)`);
        t.is(real.counts.bytesOut, 0);
      }

      t.regex((await natlb.cli(["status"])).stdout, new RegExp(`frames: 0 to reals, ${c.toRealDirect} to reals by direct routing, 0 to clients`));

      await natlb.stop();
      env.natlb = undefined;
      t.deepEqual(await gatewaySnapshot(lab), before, "the gateway's kernel state is as before natlb ran");
    },
  );
});

test.serial("dr: weights 2:1 over 300 short connections give 67/33 within 5 points", async (t) => {
  await withNatLab(
    t,
    {
      offloads: true, reals: 2, directRouting: true, prefix: PREFIX, blobReals: [1, 2], realPort: SERVICE_PORT,
      config: (lab) => ({ services: [drService(lab, [2, 1])] }),
    },
    async ({ lab, natlb }) => {
      const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 2048, "dr-small"), conns: 10, count: 300, localPortBase: 30_000, timeoutMs: 60_000 });
      t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error).slice(0, 3)));
      const share = (ip: string) => (100 * summary.results.filter((r) => r.real === ip).length) / summary.results.length;
      const expected = [200 / 3, 100 / 3];
      lab.reals.forEach((real, i) => {
        const actual = share(real.ip);
        t.true(Math.abs(actual - expected[i]!) <= 5, `${real.ip}: ${actual.toFixed(1)} % (expected ${expected[i]!.toFixed(1)} ± 5)`);
      });
      const status = await natlb!.status();
      const flows = status.services[0]!.reals.reduce((sum, r) => sum + r.activeConns + r.inactiveConns, 0);
      t.is(flows, 300, "the flow map holds every connection (input-only states: FIN_WAIT or TIME_WAIT)");
      t.is(status.counters.toClient, 0);
      t.true(status.counters.newFlows >= 300);
    },
  );
});

test.serial("dr: a real whose health check fails gets no new connections; persistence keeps a client on one real", async (t) => {
  await withNatLab(
    t,
    { offloads: true, reals: 2, directRouting: true, prefix: PREFIX, blobReals: [1, 2], realPort: SERVICE_PORT, config: (lab) => ({ services: checkedAndPersistent(lab, drService(lab, [1, 1])) }) },
    (env) => assertChecksAndPersistence(t, env, "dr"),
  );
});

test.serial("dr: UDP request/response through the VIP, answered by the reals directly", async (t) => {
  await withNatLab(
    t,
    {
      offloads: true, reals: 2, directRouting: true, prefix: PREFIX, blobReals: [],
      config: (lab) => ({ services: [drUdpService(lab)] }),
    },
    async ({ lab, natlb }) => {
      // Bound to the VIP, so the echo leaves from it (a socket on 0.0.0.0 would answer from the RIP).
      const echoes = await Promise.all(lab.reals.map((_, i) => startUdpEcho(lab, i + 1, UDP_SERVICE_PORT, { host: lab.vip })));
      const atGateway = await startCapture(lab, lab.gateway.ns, { ifname: "eth1", filter: `udp and host ${lab.vip}`, maxPackets: 1000, seconds: 30 });
      const summary = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 40, sockets: 4, localPortBase: 40_000 });
      const atGatewayPackets = await atGateway.stop();
      t.is(summary.replies.length, 40, JSON.stringify(summary).slice(0, 400));
      for (const reply of summary.replies) t.is(reply.from, `${lab.vip}:${UDP_SERVICE_PORT}`);
      t.is(new Set(summary.replies.map((r) => r.real)).size, 2, "both reals answered");
      t.true(echoes.every((e) => e.echoes().length > 0));
      t.is(atGatewayPackets.filter((p) => p.src === lab.vip).length, 0, "no UDP reply crossed natlb");
      t.true(atGatewayPackets.filter((p) => p.dst === lab.vip).length >= 40);
      const c = (await natlb!.status()).counters;
      t.is(c.toClient, 0);
      t.true(c.toRealDirect >= 40);
    },
  );
});

test.serial("dr: a real off natlb's links is refused at start and over the control socket, the field named; a real on another port too", async (t) => {
  await withNatLab(t, { offloads: true, reals: 1, directRouting: true, prefix: PREFIX, blobReals: [], startNatlb: false }, async (env) => {
    const { lab } = env;
    // 198.18.0.50: the client's subnet, behind the router; natlb's only link is the backend LAN.
    const offLink = { services: [{ ...drService(lab, [1]), reals: [{ ip: "198.18.0.50" }] }] };
    const refused = await t.throwsAsync(startBalancer(lab, offLink, { readyTimeoutMs: 10_000 }));
    t.regex(refused!.message, /services\[0\]\.reals\[0\]\.ip: 198\.18\.0\.50 is not on a link natlb works on/);

    const natlb = await startBalancer(lab, { services: [drService(lab, [1])] });
    env.natlb = natlb;
    const added = await natlb.cli(["service", "add", `${lab.vip2}:${SERVICE_PORT}`, "--forwarding", "dr"]);
    t.is(added.code, 0, added.stderr);
    const viaApi = await natlb.cli(["real", "add", `${lab.vip2}:${SERVICE_PORT}`, "198.18.0.50"]);
    t.not(viaApi.code, 0);
    t.regex(viaApi.stderr, /services\[1\]\.reals\[0\]\.ip: 198\.18\.0\.50 is not on a link natlb works on/);
    const otherPort = await natlb.cli(["real", "add", `${lab.vip2}:${SERVICE_PORT}`, `${lab.reals[0]!.ip}:8080`]);
    t.not(otherPort.code, 0);
    t.regex(otherPort.stderr, /services\[1\]\.reals\[0\]\.port: a "dr" real receives the client's frame unchanged, on the service port 80/);
    const status = await natlb.status();
    t.deepEqual(status.services.map((s) => [s.vip, s.forwarding, s.reals.length]), [[lab.vip, "dr", 1], [lab.vip2, "dr", 0]], "the refused calls changed nothing");
    const text = await natlb.cli(["status"]);
    t.regex(text.stdout, /198\.18\.0\.100:80 +wrr direct-routing/);
  });
});

// deadRealFlows "reset" (and `natlb real drain --then reset`) with direct routing: natlb sees only the
// client's segments, which carry both numbers a reset needs: the client's next sequence number (what
// the real expects) and its latest acknowledgement (what the client expects: with the connection idle,
// exactly its rcv_nxt). Established, idle connections, one per real; with the kernel fast path their
// last ACKs are forwarded (and tracked) by the TC program. The captures check each RST's sequence
// number against the handshake: an inexact one would draw a challenge ACK instead of a reset.
const HELD_BYTES = 8 * MiB;
const RESET_PROMPT_MS = 2000;
const RESET_CASES = [
  { kernelFastPath: false, how: "natlb real remove" },
  { kernelFastPath: true, how: "natlb real remove" },
  { kernelFastPath: true, how: "natlb real drain --then reset" },
] as const;

for (const { kernelFastPath, how } of RESET_CASES) test.serial(`dr, ${kernelFastPath ? "kernel fast path" : "user space only"}: ${how} resets an idle connection at both ends at once, with the exact sequence numbers; the other real's connection goes on`, async (t) => {
  const viaDrain = how.includes("drain");
  await withNatLab(
    t,
    {
      offloads: true, reals: 2, directRouting: true, prefix: PREFIX, blobReals: [],
      // The drain resets whatever the service says; a removal resets because the service says so.
      config: (lab) => ({ services: [{ ...drService(lab, [1, 1]), ...(viaDrain ? {} : { deadRealFlows: "reset" }) }], kernelFastPath }),
    },
    async ({ lab, natlb }) => {
      const servers = await Promise.all(lab.reals.map((_, i) => startStreamServer(lab, i + 1, SERVICE_PORT, { sendBytes: HELD_BYTES, holdOpen: true, maxSeconds: 90 })));
      const ports = [41_000, 41_001];
      const showTcp = "tcp[tcpflags] & (tcp-syn|tcp-rst) != 0";
      const atClient = await startCapture(lab, lab.client.ns, {
        filter: `tcp port ${ports[0]} and ((${showTcp}) or (src host ${lab.client.ip}))`, maxPackets: 20_000, seconds: 80, snaplen: 96,
      });
      const atReals = await Promise.all(lab.reals.map((r) => startCapture(lab, r.ns, { filter: `tcp port ${ports[0]} and (${showTcp})`, maxPackets: 100, seconds: 80 })));
      // The client has no FIN to wait for (the server holds the connection open): it idles until reset.
      const clients = ports.map((localPort) => startStreamClient(lab, { host: lab.vip, port: SERVICE_PORT, localPort, timeoutMs: 60_000 }));
      try {
        for (const client of clients) await client.waitForBytes(HELD_BYTES, 30_000);
        const index = servers.findIndex((s) => s.acceptedPorts().includes(ports[0]!));
        t.true(index >= 0, "a real accepted the connection");
        t.not(servers.findIndex((s) => s.acceptedPorts().includes(ports[1]!)), index, "round robin: one connection per real");
        const real = lab.reals[index]!;
        if (kernelFastPath) {
          await waitUntil("both connections in the kernel fast path", async () => ((await natlb!.status()).kernelFastPath.flows === 2 ? true : undefined), 5000, 100);
        }
        await sleep(300);  // the client's last ACKs on their way
        const before = (await natlb!.status()).counters;
        if (kernelFastPath) t.true(before.kernelForwardedPackets > 0, "the kernel forwarded client segments");

        const service = `${lab.vip}:${SERVICE_PORT}`;
        const startedAt = Date.now();
        let endedAt: number;
        if (viaDrain) {
          const drained = await natlb!.cli(["real", "drain", service, real.ip, "--wait", "--timeout", "1s", "--then", "reset", "--json"]);
          t.is(drained.code, 1, drained.stderr);
          t.like(JSON.parse(drained.stdout), { connectionsLeft: 1, deadlineHit: true, then: "reset", done: "reset" });
          endedAt = Date.now();  // the command returns once the drain has handed the flows over to be reset
        } else {
          const removed = await natlb!.cli(["real", "remove", service, real.ip]);
          t.is(removed.code, 0, removed.stderr);
          endedAt = await endingFlowsTime(natlb!, real.ip, 5000);
        }
        const end = await clients[0]!.ended(RESET_PROMPT_MS + 3000);
        t.is(end.event, "failed", JSON.stringify(end));
        t.is(end["reason"], "ECONNRESET", "the client's connection was reset");
        t.true(Number(end["t"]) >= startedAt + (viaDrain ? 1000 : 0), "not before the removal (or the drain's deadline)");
        const clientLag = Number(end["t"]) - endedAt;
        t.true(clientLag <= RESET_PROMPT_MS, `the client was reset ${clientLag} ms after the flows were ended`);
        const closed = await servers[index]!.event("closed", ports[0]!, RESET_PROMPT_MS + 3000);
        t.is(closed["reason"], "ECONNRESET", "the real's server saw its connection reset");
        const realLag = Number(closed["t"]) - endedAt;
        t.true(realLag <= RESET_PROMPT_MS, `the real was reset ${realLag} ms after the flows were ended`);

        const after = (await natlb!.status()).counters;
        const counted = Object.fromEntries((["deadRealFlowsEnded", "tcpResetsSent", "tcpResetsWithoutSequence", "dropNoNeighbour"] as const).map((n) => [n, after[n] - before[n]]));
        t.deepEqual(counted, { deadRealFlowsEnded: 1, tcpResetsSent: 2, tcpResetsWithoutSequence: 0, dropNoNeighbour: 0 });
        if (kernelFastPath) t.is((await natlb!.status()).kernelFastPath.flows, 1, "the reset flow left the kernel; the other stays");
        await sleep(500);
        t.is(clients[1]!.failure(), undefined, "the other real's connection goes on");

        // At the client: the RST from VIP:80 carries what the client acknowledged last: every byte the real sent.
        const clientPackets = await atClient.stop();
        const has = (p: CapturedPacket, flag: string) => p.tcpFlags?.includes(flag) === true;
        const synAck = clientPackets.find((p) => p.src === lab.vip && has(p, "SYN") && has(p, "ACK"));
        t.truthy(synAck, "the SYN-ACK at the client");
        const clientExpects = (synAck!.tcpSeq! + 1 + HELD_BYTES) >>> 0;
        const resets = clientPackets.filter((p) => p.src === lab.vip && p.sport === SERVICE_PORT && p.dport === ports[0] && has(p, "RST"));
        t.is(resets.length, 1, JSON.stringify(resets));
        const reset = resets[0]!;
        const lastAck = clientPackets.filter((p) => p.src === lab.client.ip && has(p, "ACK") && p.t <= reset.t).pop();
        t.is(lastAck?.tcpAck, clientExpects, "the client had acknowledged every byte");
        t.is(reset.tcpSeq, clientExpects, "the RST to the client carries its rcv_nxt");
        t.is(reset.dst, lab.client.ip);
        t.false(clientPackets.some((p) => p.src === lab.client.ip && p.t > reset.t), "no challenge ACK: the client took the RST");

        // At the real: the RST from the client to VIP:80, delivered to the real's MAC, carries the client's next sequence number.
        const realPackets = await atReals[index]!.stop();
        const syn = realPackets.find((p) => p.src === lab.client.ip && has(p, "SYN"));
        t.truthy(syn, "the client's SYN at the real");
        const toReal = realPackets.filter((p) => p.src === lab.client.ip && has(p, "RST"));
        t.is(toReal.length, 1, JSON.stringify(toReal));
        t.like(toReal[0], {
          dst: lab.vip, sport: ports[0], dport: SERVICE_PORT, tcpSeq: (syn!.tcpSeq! + 1) >>> 0, srcMac: lab.gateway.backendMac, dstMac: real.mac,
        });
        t.log(`${how}${kernelFastPath ? " (fast path)" : ""}: client reset after ${clientLag} ms (seq ${reset.tcpSeq}), real after ${realLag} ms (seq ${toReal[0]!.tcpSeq}); counters ${JSON.stringify(counted)}`);
      } finally {
        for (const client of clients) await client.stop();
        for (const capture of [atClient, ...atReals]) await capture.stop().catch(() => undefined);
        for (const server of servers) await server.stop();
      }
    },
  );
});
