// natlb's router duties, with real packets: it is a hop on the path between the clients and the reals,
// so it answers as a router does (RFC 1812) with ICMP errors of its own (native/engine/worker.cc
// hasHopsLeft, fitsEgress, sendIcmpError):
// - a DF packet too long for the egress link gets "fragmentation needed" with that link's MTU, from the
//   gateway; without DF it is dropped (natlb does not fragment);
// - path-MTU discovery therefore works through natlb for TCP, in both directions, in user space and
//   with the kernel fast path (which passes segments too long for the egress to user space);
// - a packet whose TTL runs out here gets "time exceeded" (traceroute), at most 1000 a second with
//   bursts of 50; the rest are counted as not sent.
// Every lab here uses the namespace prefix "fr".
import test, { type ExecutionContext } from "ava";
import type { BalancerStatus } from "../src/balancer";
import { startBalancer, type BalancerProcess } from "../lab/balancerProcess";
import type { BlobServerHandle } from "../lab/blobServer";
import { blobUrl, runDownload } from "../lab/download";
import type { Lab } from "../lab/topology";
import { runUdpClient } from "../lab/udpEcho";
import { sleep, waitUntil } from "../lab/wait";
import { SERVICE_PORT, UDP_SERVICE_PORT, startUdpEchoes, tcpService, udpService, withNatLab } from "./support/lab";
import { startStreamClient, startStreamServer, type StreamServerHandle } from "./support/pacedStream";
import { flushRouteCache, learnedPathMtu, setMtu, tcpPathInfo, udpProbe } from "./support/routerChecks";

const PREFIX = "fr";
const MiB = 1024 * 1024;
/** The smaller MTU of one of the gateway's links; the client, the reals and the other link keep 1500. */
const SMALL_MTU = 1400;
/** natlb re-reads its interfaces' MTUs once a second (engine.cc kMtuRefreshMs): wait a little longer. */
const MTU_REFRESH_WAIT_MS = 1500;
const EMSGSIZE = 90;
const EHOSTUNREACH = 113;
const SO_EE_ORIGIN_ICMP = 2;

type Counters = BalancerStatus["counters"];

function delta(after: Counters, before: Counters, name: keyof Counters): number {
  return Number(after[name]) - Number(before[name]);
}

async function counters(natlb: BalancerProcess): Promise<Counters> {
  return (await natlb.status()).counters;
}

// ---------------------------------------------------------------------------------------------------
// 1. Fragmentation needed for a DF datagram too long for the backend link.

test.serial("a DF UDP datagram too long for the backend link gets fragmentation-needed (MTU 1400) from the gateway quoting VIP:port; without DF it is dropped", async (t) => {
  await withNatLab(t, { offloads: true, reals: 2, prefix: PREFIX, startNatlb: false }, async (env) => {
    const { lab } = env;
    await setMtu(lab, lab.gateway.ns, "eth1", SMALL_MTU);
    env.natlb = await startBalancer(lab, { services: [udpService(lab)] });
    const natlb = env.natlb;
    const echoes = await startUdpEchoes(lab);
    const echoedFrom = (port: number) => echoes.flatMap((e) => e.echoes()).filter((e) => e.peerPort === port);
    const warm = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 4, sockets: 2, localPortBase: 40100 });
    t.is(warm.received, 4, "small datagrams pass both ways");
    const before = await counters(natlb);

    // 1500 bytes with DF, from a client whose own link takes 1500: natlb must not send it on.
    const big = await udpProbe(lab, { to: lab.vip, port: UDP_SERVICE_PORT, sport: 40200, size: 1500, df: true, ttl: 64, recverr: true, waitMs: 800 });
    t.log(`DF 1500: ${JSON.stringify({ wire: big.wire, icmp: big.icmp, errqueue: big.errqueue, replies: big.replies.length })}`);
    t.deepEqual(big.wire, [{ df: true, length: 1500, ttl: 64 }], "the client sent one 1500-byte datagram with DF");
    t.is(big.icmp.length, 1, "exactly one ICMP error came back");
    const error = big.icmp[0]!;
    t.is(error.src, lab.gateway.clientIp, "from the gateway's address on the client's link");
    t.is(error.dst, lab.client.ip);
    t.is(`${error.type}/${error.code}`, "3/4", "destination unreachable, fragmentation needed");
    t.is(error.mtu, SMALL_MTU, "next-hop MTU: the backend link's");
    t.true(error.ipChecksumOk && error.icmpChecksumOk, "valid IP and ICMP checksums");
    t.deepEqual(
      { src: error.quote.src, dst: error.quote.dst, proto: error.quote.proto, sport: error.quote.sport, dport: error.quote.dport, df: error.quote.df, length: error.quote.length },
      { src: lab.client.ip, dst: lab.vip, proto: 17, sport: 40200, dport: UDP_SERVICE_PORT, df: true, length: 1500 },
      "it quotes the datagram as the client sent it, to VIP:port",
    );
    t.true(error.quotedBytes >= 28, "the IP header and 8 bytes of UDP are quoted");
    t.deepEqual(
      big.errqueue,
      [{ errno: EMSGSIZE, origin: SO_EE_ORIGIN_ICMP, type: 3, code: 4, info: SMALL_MTU, offender: lab.gateway.clientIp }],
      "the client's stack matched the error to its socket: EMSGSIZE, path MTU 1400, from the gateway",
    );
    t.is(big.replies.length, 0);
    t.is(echoedFrom(40200).length, 0, "no real received it");

    // The limit is the MTU exactly: 1400 bytes with DF pass (the real gets it), 1401 do not.
    const fits = await udpProbe(lab, { to: lab.vip, port: UDP_SERVICE_PORT, sport: 40201, size: SMALL_MTU, df: true, ttl: 64, waitMs: 600 });
    t.is(fits.icmp.length, 0, "a DF datagram of exactly the MTU gets no error");
    await waitUntil("the 1400-byte datagram at a real", () => echoedFrom(40201).some((e) => e.bytes === SMALL_MTU - 28), 3000).catch(() => undefined);
    t.deepEqual(echoedFrom(40201).map((e) => e.bytes), [SMALL_MTU - 28], "a real received the 1400-byte datagram");
    const over = await udpProbe(lab, { to: lab.vip, port: UDP_SERVICE_PORT, sport: 40202, size: SMALL_MTU + 1, df: true, ttl: 64, waitMs: 600 });
    t.deepEqual(over.icmp.map((i) => `${i.type}/${i.code} mtu ${i.mtu} from ${i.src}`), [`3/4 mtu ${SMALL_MTU} from ${lab.gateway.clientIp}`]);

    // Without DF the same 1500 bytes are dropped, counted, and nothing is sent back.
    const plain = await udpProbe(lab, { to: lab.vip, port: UDP_SERVICE_PORT, sport: 40203, size: 1500, df: false, ttl: 64, waitMs: 800 });
    t.deepEqual(plain.wire, [{ df: false, length: 1500, ttl: 64 }], "the client sent one 1500-byte datagram without DF");
    t.is(plain.icmp.length, 0, "no ICMP error for a datagram without DF");
    t.is(plain.replies.length, 0);
    t.is(echoedFrom(40203).length, 0, "no real received it (natlb does not fragment)");

    const after = await counters(natlb);
    const deltas = {
      icmpFragmentationNeededSent: delta(after, before, "icmpFragmentationNeededSent"),
      dropTooBig: delta(after, before, "dropTooBig"),
      icmpErrorsNotSent: delta(after, before, "icmpErrorsNotSent"),
      icmpTimeExceededSent: delta(after, before, "icmpTimeExceededSent"),
    };
    t.log(`counters: ${JSON.stringify(deltas)}`);
    t.deepEqual(deltas, { icmpFragmentationNeededSent: 2, dropTooBig: 3, icmpErrorsNotSent: 0, icmpTimeExceededSent: 0 });
  });
});

// ---------------------------------------------------------------------------------------------------
// 2. Path-MTU discovery for TCP through natlb.

/** The downloads of `summary` arrived whole, with the body their server logged (sha256). */
async function assertDownloadsIntact(
  t: ExecutionContext, lab: Lab, servers: BlobServerHandle[], summary: Awaited<ReturnType<typeof runDownload>>, bytes: number,
): Promise<void> {
  t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
  const logged = (port: number | null) => servers.flatMap((s) => s.served()).find((e) => e.peerPort === port && e.peer === lab.client.ip);
  await waitUntil("the servers' log lines", () => summary.results.every((r) => logged(r.localPort)), 3000).catch(() => undefined);
  for (const result of summary.results) {
    t.is(result.bytes, bytes);
    t.is(result.sha256, logged(result.localPort)?.sha256 ?? null, `sha256 of the download from port ${result.localPort}`);
  }
}

/** Which of `servers` accepted the connection from client port `port`. */
function serverOf(servers: StreamServerHandle[], port: number): StreamServerHandle | undefined {
  return servers.find((s) => s.acceptedPorts().includes(port));
}

const UPLOAD_PORT = 81;
const STREAM_PORT = 82;
const UPLOAD_REAL_PORT = 9000;
const STREAM_REAL_PORT = 9001;
/** 320 chunks of 128 KiB, one every 20 ms: about 6.4 s, so that it runs on well after the MTU change. */
const STREAM_BYTES = 40 * MiB;

for (const offloads of [true, false]) {
  for (const kernelFastPath of [false, true]) {
    const mode = `offloads ${offloads ? "on" : "off"}, kernelFastPath ${kernelFastPath}`;
    test.serial(`${mode}: TCP path-MTU discovery through natlb both ways: the reals' and the client's segments shrink to a 1400 link, transfers intact`, async (t) => {
      await withNatLab(t, { offloads, reals: 2, prefix: PREFIX, startNatlb: false }, async (env) => {
        const { lab, servers } = env;
        const reals = lab.reals.map((r) => r.ip);
        const service = (port: number, realPort: number) => ({
          vip: lab.vip, port, protocol: "tcp", scheduler: "rr", reals: reals.map((ip) => ({ ip, port: realPort })),
        });
        // a. Downloads: the gateway's link towards the client is the small one. The reals' full-size
        //    segments (MSS 1460, from the client's SYN) must shrink after natlb's fragmentation-needed.
        await setMtu(lab, lab.gateway.ns, "eth0", SMALL_MTU);
        env.natlb = await startBalancer(lab, {
          services: [tcpService(lab, [1, 1]), service(UPLOAD_PORT, UPLOAD_REAL_PORT), service(STREAM_PORT, STREAM_REAL_PORT)],
          kernelFastPath,
        });
        const natlb = env.natlb;
        const start = await counters(natlb);
        const bytes = 32 * MiB;
        const download = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, `pmtu-${mode}`), conns: 2, count: 2, localPortBase: 20000, timeoutMs: 40_000 });
        await assertDownloadsIntact(t, lab, servers, download, bytes);
        t.is(new Set(download.results.map((r) => r.real)).size, 2, "both reals served a download");
        const afterDownload = await counters(natlb);
        const downloadIcmp = delta(afterDownload, start, "icmpFragmentationNeededSent");
        t.true(downloadIcmp > 0, "natlb sent fragmentation-needed to the reals");
        for (const real of lab.reals) t.is(await learnedPathMtu(lab, real.ns, lab.client.ip), SMALL_MTU, `${real.ip} learned the path MTU to the client`);

        // b. Uploads: now the link towards the reals is the small one; the client's segments shrink. The
        //    reals forget the path MTU they learned: they would advertise an MSS that fits it.
        for (const real of lab.reals) await flushRouteCache(lab, real.ns);
        await setMtu(lab, lab.gateway.ns, "eth0", 1500);
        await setMtu(lab, lab.gateway.ns, "eth1", SMALL_MTU);
        await sleep(MTU_REFRESH_WAIT_MS);
        const sinks = await Promise.all(lab.reals.map((_, i) => startStreamServer(lab, i + 1, UPLOAD_REAL_PORT)));
        const uploadBytes = 16 * MiB;
        const uploads = [21000, 21001].map((localPort) =>
          startStreamClient(lab, { host: lab.vip, port: UPLOAD_PORT, localPort, sendBytes: uploadBytes, timeoutMs: 40_000 }),
        );
        const ends = await Promise.all(uploads.map((u) => u.ended(45_000)));
        for (const [i, end] of ends.entries()) {
          const localPort = 21000 + i;
          t.is(end.event, "done", `upload from ${localPort}: ${JSON.stringify(end)}`);
          const sent = uploads[i]!.tool.events.find((e) => e.event === "sent");
          const sink = serverOf(sinks, localPort);
          const received = await sink?.event("received", localPort, 5000).catch(() => undefined);
          t.is(received?.["bytes"], uploadBytes, `the real received every byte from ${localPort}`);
          t.is(received?.["sha256"], sent?.["sha256"], `sha256 of the upload from ${localPort}`);
        }
        const afterUpload = await counters(natlb);
        const uploadIcmp = delta(afterUpload, afterDownload, "icmpFragmentationNeededSent");
        t.true(uploadIcmp > 0, "natlb sent fragmentation-needed to the client");
        t.is(await learnedPathMtu(lab, lab.client.ns, lab.vip), SMALL_MTU, "the client learned the path MTU to the VIP");

        // c. The MTU shrinks in the middle of a stream (with the fast path: of a flow the kernel forwards,
        //    whose too-long segments it must pass to user space).
        //    Again nobody remembers a path MTU (the client's would make it advertise a smaller MSS).
        await setMtu(lab, lab.gateway.ns, "eth1", 1500);
        for (const host of [lab.client, ...lab.reals]) await flushRouteCache(lab, host.ns);
        await sleep(MTU_REFRESH_WAIT_MS);
        t.is(await learnedPathMtu(lab, lab.client.ns, lab.vip), null, "the client forgot the path MTU");
        for (const real of lab.reals) t.is(await learnedPathMtu(lab, real.ns, lab.client.ip), null, `${real.ip} forgot the path MTU`);
        const streamers = await Promise.all(
          lab.reals.map((_, i) => startStreamServer(lab, i + 1, STREAM_REAL_PORT, { sendBytes: STREAM_BYTES, chunkBytes: 128 * 1024, intervalMs: 20 })),
        );
        const beforeStream = await counters(natlb);
        const stream = startStreamClient(lab, { host: lab.vip, port: STREAM_PORT, localPort: 22000, timeoutMs: 40_000 });
        await stream.waitForBytes(4 * MiB, 20_000);
        if (kernelFastPath) {
          await waitUntil("the stream handed over to the kernel", async () => {
            const c = await counters(natlb);
            // Handed over after its handshake, or scheduled by the kernel itself (the default).
            const inKernel = delta(c, beforeStream, "flowsOffloaded") + delta(c, beforeStream, "kernelScheduledFlows");
            return inKernel >= 1 && delta(c, beforeStream, "kernelForwardedPackets") > 100;
          }, 10_000, 100);
        }
        const beforeShrink = await counters(natlb);
        const bytesBeforeShrink = stream.bytes();
        t.is(delta(beforeShrink, beforeStream, "icmpFragmentationNeededSent"), 0, "no error while the links take 1500");
        await setMtu(lab, lab.gateway.ns, "eth0", SMALL_MTU);
        const streamer = serverOf(streamers, 22000);
        // What the streaming real makes of the path a little after the change, while the stream goes on.
        await sleep(MTU_REFRESH_WAIT_MS);
        const midStream = streamer ? await tcpPathInfo(lab, streamer.real.ns, 22000) : null;
        const end = await stream.ended(40_000);
        t.is(end.event, "done", JSON.stringify(end));
        const sent = await streamer?.event("sent", 22000, 5000).catch(() => undefined);
        t.is(end["bytes"], STREAM_BYTES);
        t.is(end["sha256"], sent?.["sha256"], "sha256 of the stream");
        const afterStream = await counters(natlb);
        const streamIcmp = delta(afterStream, beforeShrink, "icmpFragmentationNeededSent");
        const kernelAfterShrink = delta(afterStream, beforeShrink, "kernelForwardedPackets");
        t.log(
          `${mode}: download ${download.results.map((r) => `${r.ms.toFixed(0)} ms`).join(", ")}; fragmentation-needed sent: download ${downloadIcmp}, ` +
            `upload ${uploadIcmp}, mid-stream ${streamIcmp} (MTU changed at ${(bytesBeforeShrink / MiB).toFixed(1)} MiB; ${MTU_REFRESH_WAIT_MS} ms later the real's socket said ${JSON.stringify(midStream)}); ` +
            `dropTooBig ${afterStream.dropTooBig}, icmpErrorsNotSent ${afterStream.icmpErrorsNotSent}, dropTxError ${afterStream.dropTxError}, flowsOffloaded ${afterStream.flowsOffloaded}, ` +
            `kernelForwardedPackets ${afterStream.kernelForwardedPackets} (${kernelAfterShrink} after the change)`,
        );
        if (midStream) t.true(midStream.pmtu <= SMALL_MTU && midStream.mss <= SMALL_MTU - 40, `the real still sends ${midStream.mss}-byte segments (path MTU ${midStream.pmtu})`);
        t.true(streamIcmp > 0, "the MTU change mid-stream got fragmentation-needed too");
        t.is(await learnedPathMtu(lab, streamer!.real.ns, lab.client.ip), SMALL_MTU, "the streaming real learned the new path MTU");
        if (kernelFastPath) t.true(kernelAfterShrink > 0, "the kernel forwarded the flow's smaller segments after the change");
        t.true(afterStream.dropTooBig >= afterStream.icmpFragmentationNeededSent, "every error answers a counted drop");
        for (const s of [...sinks, ...streamers]) await s.stop();
      });
    });
  }
}

// ---------------------------------------------------------------------------------------------------
// 3. Time exceeded, and its rate limit.

test.serial("a datagram to the VIP with TTL 1 gets time-exceeded from the gateway (TTL 2 reaches the real); a burst of 200 is answered at most 50 + 1000/s", async (t) => {
  await withNatLab(t, { offloads: true, reals: 2, prefix: PREFIX, config: (lab) => ({ services: [udpService(lab)] }) }, async ({ lab, natlb }) => {
    const echoes = await startUdpEchoes(lab);
    const echoedFrom = (port: number) => echoes.flatMap((e) => e.echoes()).filter((e) => e.peerPort === port);
    const warm = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 4, sockets: 2, localPortBase: 40100 });
    t.is(warm.received, 4);
    const before = await counters(natlb!);

    // traceroute's first probe: TTL 1 expires at the gateway.
    const hop1 = await udpProbe(lab, { to: lab.vip, port: UDP_SERVICE_PORT, sport: 40300, size: 60, df: false, ttl: 1, recverr: true, waitMs: 800 });
    t.log(`TTL 1: ${JSON.stringify({ wire: hop1.wire, icmp: hop1.icmp, errqueue: hop1.errqueue })}`);
    t.deepEqual(hop1.wire, [{ df: false, length: 60, ttl: 1 }]);
    t.is(hop1.icmp.length, 1);
    const error = hop1.icmp[0]!;
    t.is(error.src, lab.gateway.clientIp, "from the gateway's address on the client's link");
    t.is(`${error.type}/${error.code}`, "11/0", "time exceeded in transit");
    t.true(error.ipChecksumOk && error.icmpChecksumOk);
    t.deepEqual(
      { dst: error.quote.dst, dport: error.quote.dport, sport: error.quote.sport, ttl: error.quote.ttl },
      { dst: lab.vip, dport: UDP_SERVICE_PORT, sport: 40300, ttl: 1 },
      "it quotes the datagram to VIP:port",
    );
    t.deepEqual(hop1.errqueue, [{ errno: EHOSTUNREACH, origin: SO_EE_ORIGIN_ICMP, type: 11, code: 0, info: 0, offender: lab.gateway.clientIp }]);
    t.is(hop1.replies.length, 0);
    // The second probe (TTL 2) gets through: natlb is exactly one hop.
    const hop2 = await udpProbe(lab, { to: lab.vip, port: UDP_SERVICE_PORT, sport: 40301, size: 60, df: false, ttl: 2, waitMs: 800 });
    t.is(hop2.icmp.length, 0);
    t.deepEqual(hop2.replies.map((r) => r.sender), [`${lab.vip}:${UDP_SERVICE_PORT}`], "TTL 2 is answered by a real, from the VIP");
    t.is(echoedFrom(40300).length, 0, "the expired datagram reached no real");
    const single = await counters(natlb!);
    t.is(delta(single, before, "icmpTimeExceededSent"), 1);
    t.is(delta(single, before, "dropTtlExpired"), 1);

    // A burst of 200: the bucket holds 50 and refills at 1000/s.
    await sleep(200);
    const beforeBurst = await counters(natlb!);
    const burst = await udpProbe(lab, { to: lab.vip, port: UDP_SERVICE_PORT, sport: 40310, size: 60, df: false, ttl: 1, count: 200, waitMs: 1500 });
    const afterBurst = await counters(natlb!);
    const answered = burst.icmp.length;
    const sent = delta(afterBurst, beforeBurst, "icmpTimeExceededSent");
    const notSent = delta(afterBurst, beforeBurst, "icmpErrorsNotSent");
    const bound = 50 + Math.ceil(burst.sendSeconds * 1000) + 5;
    t.log(`burst: 200 sent in ${(burst.sendSeconds * 1000).toFixed(2)} ms, ${answered} answered (bound ${bound}); counters: icmpTimeExceededSent +${sent}, icmpErrorsNotSent +${notSent}, dropTtlExpired +${delta(afterBurst, beforeBurst, "dropTtlExpired")}`);
    t.is(burst.sent, 200);
    t.is(burst.wire.length, 200, "all 200 left the client");
    t.true(burst.icmp.every((i) => i.type === 11 && i.code === 0 && i.src === lab.gateway.clientIp));
    t.is(delta(afterBurst, beforeBurst, "dropTtlExpired"), 200, "every expired datagram is counted");
    t.is(answered, sent, "every error counted as sent reached the client");
    t.is(sent + notSent, 200, "each expired datagram was answered or counted as not answered");
    t.true(answered <= bound, `at most the burst of 50 plus 1000/s: ${answered} > ${bound}`);
    t.true(answered >= 50, `the burst allows 50 answers at once, got ${answered}`);

    // The limit is a rate: a second later the bucket is full again.
    await sleep(1000);
    const later = await udpProbe(lab, { to: lab.vip, port: UDP_SERVICE_PORT, sport: 40320, size: 60, df: false, ttl: 1, count: 20, waitMs: 800 });
    t.is(later.icmp.length, 20, "20 more a second later are all answered");
  });
});
