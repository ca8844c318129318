// natlb as the first box the internet reaches, end to end with real packets: blind resets cannot end
// or move a live connection; the gateway's own netfilter rules (MASQUERADE, FORWARD) apply to the
// reals' own traffic because natlb takes only its flows' replies; a host on the backend LAN that
// spoofs a real's address cannot pull that real's traffic to itself; malformed frames are counted and
// dropped, also IPv4 packets whose options do not parse. Every lab has the prefix "fx"
// (test/support/frontLineChecks.ts).
import test from "ava";
import { startCapture, type CapturedPacket } from "../lab/capture";
import { blobUrl, runDownload } from "../lab/download";
import type { Lab } from "../lab/topology";
import { startUdpEcho, runUdpClient } from "../lab/udpEcho";
import { readSnmpCounters } from "../lab/netCounters";
import { sleep, waitUntil } from "../lab/wait";
import type { Connection } from "../src/flows/flowMap";
import type { BalancerProcess } from "../lab/balancerProcess";
import type { BlobServerHandle } from "../lab/blobServer";
import type { EngineCounters } from "../src/native";
import { IPPROTO_UDP } from "./support/checksum";
import { buildFrame, put16, refreshIpChecksum, ETH_HEADER_LEN } from "./support/frames";
import {
  TCP_ACK, TCP_PSH, TCP_RST, TCP_SYN, arpFrame, blindSequences, counterDelta, macBytes, refreshTransportChecksum, sendFrames,
  randomU32, startPeerServer, tcpExchange, tcpFrame, udpExchange, udpFrame, udpPaced, withFrontLineLab,
} from "./support/frontLineChecks";
import { REAL_PORT, SERVICE_PORT, UDP_REAL_PORT, UDP_SERVICE_PORT, startUdpEchoes, tcpService, udpService } from "./support/lab";
import { startPacedClient, startPacedServer, type PacedServerOptions, type StreamServerHandle } from "./support/pacedStream";

const MiB = 1024 * 1024;
const IPTABLES = "/usr/sbin/iptables";

/** A second TCP service on the VIP whose reals run the paced stream: one connection that lasts seconds. */
const PACED_PORT = 81;
const PACED_REAL_PORT = 9001;
/** 15.6 MiB over 10 s. */
const PACED_10S: PacedServerOptions = { chunkBytes: 64 * 1024, intervalMs: 40, chunks: 250 };
/** 15.6 MiB over 15 s. */
const PACED_15S: PacedServerOptions = { chunkBytes: 64 * 1024, intervalMs: 60, chunks: 250 };
/** 15.6 MiB over 20 s: long enough to stay live while a loaded machine runs a test's steps against it. */
const PACED_20S: PacedServerOptions = { chunkBytes: 64 * 1024, intervalMs: 80, chunks: 250 };
const bytesOf = (paced: PacedServerOptions) => paced.chunkBytes * paced.chunks;

function pacedService(lab: Lab) {
  return { vip: lab.vip, port: PACED_PORT, protocol: "tcp", scheduler: "rr", reals: lab.reals.map((r) => ({ ip: r.ip, port: PACED_REAL_PORT })) };
}

async function startPacedServers(lab: Lab, paced: PacedServerOptions): Promise<StreamServerHandle[]> {
  return Promise.all(lab.reals.map((_, i) => startPacedServer(lab, i + 1, PACED_REAL_PORT, { ...paced, maxSeconds: 120 })));
}

async function counters(natlb: BalancerProcess): Promise<EngineCounters> {
  return (await natlb.status()).counters;
}

async function flowOf(natlb: BalancerProcess, protocol: "tcp" | "udp", clientPort: number): Promise<Connection | undefined> {
  return (await natlb.connections()).find((c) => c.protocol === protocol && c.client.port === clientPort);
}

async function establishedFlow(natlb: BalancerProcess, clientPort: number): Promise<Connection> {
  return waitUntil(
    `the flow from client port ${clientPort} to be ESTABLISHED`,
    async () => {
      const flow = await flowOf(natlb, "tcp", clientPort);
      return flow?.state === "ESTABLISHED" ? flow : undefined;
    },
    15_000,
    100,
  );
}

const flagsOf = (p: CapturedPacket) => p.tcpFlags ?? [];

// ---------------------------------------------------------------------------------------------
// 1. Blind reset attack.

// User space schedules and forwards; the kernel forwards after user space's hand-over; the kernel
// schedules the connection itself (the default). RSTs reach user space in every case.
const BLIND_RESET_VARIANTS = [
  { variant: "user space", settings: { kernelFastPath: false } },
  { variant: "kernel fast path", settings: { kernelFastPath: true, kernelScheduling: false } },
  { variant: "kernel-scheduled", settings: { kernelFastPath: true } },
] as const;

for (const { variant, settings } of BLIND_RESET_VARIANTS) {
  const kernelFastPath = settings.kernelFastPath;
  const kernelScheduled = variant === "kernel-scheduled";
  test.serial(`${variant}: a blind attacker's 20 RSTs and a SYN on a live connection's tuple neither end nor move it`, async (t) => {
    const started = Date.now();
    await withFrontLineLab(
      t,
      { config: (lab) => ({ services: [tcpService(lab, [1, 1, 1]), pacedService(lab)], ...settings }) },
      async ({ lab, natlb }) => {
        const paced = await startPacedServers(lab, PACED_20S);
        const clientPort = 47001;
        // The client's SYN gives its sequence number: it sends no data, so its sequence end stays ISN + 1.
        const synCapture = await startCapture(lab, lab.client.ns, {
          filter: `tcp and src port ${clientPort} and tcp[tcpflags] & tcp-syn != 0`, maxPackets: 1, seconds: 20,
        });
        const streamStart = Date.now();
        const client = startPacedClient(lab, { host: lab.vip, port: PACED_PORT, localPort: clientPort, expectBytes: bytesOf(PACED_20S), timeoutMs: 45_000 });
        const [syn] = await synCapture.finished(15_000);
        if (syn?.tcpSeq === undefined) throw new Error("the client's SYN was not captured");
        const clientSequenceEnd = (syn.tcpSeq + 1) >>> 0;
        const flowBefore = await establishedFlow(natlb, clientPort);
        const realIndex = lab.reals.findIndex((r) => r.ip === flowBefore.real.ip);
        t.true(realIndex >= 0, `the flow's real ${flowBefore.real.ip}`);
        if (kernelFastPath) {
          await waitUntil("the connection to be handed to the kernel fast path", async () => (await natlb.status()).kernelFastPath.flows >= 1, 10_000, 200);
        }

        // What reaches each real from the client's port with SYN or RST set.
        const realCaptures = await Promise.all(
          lab.reals.map((r) =>
            startCapture(lab, r.ns, {
              filter: `tcp and src host ${lab.client.ip} and src port ${clientPort} and tcp[tcpflags] & (tcp-syn|tcp-rst) != 0`,
              maxPackets: 100, seconds: 40,
            }),
          ),
        );
        const before = await counters(natlb);
        const attackStart = Date.now();
        const seqs = blindSequences(21, clientSequenceEnd);
        const spoofed = { src: lab.client.ip, dst: lab.vip, sport: clientPort, dport: PACED_PORT, srcMac: macBytes(lab.client.mac), dstMac: macBytes(lab.gateway.clientMac) };
        const resets = seqs.slice(0, 20).map((seq, i) =>
          tcpFrame({ ...spoofed, seq, ack: randomU32(), tcpFlags: i % 2 === 0 ? TCP_RST : TCP_RST | TCP_ACK, window: 0 }),
        );
        const synOnTuple = tcpFrame({ ...spoofed, seq: seqs[20]!, tcpFlags: TCP_SYN, window: 64240 });
        t.false(client.tool.events.some((e) => e.event === "received"), "the stream is still live when the attack begins");
        t.is(await sendFrames(lab, lab.client.ns, [...resets, synOnTuple], { gapMs: 5 }), 21);
        await sleep(500);
        const afterBlind = await counters(natlb);
        const flowAfterBlind = await flowOf(natlb, "tcp", clientPort);
        const blind = counterDelta(before, afterBlind, ["dropOutOfWindow", "newFlows", "tcpUntracked", "toReal"]);
        t.log(`${variant}: client sequence end ${clientSequenceEnd}, flow on ${flowBefore.real.ip}; after 20 blind RSTs + SYN: ${JSON.stringify(blind)}`);
        t.is(blind.dropOutOfWindow, 20, "every blind RST is dropped as out of window");
        t.is(blind.newFlows, 0, "the SYN on the live tuple made no new flow");
        if (kernelScheduled) {
          // The SYN stays in the kernel, which sends it to the connection's own real (checked below) without moving its tracking.
          t.is(blind.tcpUntracked, 0, "the SYN on the live tuple did not reach user space");
        } else {
          t.true(blind.tcpUntracked >= 1, "the out-of-window SYN was passed on untracked (its real answers it with a challenge ACK)");
        }
        t.truthy(flowAfterBlind, "the flow is still in the map");
        t.is(flowAfterBlind?.real.ip, flowBefore.real.ip, "the connection stays with its real");
        t.is(flowAfterBlind?.state, "ESTABLISHED");
        t.true((flowAfterBlind?.ageMs ?? 0) >= flowBefore.ageMs + (Date.now() - attackStart) - 1000, "the flow is the same one, not a new entry");

        // Optional part: an in-window but inexact RST (an attacker who guessed the window). natlb passes it on
        // and the real answers it with a challenge ACK (RFC 5961), which is what the real would see behind
        // kernel NAT too; natlb keeps the flow, and the connection lives on.
        const inWindow = tcpFrame({ ...spoofed, seq: (clientSequenceEnd + 1000) >>> 0, tcpFlags: TCP_RST, window: 0 });
        t.is(await sendFrames(lab, lab.client.ns, [inWindow]), 1);
        const attackEnd = Date.now();
        await sleep(300);
        const afterInWindow = await counters(natlb);
        const flowAfterInWindow = await flowOf(natlb, "tcp", clientPort);
        const inWindowDelta = counterDelta(afterBlind, afterInWindow, ["dropOutOfWindow", "tcpUntracked", "newFlows"]);
        t.log(`${variant}: in-window inexact RST: ${JSON.stringify(inWindowDelta)}, flow ${flowAfterInWindow?.state} on ${flowAfterInWindow?.real.ip}`);
        t.is(inWindowDelta.dropOutOfWindow, 0, "an in-window RST is not judged out of window");
        t.true(inWindowDelta.tcpUntracked >= 1, "the inexact RST was passed on untracked");
        t.is(flowAfterInWindow?.real.ip, flowBefore.real.ip, "the inexact RST did not end the flow");
        t.is(flowAfterInWindow?.state, "ESTABLISHED");

        // The download completes intact, from the same real.
        const received = await client.received(40_000);
        const sent = await paced[realIndex]!.sentTo(clientPort, 10_000);
        t.log(`${variant}: ${received.bytes} bytes in ${received.ms} ms; the attack ran from ${attackStart - streamStart} to ${attackEnd - streamStart} ms into the stream`);
        t.is(received.bytes, bytesOf(PACED_20S));
        t.is(received.sha256, sent.sha256, "the client got exactly what the real sent");
        t.true(attackEnd - streamStart < received.ms, "the connection was live during the whole attack");

        const atReals = await Promise.all(realCaptures.map((c) => c.stop()));
        atReals.forEach((packets, i) => {
          const summary = packets.map((p) => `${flagsOf(p).join("|")} seq ${p.tcpSeq}`);
          t.log(`${variant}: at ${lab.reals[i]!.ip}: ${summary.join(", ") || "nothing"}`);
          if (i !== realIndex) {
            t.deepEqual(summary, [], `${lab.reals[i]!.ip} got a SYN or RST of the live tuple: the connection was re-scheduled`);
            return;
          }
          const rsts = packets.filter((p) => flagsOf(p).includes("RST"));
          t.deepEqual(rsts.map((p) => p.tcpSeq), [(clientSequenceEnd + 1000) >>> 0], "only the in-window RST reached the real, no blind one");
          t.deepEqual(packets.filter((p) => flagsOf(p).includes("SYN")).map((p) => p.tcpSeq), [seqs[20]], "the SYN went to the connection's own real");
        });
      },
    );
    t.log(`${variant}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
}

// ---------------------------------------------------------------------------------------------
// 2. The gateway's own rules apply to the reals' own traffic.

async function ruleCounters(lab: Lab, table: string, chain: string): Promise<{ packets: number; line: string }[]> {
  const r = await lab.exec(lab.gateway.ns, IPTABLES, ["-t", table, "-L", chain, "-v", "-x", "-n"]);
  return r.stdout
    .split("\n")
    .slice(2)
    .filter((l) => l.trim() !== "")
    .map((line) => ({ packets: Number(line.trim().split(/\s+/)[0]), line: line.trim().replace(/\s+/g, " ") }));
}

test.serial("the gateway's MASQUERADE and FORWARD rules apply to the reals' own traffic, also from the services' real ports; natlb's service traffic keeps working", async (t) => {
  const started = Date.now();
  const OWN_UDP_PORT = 7000;
  const OWN_TCP_PORT = 7001;
  // Real 1 is in both services at weight 0 (no new connections), so its service ports are free for its own
  // sockets: natlb used to take every UDP datagram of a UDP service's real and every TCP segment from a
  // service's real port, whoever it was for.
  const config = (lab: Lab) => ({
    services: [
      tcpService(lab, [0, 1, 1]),
      udpService(lab, { scheduler: "wrr", reals: lab.reals.map((r, i) => ({ ip: r.ip, port: UDP_REAL_PORT, weight: i === 0 ? 0 : 1 })) }),
    ],
  });
  await withFrontLineLab(t, { blobReals: [2, 3], config }, async ({ lab, servers, natlb }) => {
    const [r1, r2] = [lab.reals[0]!, lab.reals[1]!];
    const [echoes, udpPeer, tcpPeer] = await Promise.all([
      Promise.all([startUdpEcho(lab, 2, UDP_REAL_PORT), startUdpEcho(lab, 3, UDP_REAL_PORT)]),
      startPeerServer(lab, lab.client.ns, "udp", OWN_UDP_PORT),
      startPeerServer(lab, lab.client.ns, "tcp", OWN_TCP_PORT),
    ]);
    const gw = lab.gateway.ns;
    await lab.exec(gw, IPTABLES, ["-t", "nat", "-A", "POSTROUTING", "-s", "198.18.1.0/24", "-o", "eth0", "-j", "MASQUERADE"]);

    // natlb's service traffic, so it has live flows (and claimed replies) while the reals talk on their own.
    const viaVip = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 4, sockets: 2, localPortBase: 40100 });
    t.is(viaVip.received, 4);
    const before = await counters(natlb);

    // The reals' own traffic, through the kernel: masqueraded to the gateway's address.
    const own = [
      { what: "r1 UDP from a random port", run: () => udpExchange(lab, r1.ns, lab.client.ip, OWN_UDP_PORT, 0) },
      { what: `r1 UDP from the UDP service's real port ${UDP_REAL_PORT}`, run: () => udpExchange(lab, r1.ns, lab.client.ip, OWN_UDP_PORT, UDP_REAL_PORT) },
      { what: "r2 (serving) UDP from a random port", run: () => udpExchange(lab, r2.ns, lab.client.ip, OWN_UDP_PORT, 0) },
      { what: "r1 TCP from a random port", run: () => tcpExchange(lab, r1.ns, lab.client.ip, OWN_TCP_PORT, 0) },
      { what: `r1 TCP from the TCP service's real port ${REAL_PORT}`, run: () => tcpExchange(lab, r1.ns, lab.client.ip, OWN_TCP_PORT, REAL_PORT) },
    ];
    for (const exchange of own) {
      const result = await exchange.run();
      t.log(`${exchange.what}: sport ${result.sport}, the client side answered ${JSON.stringify(result.reply)}${result.error ? ` (${result.error})` : ""}`);
      t.regex(result.reply ?? "", /^(echo|hello) 198\.18\.0\.1$/, `${exchange.what}: the client side must see the gateway's address (MASQUERADE)`);
    }
    const peers = [...udpPeer.peers(), ...tcpPeer.peers()];
    t.log(`peers seen in the client namespace: ${peers.map((p) => `${p.ip}:${p.port}`).join(", ")}`);
    t.is(peers.length, own.length);
    t.deepEqual([...new Set(peers.map((p) => p.ip))], [lab.gateway.clientIp], "no real's own address reached the client side");
    const masquerade = await ruleCounters(lab, "nat", "POSTROUTING");
    t.log(`nat POSTROUTING: ${masquerade.map((r) => `${r.packets} pkts: ${r.line}`).join("; ")}`);
    t.true((masquerade[0]?.packets ?? 0) >= own.length, "the kernel's MASQUERADE rule saw every own connection");
    const ownDelta = counterDelta(before, await counters(natlb), ["toClient", "toReal", "dropNoFlow", "newFlows"]);
    t.log(`natlb during the reals' own traffic: ${JSON.stringify(ownDelta)}`);
    t.deepEqual(ownDelta, { toClient: 0, toReal: 0, dropNoFlow: 0, newFlows: 0 }, "natlb took none of the reals' own frames");

    // Direct connections from the client to RIP:rport are the kernel's too, and work.
    const direct = await runDownload(lab, { url: blobUrl(r2.ip, REAL_PORT, 4 * MiB, "direct"), conns: 2, count: 2, localPortBase: 22000 });
    t.is(direct.failed, 0, JSON.stringify(direct.results.map((r) => r.error)));
    for (const result of direct.results) {
      t.is(result.real, r2.ip);
      t.is(result.sha256, servers[1]!.served().find((s) => s.peerPort === result.localPort)?.sha256 ?? null);
    }
    const directUdp = await runUdpClient(lab, { host: r2.ip, port: UDP_REAL_PORT, count: 3, localPortBase: 40900 });
    t.is(directUdp.received, 3);
    t.deepEqual([...new Set(directUdp.replies.map((r) => r.from))], [`${r2.ip}:${UDP_REAL_PORT}`]);

    // A FORWARD rule against each real blocks its own traffic (and replies of direct connections), not natlb's.
    for (const real of lab.reals) await lab.exec(gw, IPTABLES, ["-A", "FORWARD", "-s", real.ip, "-j", "DROP"]);
    const peersBefore = udpPeer.peers().length + tcpPeer.peers().length;
    // All at once: each must time out.
    const [blockedDirect, ...blocked] = await Promise.all([
      runDownload(lab, { url: blobUrl(r2.ip, REAL_PORT, MiB, "direct-blocked"), conns: 1, count: 1, localPortBase: 22100, timeoutMs: 3000 }),
      ...own.map((exchange) => exchange.run()),
    ]);
    own.forEach((exchange, i) => {
      const result = blocked[i]!;
      t.log(`with FORWARD DROP, ${exchange.what}: ${JSON.stringify(result.reply)}${result.error ? ` (${result.error})` : ""}`);
      t.is(result.reply, null, `${exchange.what} must be blocked by the gateway's FORWARD rule`);
    });
    t.is(udpPeer.peers().length + tcpPeer.peers().length, peersBefore, "nothing of the reals' own traffic reached the client side");
    t.is(blockedDirect!.failed, 1, "a direct connection's replies are the kernel's: FORWARD drops them");

    const served = servedBy(servers);
    const vipDownload = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 4 * MiB, "vip"), conns: 4, count: 4, localPortBase: 23000 });
    t.is(vipDownload.failed, 0, JSON.stringify(vipDownload.results.map((r) => r.error)));
    for (const result of vipDownload.results) {
      t.is(result.sha256, served().find((s) => s.peerPort === result.localPort)?.sha256 ?? null);
    }
    t.deepEqual([...new Set(vipDownload.results.map((r) => r.real))].sort(), [lab.reals[1]!.ip, lab.reals[2]!.ip], "both serving reals answered through natlb");
    const vipUdp = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 6, sockets: 3, localPortBase: 40200 });
    t.is(vipUdp.received, 6, `lost: ${vipUdp.lost.join(",")}`);
    t.deepEqual([...new Set(vipUdp.replies.map((r) => r.from))], [`${lab.vip}:${UDP_SERVICE_PORT}`]);
    t.true(echoes.every((e) => e.echoes().some((x) => x.peer === lab.client.ip)));
    const forward = await ruleCounters(lab, "filter", "FORWARD");
    t.log(`filter FORWARD: ${forward.map((r) => `${r.packets} pkts: ${r.line}`).join("; ")}`);
    t.true(forward.reduce((sum, r) => sum + r.packets, 0) >= own.length, "the kernel's FORWARD rules saw the reals' own traffic");
    t.log(`${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});

/** served() of every blob server that exists. */
function servedBy(servers: (BlobServerHandle | undefined)[]) {
  return () => servers.flatMap((s) => s?.served() ?? []);
}

// ---------------------------------------------------------------------------------------------
// 3. A spoofed source cannot redirect another host's traffic.

async function kernelNeighbour(lab: Lab, ip: string): Promise<string> {
  const r = await lab.exec(lab.gateway.ns, "ip", ["-j", "neigh", "show", ip, "dev", lab.gateway.backendIf]);
  const entries = JSON.parse(r.stdout || "[]") as { lladdr?: string; state?: string[] }[];
  return entries.map((e) => `${e.lladdr ?? "-"} ${(e.state ?? []).join(",")}`).join("; ") || "none";
}

test.serial("a rogue on the backend LAN spoofing a real's address gets none of that real's traffic; natlb ignores its unsolicited ARP", async (t) => {
  const started = Date.now();
  await withFrontLineLab(
    t,
    { backendRogue: true, config: (lab) => ({ services: [tcpService(lab, [1, 1, 1]), pacedService(lab), udpService(lab)] }) },
    async ({ lab, servers, natlb }) => {
      const rogue = lab.backendRogue!;
      const [echoes, paced] = await Promise.all([startUdpEchoes(lab), startPacedServers(lab, PACED_10S)]);
      const realMacs = lab.reals.map((r) => r.mac);

      // Anything addressed to a real (by IP) that reaches the rogue's port of the switch; at each real, the
      // TCP flow's segments.
      const udpPort = 41000;
      const tcpPort = 41100;
      const [rogueCapture, ...realCaptures] = await Promise.all([
        startCapture(lab, rogue.ns, { filter: `ip and dst net 198.18.1.0/24 and not dst host ${rogue.ip}`, maxPackets: 2000, seconds: 50 }),
        ...lab.reals.map((r) => startCapture(lab, r.ns, { filter: `tcp and src host ${lab.client.ip} and src port ${tcpPort}`, maxPackets: 50_000, seconds: 50 })),
      ]);
      const capturesOpened = Date.now();

      // Live flows: UDP from client port 41000, TCP (a stream lasting 10 s) from 41100.
      const first = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 3, localPortBase: udpPort });
      t.is(first.received, 3);
      const udpReal = first.replies[0]!.real;
      const udpRealIndex = lab.reals.findIndex((r) => r.ip === udpReal);
      const client = startPacedClient(lab, { host: lab.vip, port: PACED_PORT, localPort: tcpPort, expectBytes: bytesOf(PACED_10S), timeoutMs: 45_000 });
      const tcpFlow = await establishedFlow(natlb, tcpPort);
      const tcpReal = tcpFlow.real.ip;
      const tcpRealIndex = lab.reals.findIndex((r) => r.ip === tcpReal);
      t.log(`UDP flow on ${udpReal}, TCP flow on ${tcpReal}; rogue ${rogue.ip} ${rogue.mac}; reals' MACs ${realMacs.join(", ")}`);

      const before = await counters(natlb);
      const fromRogue = { srcMac: macBytes(rogue.mac), dstMac: macBytes(lab.gateway.backendMac) };
      const udpSpoof = { ...fromRogue, src: udpReal, dst: lab.client.ip, sport: UDP_REAL_PORT, dport: udpPort };
      const tcpSpoof = { ...fromRogue, src: tcpReal, dst: lab.client.ip, sport: PACED_REAL_PORT, dport: tcpPort };
      const [s1, s2, s3, s4] = Array.from({ length: 4 }, randomU32);
      const frames = [
        ...Array.from({ length: 5 }, () => udpFrame({ ...udpSpoof, payload: new TextEncoder().encode(`${udpReal} spoofed reply`) })),
        tcpFrame({ ...tcpSpoof, seq: s1!, ack: s2!, tcpFlags: TCP_ACK }),
        tcpFrame({ ...tcpSpoof, seq: s2!, ack: s3!, tcpFlags: TCP_PSH | TCP_ACK, payload: new Uint8Array(100).fill(0x5a) }),
        tcpFrame({ ...tcpSpoof, seq: s3!, ack: s4!, tcpFlags: TCP_SYN | TCP_ACK }),
        tcpFrame({ ...tcpSpoof, seq: s4!, tcpFlags: TCP_RST }),
        // From the real's other service port, to a client port without a flow: not natlb's at all.
        tcpFrame({ ...fromRogue, src: tcpReal, dst: lab.client.ip, sport: REAL_PORT, dport: 41999, seq: s1!, ack: s2!, tcpFlags: TCP_ACK }),
      ];
      t.false(client.tool.events.some((e) => e.event === "received"), "the stream is still live when the rogue strikes");
      const spoofedAt = Date.now() - capturesOpened;
      t.is(await sendFrames(lab, rogue.ns, frames, { gapMs: 5 }), frames.length);
      await sleep(300);
      const afterSpoof = await counters(natlb);
      const spoofDelta = counterDelta(before, afterSpoof, ["toClient", "tcpUntracked", "dropOutOfWindow", "arpRepliesLearned", "arpIgnored"]);
      t.log(`natlb after the rogue's ${frames.length} spoofed IP frames: ${JSON.stringify(spoofDelta)}`);
      t.is(spoofDelta.dropOutOfWindow, 1, "the spoofed RST with a random sequence number is dropped");

      // The UDP flow's next datagrams still reach its real, and answers come back.
      const echoedBefore = echoes[udpRealIndex]!.echoes().filter((e) => e.peerPort === udpPort).length;
      const second = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 5, localPortBase: udpPort });
      t.is(second.received, 5, `lost: ${second.lost.join(",")}`);
      t.deepEqual([...new Set(second.replies.map((r) => r.real))], [udpReal], "the flow stays on its real");
      t.is(echoes[udpRealIndex]!.echoes().filter((e) => e.peerPort === udpPort).length - echoedBefore, 5, "the real got every datagram");

      // A new download through the VIP reaches every real (while the stream goes on), and the stream completes intact.
      const download = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 4 * MiB, "after-spoof"), conns: 3, count: 3, localPortBase: 24000 });
      const received = await client.received(40_000);
      const sent = await paced[tcpRealIndex]!.sentTo(tcpPort, 10_000);
      t.is(received.sha256, sent.sha256);
      t.is(download.failed, 0, JSON.stringify(download.results.map((r) => r.error)));
      const served = servedBy(servers);
      for (const result of download.results) t.is(result.sha256, served().find((s) => s.peerPort === result.localPort)?.sha256 ?? null);
      t.deepEqual([...new Set(download.results.map((r) => r.real))].sort(), lab.reals.map((r) => r.ip).sort());

      const [atRogue, ...atReals] = await Promise.all([rogueCapture.stop(), ...realCaptures.map((c) => c.stop())]);
      const atReal = atReals[tcpRealIndex]!;
      const afterSpoofing = atReal.filter((p) => p.t > spoofedAt + 1000);
      t.log(
        `the rogue struck ${spoofedAt} ms after the captures opened; then ${atRogue.length} frames for the reals reached the rogue, ` +
          `${afterSpoofing.length} segments of the flow reached ${tcpReal} from 1 s after it (${atReal.length} in all)`,
      );
      t.deepEqual(atRogue.map((p) => `${p.srcMac}>${p.dstMac} ${p.src}>${p.dst}:${p.dport}`).slice(0, 10), [], "no frame meant for a real reached the rogue");
      t.true(afterSpoofing.length > 100, "the real kept receiving its flow's segments after the spoofing");
      t.true(atReal.every((p) => p.dstMac === lab.reals[tcpRealIndex]!.mac && p.srcMac === lab.gateway.backendMac));
      t.deepEqual(atReals.filter((_, i) => i !== tcpRealIndex).map((packets) => packets.length), [0, 0], "no other real got the flow's segments");

      // Unsolicited ARP from the rogue claiming the UDP flow's real. natlb must ignore it (it learns only
      // answers to its own requests, which it sends for known neighbours every 30 s and awaits for 3 s):
      // send when it has not asked for 3 s, to tell an ignored claim from a race with a real answer.
      const claim = { senderMac: rogue.mac, senderIp: udpReal };
      const arpFrames = [
        arpFrame({ ...claim, op: "reply", targetMac: lab.gateway.backendMac, targetIp: lab.gateway.backendIp, dstMac: lab.gateway.backendMac }),
        arpFrame({ ...claim, op: "reply", targetMac: lab.gateway.backendMac, targetIp: lab.gateway.backendIp, dstMac: lab.gateway.backendMac }),
        arpFrame({ ...claim, op: "reply", targetMac: "ff:ff:ff:ff:ff:ff", targetIp: udpReal }),
        arpFrame({ ...claim, op: "reply", targetMac: "ff:ff:ff:ff:ff:ff", targetIp: udpReal }),
        arpFrame({ ...claim, op: "request", targetMac: "00:00:00:00:00:00", targetIp: udpReal }),
        arpFrame({ ...claim, op: "request", targetMac: "00:00:00:00:00:00", targetIp: udpReal }),
      ];
      const kernelBefore = await kernelNeighbour(lab, udpReal);
      const observe = await startCapture(lab, rogue.ns, { filter: `ip and dst host ${udpReal}`, maxPackets: 2000, seconds: 40 });
      const observeOpened = Date.now();
      let claimedAt = 0;
      let arpDelta: Record<"arpIgnored" | "arpRepliesLearned" | "arpRequestsSent", number> | undefined;
      for (let attempt = 1; attempt <= 4 && arpDelta === undefined; attempt++) {
        const c0 = await counters(natlb);
        await sleep(3200);
        claimedAt = Date.now() - observeOpened;
        await sendFrames(lab, rogue.ns, arpFrames, { gapMs: 10 });
        const c1 = await counters(natlb);
        const delta = counterDelta(c0, c1, ["arpIgnored", "arpRepliesLearned", "arpRequestsSent"]);
        if (delta.arpRequestsSent === 0) arpDelta = delta;
        else t.log(`attempt ${attempt}: natlb sent ${delta.arpRequestsSent} ARP request(s) in the window, again`);
      }
      if (arpDelta === undefined) throw new Error("natlb kept asking for neighbours: no quiet 3 s window for the ARP claims");
      t.log(`natlb after ${arpFrames.length} unsolicited ARP claims: ${JSON.stringify(arpDelta)}`);
      t.true(arpDelta.arpIgnored >= arpFrames.length, "every unsolicited claim is counted as ignored");
      t.is(arpDelta.arpRepliesLearned, 0, "natlb learned nothing from them");

      // The kernel may take them (an unsolicited reply for a neighbour it knows); natlb reads the kernel's
      // table every 5 s, but its own ARP answer for the real, renewed every 30 s, is not overruled by it.
      const kernelAfter = await kernelNeighbour(lab, udpReal);
      const probe = await udpPaced(lab, lab.client.ns, lab.vip, UDP_SERVICE_PORT, udpPort, 250, 6000);
      const redirected = await observe.stop();
      const kernelLater = await kernelNeighbour(lab, udpReal);
      const perSecond = Array.from({ length: 6 }, (_, s) => `${probe.answered.filter((ms) => ms >= s * 1000 && ms < (s + 1) * 1000).length}/${probe.sent.filter((ms) => ms >= s * 1000 && ms < (s + 1) * 1000).length}`);
      t.log(
        `kernel neighbour ${udpReal}: before the claims ${kernelBefore}; right after ${kernelAfter}; 6 s later ${kernelLater}. ` +
          `In those 6 s the flow's datagrams (every 250 ms) were answered ${perSecond.join(" ")} per second, and ${redirected.length} ` +
          `frames for ${udpReal} reached the rogue (the first ${redirected[0] ? `${Math.round(redirected[0].t - claimedAt)} ms after the claims` : "never"})`,
      );
      t.is(redirected.length, 0, "none of the flow's datagrams went to the rogue, whatever the kernel's table says");
      t.is(probe.answered.length, probe.sent.length, "the flow's real answered every datagram");
      t.log(`${((Date.now() - started) / 1000).toFixed(1)} s`);
    },
  );
});

// ---------------------------------------------------------------------------------------------
// 4. Malformed frames.

interface Malformed {
  what: string;
  frame: Uint8Array;
  /** The frame's source port, to tell at the reals whether it got through (0: a live flow's port). */
  sport: number;
}

function malformedFrames(lab: Lab, livePort: number): Malformed[] {
  const base = { src: lab.client.ip, dst: lab.vip, dport: SERVICE_PORT, srcMac: macBytes(lab.client.mac), dstMac: macBytes(lab.gateway.clientMac), padTo: 60 };
  const out: Malformed[] = [];
  const add = (what: string, sport: number, make: (spec: typeof base & { sport: number }) => Uint8Array) => out.push({ what, sport, frame: make({ ...base, sport }) });
  const l3 = ETH_HEADER_LEN;
  add("truncated TCP header (12 of 20 bytes)", 43101, (s) => {
    const f = tcpFrame({ ...s, seq: 1, tcpFlags: TCP_SYN });
    put16(f, l3 + 2, 20 + 12);
    refreshIpChecksum(f);
    return f;
  });
  add("IP total length past the end of the frame", 43102, (s) => {
    const f = tcpFrame({ ...s, seq: 1, tcpFlags: TCP_SYN });
    put16(f, l3 + 2, 1000);
    refreshIpChecksum(f);
    return f;
  });
  add("TCP data offset 15 in a 20-byte segment (SYN)", 43103, (s) => {
    const f = tcpFrame({ ...s, seq: 1, tcpFlags: TCP_SYN });
    f[l3 + 20 + 12] = 15 << 4;
    refreshTransportChecksum(f, s.src, s.dst);
    return f;
  });
  add("TCP data offset 3 (SYN)", 43104, (s) => {
    const f = tcpFrame({ ...s, seq: 1, tcpFlags: TCP_SYN });
    f[l3 + 20 + 12] = 3 << 4;
    refreshTransportChecksum(f, s.src, s.dst);
    return f;
  });
  add("TCP data offset 15 on a live flow's tuple (ACK)", livePort, (s) => {
    const f = tcpFrame({ ...s, dport: PACED_PORT, seq: 1, ack: 1, tcpFlags: TCP_ACK });
    f[l3 + 20 + 12] = 15 << 4;
    refreshTransportChecksum(f, s.src, s.dst);
    return f;
  });
  add("TCP data offset 4 on a live flow's tuple (RST)", livePort, (s) => {
    const f = tcpFrame({ ...s, dport: PACED_PORT, seq: 1, tcpFlags: TCP_RST });
    f[l3 + 20 + 12] = 4 << 4;
    refreshTransportChecksum(f, s.src, s.dst);
    return f;
  });
  add("IPv4 header length 3 words", 43107, (s) => {
    const f = tcpFrame({ ...s, seq: 1, tcpFlags: TCP_SYN });
    f[l3] = 0x43;
    put16(f, l3 + 10, 0);
    return f;
  });
  add("IPv4 header length 15 words in a 40-byte packet", 43108, (s) => {
    const f = tcpFrame({ ...s, seq: 1, tcpFlags: TCP_SYN });
    f[l3] = 0x4f;
    put16(f, l3 + 10, 0);
    return f;
  });
  add("IP version 6 in an IPv4 frame", 43109, (s) => {
    const f = tcpFrame({ ...s, seq: 1, tcpFlags: TCP_SYN });
    f[l3] = 0x65;
    return f;
  });
  add("truncated UDP header (4 of 8 bytes)", 43110, (s) => {
    const f = buildFrame({ ...s, dport: UDP_SERVICE_PORT, protocol: IPPROTO_UDP, checksum: "none" });
    put16(f, l3 + 2, 20 + 4);
    refreshIpChecksum(f);
    return f;
  });
  return out;
}

test.serial("malformed frames to the VIP are counted as drops and never crash natlb", async (t) => {
  const started = Date.now();
  await withFrontLineLab(
    t,
    { config: (lab) => ({ services: [tcpService(lab, [1, 1, 1]), pacedService(lab), udpService(lab)] }) },
    async ({ lab, servers, natlb }) => {
      const [, paced] = await Promise.all([startUdpEchoes(lab), startPacedServers(lab, PACED_15S)]);
      const livePort = 43000;
      const client = startPacedClient(lab, { host: lab.vip, port: PACED_PORT, localPort: livePort, expectBytes: bytesOf(PACED_15S), timeoutMs: 45_000 });
      const liveFlow = await establishedFlow(natlb, livePort);
      const liveIndex = lab.reals.findIndex((r) => r.ip === liveFlow.real.ip);
      // Anything from the crafted source ports that reaches a real (the lab's switch validates IPv4 headers
      // too, bridge netfilter: natlb's own counters are the first check, this the second).
      const realCaptures = await Promise.all(
        lab.reals.map((r) => startCapture(lab, r.ns, { filter: `src host ${lab.client.ip} and portrange 43100-43199`, maxPackets: 100, seconds: 40 })),
      );
      // All at once; one at a time (to name the one not counted) only when the total is short.
      const malformed = malformedFrames(lab, livePort);
      t.false(client.tool.events.some((e) => e.event === "received"), "the stream is still live when the frames are sent");
      const watched = ["dropMalformed", "dropTruncated", "dropNoFlow", "dropNoService", "newFlows", "dropOutOfWindow", "tcpUntracked"] as const;
      const before = await counters(natlb);
      t.is(await sendFrames(lab, lab.client.ns, malformed.map((m) => m.frame), { gapMs: 20 }), malformed.length);
      await sleep(300);
      let after = await counters(natlb);
      const total = counterDelta(before, after, watched);
      t.log(`${malformed.length} malformed frames: ${JSON.stringify(total)}`);
      const notCounted: string[] = [];
      if (total.dropMalformed + total.dropTruncated !== malformed.length) {
        const outcomes: string[] = [];
        for (const m of malformed) {
          const one = after;
          await sendFrames(lab, lab.client.ns, [m.frame]);
          await sleep(150);
          after = await counters(natlb);
          const delta = counterDelta(one, after, watched);
          outcomes.push(`${m.what}: ${JSON.stringify(delta)}`);
          if (delta.dropMalformed + delta.dropTruncated < 1) notCounted.push(m.what);
        }
        t.log(`one at a time:\n  ${outcomes.join("\n  ")}`);
      }
      const leftBehind = (await natlb.connections()).filter((c) => c.client.port >= 43100 && c.client.port < 43200);
      t.log(`flows left by the malformed SYNs: ${leftBehind.map((c) => `${c.client.port} ${c.state} -> ${c.real.ip}`).join(", ") || "none"}`);
      const atReals = await Promise.all(realCaptures.map((c) => c.stop()));
      const leaked = atReals.flatMap((packets, i) => packets.map((p) => `${lab.reals[i]!.ip} got ${p.src}:${p.sport} > ${p.dst}:${p.dport} ${flagsOf(p).join("|")} len ${p.length}`));
      t.log(`crafted frames that reached a real: ${leaked.join("; ") || "none"}`);

      // natlb is alive and still forwards: status answers, the live stream completes, a new download works.
      t.is(natlb.child.exitCode, null, "natlb is still running");
      const status = await natlb.status();
      t.true(status.counters.rxFrames > 0);
      const received = await client.received(40_000);
      t.is(received.sha256, (await paced[liveIndex]!.sentTo(livePort, 10_000)).sha256, "the live stream completed intact");
      const download = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 8 * MiB, "after-malformed"), conns: 3, count: 3, localPortBase: 25000 });
      t.is(download.failed, 0, JSON.stringify(download.results.map((r) => r.error)));
      const served = servedBy(servers);
      for (const result of download.results) t.is(result.sha256, served().find((s) => s.peerPort === result.localPort)?.sha256 ?? null);

      t.is(total.dropMalformed + total.dropTruncated, malformed.length, "every malformed frame is counted as dropMalformed or dropTruncated");
      t.deepEqual(notCounted, []);
      t.deepEqual(leaked, [], "no malformed frame reached a real");
      t.log(`${((Date.now() - started) / 1000).toFixed(1)} s`);
    },
  );
});

// IP options garbage: a header of the right length whose option list does not parse. A kernel router
// drops such a packet (ip_options_compile: InHdrErrors, and an ICMP parameter problem to the sender);
// natlb must not forward it either. (In the lab the switch's bridge netfilter would drop it before the
// real, so natlb's own counters are what tell.)
test.serial("IPv4 packets to the VIP whose options do not parse are dropped as malformed, as a kernel router drops them", async (t) => {
  const started = Date.now();
  await withFrontLineLab(
    t,
    { config: (lab) => ({ services: [tcpService(lab, [1, 1, 1]), pacedService(lab)] }) },
    async ({ lab, servers, natlb }) => {
      const paced = await startPacedServers(lab, PACED_15S);
      const livePort = 43200;
      const client = startPacedClient(lab, { host: lab.vip, port: PACED_PORT, localPort: livePort, expectBytes: bytesOf(PACED_15S), timeoutMs: 45_000 });
      const liveFlow = await establishedFlow(natlb, livePort);
      const liveIndex = lab.reals.findIndex((r) => r.ip === liveFlow.real.ip);
      const from = { src: lab.client.ip, srcMac: macBytes(lab.client.mac), dstMac: macBytes(lab.gateway.clientMac) };
      const optionLongerThanHeader = Uint8Array.of(0x44, 0x28, 0x05, 0x00); // timestamp, length 40 in a 4-byte option area
      const optionOfLengthZero = Uint8Array.of(0x07, 0x00, 0x00, 0x00); // record route, length 0
      const cases = [
        { what: "an option longer than the header (SYN)", sport: 43211, frame: tcpFrame({ ...from, dst: lab.vip, sport: 43211, dport: SERVICE_PORT, seq: 1, tcpFlags: TCP_SYN, ipOptions: optionLongerThanHeader }) },
        { what: "an option of length 0 (SYN)", sport: 43212, frame: tcpFrame({ ...from, dst: lab.vip, sport: 43212, dport: SERVICE_PORT, seq: 1, tcpFlags: TCP_SYN, ipOptions: optionOfLengthZero }) },
        { what: "an option of length 0 on a live flow's tuple (ACK)", sport: livePort, frame: tcpFrame({ ...from, dst: lab.vip, sport: livePort, dport: PACED_PORT, seq: 1, ack: 1, tcpFlags: TCP_ACK, ipOptions: optionOfLengthZero }) },
      ];
      const outcomes: string[] = [];
      const notDropped: string[] = [];
      let after = await counters(natlb);
      for (const c of cases) {
        const before = after;
        await sendFrames(lab, lab.client.ns, [c.frame]);
        await sleep(150);
        after = await counters(natlb);
        const delta = counterDelta(before, after, ["dropMalformed", "dropTruncated", "newFlows", "toReal", "tcpUntracked"]);
        outcomes.push(`${c.what}: ${JSON.stringify(delta)}`);
        if (delta.dropMalformed + delta.dropTruncated < 1) notDropped.push(c.what);
      }
      const halfOpen = (await natlb.connections()).filter((c) => c.client.port === 43211 || c.client.port === 43212);
      t.log(`natlb, IP options garbage:\n  ${outcomes.join("\n  ")}\n  flows left by them: ${halfOpen.map((c) => `${c.client.port} ${c.state} -> ${c.real.ip}`).join(", ") || "none"}`);

      // The bar: the gateway's kernel, forwarding the same packet to a real directly, drops it.
      const snmp0 = await readSnmpCounters(lab, lab.gateway.ns);
      await sendFrames(lab, lab.client.ns, [tcpFrame({ ...from, dst: lab.reals[0]!.ip, sport: 43213, dport: REAL_PORT, seq: 1, tcpFlags: TCP_SYN, ipOptions: optionOfLengthZero })]);
      await sleep(150);
      const snmp1 = await readSnmpCounters(lab, lab.gateway.ns);
      const kernelHeaderErrors = (snmp1.get("Ip.InHdrErrors") ?? 0) - (snmp0.get("Ip.InHdrErrors") ?? 0);
      const kernelParameterProblems = (snmp1.get("Icmp.OutParmProbs") ?? 0) - (snmp0.get("Icmp.OutParmProbs") ?? 0);
      t.log(`the gateway's kernel, same packet to ${lab.reals[0]!.ip}:${REAL_PORT}: InHdrErrors +${kernelHeaderErrors}, OutParmProbs +${kernelParameterProblems}`);
      t.is(kernelHeaderErrors, 1, "the kernel router drops a packet whose options do not parse");

      t.is(natlb.child.exitCode, null, "natlb is still running");
      const received = await client.received(40_000);
      t.is(received.sha256, (await paced[liveIndex]!.sentTo(livePort, 10_000)).sha256, "the live stream completed intact");
      const download = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 4 * MiB, "after-options"), conns: 3, count: 3, localPortBase: 25100 });
      t.is(download.failed, 0, JSON.stringify(download.results.map((r) => r.error)));
      for (const result of download.results) t.is(result.sha256, servedBy(servers)().find((s) => s.peerPort === result.localPort)?.sha256 ?? null);
      t.deepEqual(notDropped, [], "natlb dropped (dropMalformed) every packet whose IP options do not parse");
      t.log(`${((Date.now() - started) / 1000).toFixed(1)} s`);
    },
  );
});
