// End to end, full NAT (forwarding "fullnat"): the lab's full-NAT topology (the reals' default route is
// a LAN router that reaches no client, natlb two-armed with pool addresses on the LAN), real packets.
// The reals see natlb's pool address as the client and answer it by plain routing; natlb turns the
// replies back into VIP -> client.
import test from "ava";
import { startCapture } from "../lab/capture";
import { blobUrl, runDownload } from "../lab/download";
import { runUdpClient } from "../lab/udpEcho";
import type { Lab } from "../lab/topology";
import { startBalancer } from "../lab/balancerProcess";
import { pingFrom, sendFragmentationNeeded } from "../lab/icmpProbe";
import { assertChecksAndPersistence, checkedAndPersistent } from "./support/checksAndPersistence";
import { startStreamClient, startStreamServer } from "./support/pacedStream";
import { REAL_PORT, SERVICE_PORT, UDP_REAL_PORT, UDP_SERVICE_PORT, gatewaySnapshot, startUdpEchoes, withNatLab } from "./support/lab";

const MiB = 1024 * 1024;
const PREFIX = "fn";
/** The reset case's stream service: VIP:81 -> reals:9000 (stream servers). */
const STREAM_PORT = 81;
const STREAM_REAL_PORT = 9000;

function fullNatService(lab: Lab, weights: number[], pool: Record<string, unknown> = {}) {
  return {
    vip: lab.vip,
    port: SERVICE_PORT,
    forwarding: "fullnat",
    fullnat: { localAddresses: [...lab.fullNatPool], ...pool },
    scheduler: "wrr",
    reals: weights.map((weight, i) => ({ ip: lab.reals[i]!.ip, port: REAL_PORT, weight })),
  };
}

function fullNatUdpService(lab: Lab, reals: number, pool: Record<string, unknown> = {}) {
  return {
    vip: lab.vip,
    port: UDP_SERVICE_PORT,
    protocol: "udp",
    forwarding: "fullnat",
    fullnat: { localAddresses: [...lab.fullNatPool], ...pool },
    scheduler: "rr",
    reals: lab.reals.slice(0, reals).map((r) => ({ ip: r.ip, port: UDP_REAL_PORT })),
  };
}

const VARIANTS = [
  { name: "offloads on", offloads: true, receivePath: "af_packet", mib: 512 },
  { name: "offloads off, af_xdp", offloads: false, receivePath: "af_xdp", mib: 64 },
] as const;

for (const variant of VARIANTS) test.serial(`fullnat, ${variant.name}: a ${variant.mib} MiB download arrives intact; the real sees a pool address as the client and has no route via natlb; kernel state restored`, async (t) => {
  await withNatLab(t, { offloads: variant.offloads, reals: 2, fullNat: true, prefix: PREFIX, startNatlb: false, blobReals: [1, 2] }, async (env) => {
    const { lab, servers } = env;
    // The reals' routes: default via the LAN router, which reaches no client; nothing via natlb.
    for (const real of lab.reals) {
      const routes = (await lab.exec(real.ns, "ip", ["-j", "route", "show"])).stdout;
      t.false(routes.includes(lab.gateway.backendIp), `a route via natlb at ${real.ip}: ${routes}`);
      t.regex((await lab.exec(real.ns, "ip", ["route", "get", lab.client.ip])).stdout, new RegExp(`via ${lab.lanRouter!.ip.replace(/\./g, "\\.")}`));
    }
    t.is((await pingFrom(lab, lab.reals[0]!.ns, lab.client.ip, 1)).received, 0, "the real cannot reach the client by itself");
    const warm = await pingFrom(lab, lab.reals[0]!.ns, lab.fullNatPool[0]!, 1);
    t.is(warm.received, 1, "the real reaches the pool address (the kernel answers its ARP)");
    await pingFrom(lab, lab.reals[1]!.ns, lab.fullNatPool[1]!, 1);
    await pingFrom(lab, lab.reals[1]!.ns, lab.fullNatPool[0]!, 1);
    await pingFrom(lab, lab.reals[0]!.ns, lab.fullNatPool[1]!, 1);
    // The kernel fast path's redirect uses the gateway's neighbour table: the client's entry before the snapshot.
    t.is((await pingFrom(lab, lab.gateway.ns, lab.client.ip, 1)).received, 1, "the gateway reaches the client");
    const before = await gatewaySnapshot(lab);
    const natlb = await startBalancer(lab, { services: [fullNatService(lab, [1, 1])], receivePath: variant.receivePath });
    env.natlb = natlb;
    const status0 = await natlb.status();
    t.is(status0.services[0]!.forwarding, "fullnat");
    t.deepEqual(status0.services[0]!.fullnat, { localAddresses: [...lab.fullNatPool], localPorts: { first: 1024, last: 32767 } });

    const atReal = await startCapture(lab, lab.reals[0]!.ns, { filter: `tcp port ${REAL_PORT}`, maxPackets: 4000, seconds: 60, snaplen: 96 });
    const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, variant.mib * MiB, "fn-big"), conns: 2, count: 2, localPortBase: 21_000, timeoutMs: 30_000 + variant.mib * 200 });
    const atRealPackets = await atReal.stop();

    t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
    for (const result of summary.results) {
      t.is(result.bytes, variant.mib * MiB);
      // The server logs the peer natlb gave it: a pool address and port, not the client's.
      const served = servers.find((s) => s.real.ip === result.real)?.served().filter((e) => e.bytes === variant.mib * MiB).pop();
      t.truthy(served, `no server logged a ${variant.mib} MiB download for ${result.real}`);
      t.is(result.sha256, served?.sha256 ?? null, "sha256 at the client differs from the server's");
      t.true(lab.fullNatPool.includes(served?.peer ?? ""), `the server's peer ${served?.peer}: not a pool address`);
    }
    t.is(new Set(summary.results.map((r) => r.real)).size, 2, "the two equal reals took one download each");

    const real = lab.reals[0]!;
    const toReal = atRealPackets.filter((p) => p.dport === REAL_PORT);
    const fromReal = atRealPackets.filter((p) => p.sport === REAL_PORT);
    t.true(toReal.length > 20 && fromReal.length > 20, `${toReal.length} frames in, ${fromReal.length} out at ${real.ip}`);
    for (const p of toReal) {
      t.true(lab.fullNatPool.includes(p.src), `source ${p.src}: not a pool address`);
      t.is(p.dst, real.ip);
      t.true(p.sport >= 1024 && p.sport <= 32767, `local port ${p.sport}`);
      t.not(p.l4Checksum, "bad", "the rewritten TCP checksum");
    }
    t.false(atRealPackets.some((p) => p.src === lab.client.ip || p.dst === lab.client.ip), "the client's address never reaches the real");
    for (const p of fromReal) t.is(p.dstMac, lab.gateway.backendMac, "the real answers natlb directly (the pool address is on-link)");

    const c = (await natlb.status()).counters;
    t.true(c.toReal > 0 && c.toClient > 0, JSON.stringify(c));
    t.is(c.flowsOffloaded, 2, "each full-NAT connection was handed over to the kernel fast path");
    if (variant.receivePath === "af_xdp") t.true(c.rxSteeredFrames > 0, "the XDP program steered frames");
    t.is(c.dropFullnatPortsExhausted + c.dropNoFlow + c.dropNoRoute + c.dropNoNeighbour + c.dropMalformed + c.dropTxError + c.dropOutOfWindow, 0, JSON.stringify(c));
    t.regex((await natlb.cli(["status"])).stdout, /198\.18\.0\.100:80 +wrr fullnat from 198\.18\.1\.3,198\.18\.1\.4 ports 1024-32767/);

    await natlb.stop();
    env.natlb = undefined;
    t.deepEqual(await gatewaySnapshot(lab), before, "the gateway's kernel state is as before natlb ran");
  });
});

test.serial("fullnat: weights 2:1 over 300 short connections give 67/33 within 5 points", async (t) => {
  await withNatLab(
    t,
    { offloads: true, reals: 2, fullNat: true, prefix: PREFIX, blobReals: [1, 2], config: (lab) => ({ services: [fullNatService(lab, [2, 1])] }) },
    async ({ lab, natlb }) => {
      const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 2048, "fn-small"), conns: 10, count: 300, localPortBase: 30_000, timeoutMs: 60_000 });
      t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error).slice(0, 3)));
      const share = (ip: string) => (100 * summary.results.filter((r) => r.real === ip).length) / summary.results.length;
      const expected = [200 / 3, 100 / 3];
      lab.reals.forEach((real, i) => {
        const actual = share(real.ip);
        t.true(Math.abs(actual - expected[i]!) <= 5, `${real.ip}: ${actual.toFixed(1)} % (expected ${expected[i]!.toFixed(1)} ± 5)`);
      });
      const c = (await natlb!.status()).counters;
      t.true(c.newFlows >= 300);
      t.is(c.dropFullnatPortsExhausted, 0);
    },
  );
});

test.serial("fullnat: UDP through the VIP; a pool of two ports refuses a third flow, counted, while the two go on", async (t) => {
  await withNatLab(
    t,
    {
      offloads: true, reals: 1, fullNat: true, prefix: PREFIX, blobReals: [],
      config: (lab) => ({ services: [fullNatUdpService(lab, 1, { localAddresses: [lab.fullNatPool[0]!], localPorts: { first: 5000, last: 5001 } })] }),
    },
    async ({ lab, natlb }) => {
      const [echo] = await startUdpEchoes(lab);
      const first = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 10, sockets: 2, localPortBase: 40_000 });
      t.is(first.received, 10, JSON.stringify(first).slice(0, 400));
      for (const reply of first.replies) t.is(reply.from, `${lab.vip}:${UDP_SERVICE_PORT}`);
      const peers = new Set(echo!.echoes().map((e) => `${e.peer}:${e.peerPort}`));
      t.deepEqual([...peers].sort(), [`${lab.fullNatPool[0]}:5000`, `${lab.fullNatPool[0]}:5001`], "the real saw the pool address and the two ports");
      const conns = (await natlb!.cli(["conns"])).stdout;
      for (const port of [5000, 5001]) t.regex(conns, new RegExp(`from ${lab.fullNatPool[0]!.replace(/\./g, "\\.")}:${port}`), conns);

      const refused = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 2, sockets: 2, localPortBase: 41_000, timeoutMs: 400 });
      t.is(refused.received, 0, "no port left: no answer");
      const c = (await natlb!.status()).counters;
      t.is(c.dropFullnatPortsExhausted, 2, JSON.stringify(c));
      t.is(c.newFlows, 2);
      // The kernel leaves the replies to natlb because natlb claims their tuple, real -> pool address:port.
      const claims = (await lab.exec(lab.gateway.ns, "/usr/sbin/nft", ["list", "set", "netdev", "natlb", "replies"])).stdout;
      for (const port of [5000, 5001]) {
        t.regex(claims, new RegExp(`${lab.reals[0]!.ip.replace(/\./g, "\\.")} \\. udp \\. ${UDP_REAL_PORT} \\. ${lab.fullNatPool[0]!.replace(/\./g, "\\.")} \\. ${port}\\b`), claims);
      }

      const again = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 4, sockets: 2, localPortBase: 40_000 });
      t.is(again.received, 4, "the flows holding the ports go on");

      // Datagrams larger than the MTU: their later fragments get both addresses, like their first.
      const large = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 4, sockets: 2, localPortBase: 40_000, payloadBytes: 4000 });
      t.is(large.received, 4, JSON.stringify(large).slice(0, 300));
      const after = (await natlb!.status()).counters;
      t.true(after.fragmentsForwarded >= 8, `fragmentsForwarded ${after.fragmentsForwarded}`);
      t.is(after.dropFragment, 0);
    },
  );
});

test.serial("fullnat: ICMP errors are translated both ways (port unreachable to the client, fragmentation needed to the real)", async (t) => {
  await withNatLab(
    t,
    {
      offloads: true, reals: 1, fullNat: true, prefix: PREFIX, blobReals: [],
      // No UDP server listens on the real: its kernel answers the pool address with "port unreachable".
      config: (lab) => ({ services: [fullNatUdpService(lab, 1, { localAddresses: [lab.fullNatPool[0]!] })] }),
    },
    async ({ lab, natlb }) => {
      const real = lab.reals[0]!;
      const atClient = await startCapture(lab, lab.client.ns, { filter: "icmp", maxPackets: 10, seconds: 20 });
      const exchange = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 1, localPortBase: 40_600, timeoutMs: 500 });
      t.is(exchange.received, 0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const clientPackets = await atClient.stop();
      const fromVip = clientPackets.filter((p) => p.src === lab.vip);
      t.is(fromVip.length, 1, JSON.stringify(clientPackets));
      t.is(fromVip[0]!.dst, lab.client.ip);
      t.is(`${fromVip[0]!.icmpType}/${fromVip[0]!.icmpCode}`, "3/3");
      t.is(fromVip[0]!.ipChecksum, "ok");
      t.is(fromVip[0]!.l4Checksum, "full", "the ICMP checksum covers the translated quote");
      t.is((await natlb!.status()).counters.icmpErrorsToClient, 1);

      // A router on the client's path tells the VIP that natlb's reply to the client was too big: the
      // real gets it from the pool address, about its own packet.
      const atReal = await startCapture(lab, real.ns, { filter: "icmp", maxPackets: 10, seconds: 20 });
      await sendFragmentationNeeded(lab, lab.client.ns, lab.vip, `${lab.vip}:${UDP_SERVICE_PORT}-${lab.client.ip}:40600`);
      await sendFragmentationNeeded(lab, lab.client.ns, lab.vip, `${lab.vip}:${UDP_SERVICE_PORT}-${lab.client.ip}:40999`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const realPackets = (await atReal.stop()).filter((p) => p.icmpType === 3 && p.icmpCode === 4);
      t.is(realPackets.length, 1, JSON.stringify(realPackets));
      t.is(`${realPackets[0]!.src}>${realPackets[0]!.dst}`, `${lab.fullNatPool[0]}>${real.ip}`);
      t.is(realPackets[0]!.l4Checksum, "full");
      const c = (await natlb!.status()).counters;
      t.is(c.icmpErrorsToReal, 1);
      t.is(c.dropNoFlow, 1, "the error about no flow is counted");
    },
  );
});

test.serial("fullnat: a local address that is not natlb's, or faces clients, is refused at start and over the control socket, the field named", async (t) => {
  await withNatLab(t, { offloads: true, reals: 1, fullNat: true, prefix: PREFIX, blobReals: [], startNatlb: false }, async (env) => {
    const { lab } = env;
    const notOurs = { services: [fullNatService(lab, [1], { localAddresses: ["198.18.1.77"] })] };
    const refused = await t.throwsAsync(startBalancer(lab, notOurs, { readyTimeoutMs: 10_000 }));
    t.regex(refused!.message, /services\[0\]\.fullnat\.localAddresses\[0\]: 198\.18\.1\.77 is not an address of an interface natlb works on/);
    const clientSide = { services: [fullNatService(lab, [1], { localAddresses: [lab.gateway.clientIp] })] };
    const refusedClient = await t.throwsAsync(startBalancer(lab, clientSide, { readyTimeoutMs: 10_000 }));
    t.regex(refusedClient!.message, /services\[0\]\.fullnat\.localAddresses\[0\]: 198\.18\.0\.1 is on eth0, which faces clients/);

    const natlb = await startBalancer(lab, { services: [fullNatService(lab, [1])] });
    env.natlb = natlb;
    const bad = await natlb.cli(["service", "add", `${lab.vip2}:${SERVICE_PORT}`, "--forwarding", "fullnat", "--local-address", "198.18.1.77"]);
    t.not(bad.code, 0);
    t.regex(bad.stderr, /services\[1\]\.fullnat\.localAddresses\[0\]: 198\.18\.1\.77 is not an address/);
    const missing = await natlb.cli(["service", "add", `${lab.vip2}:${SERVICE_PORT}`, "--forwarding", "fullnat"]);
    t.not(missing.code, 0);
    t.regex(missing.stderr, /at fullnat: missing: a "fullnat" service needs its source pool/);
    const added = await natlb.cli(["service", "add", `${lab.vip2}:${SERVICE_PORT}`, "--forwarding", "fullnat", "--local-address", lab.fullNatPool[1]!]);
    t.is(added.code, 0, added.stderr);
    const status = await natlb.status();
    t.deepEqual(status.services.map((s) => [s.vip, s.forwarding, s.fullnat?.localAddresses]), [[lab.vip, "fullnat", [...lab.fullNatPool]], [lab.vip2, "fullnat", [lab.fullNatPool[1]]]]);
  });
});

test.serial("fullnat: a real whose health check fails gets no new connections; persistence keeps a client on one real", async (t) => {
  await withNatLab(
    t,
    { offloads: true, reals: 2, fullNat: true, prefix: PREFIX, blobReals: [1, 2], config: (lab) => ({ services: checkedAndPersistent(lab, fullNatService(lab, [1, 1])) }) },
    (env) => assertChecksAndPersistence(t, env, "fn"),
  );
});

test.serial('fullnat, deadRealFlows "reset": removing a real resets both ends of its TCP stream, the real\'s end from the local address and port', async (t) => {
  await withNatLab(t, { offloads: true, reals: 2, fullNat: true, prefix: PREFIX, startNatlb: false, blobReals: [] }, async (env) => {
    const { lab } = env;
    const chunk = 64 * 1024;
    const total = 200 * chunk; // 20 s at one chunk per 100 ms: still running when the real goes
    const streams = await Promise.all(lab.reals.map((_, i) => startStreamServer(lab, i + 1, STREAM_REAL_PORT, { sendBytes: total, chunkBytes: chunk, intervalMs: 100 })));
    const service = { ...fullNatService(lab, [1, 1]), port: STREAM_PORT, deadRealFlows: "reset", reals: lab.reals.map((r) => ({ ip: r.ip, port: STREAM_REAL_PORT })) };
    const natlb = await startBalancer(lab, { services: [service] });
    env.natlb = natlb;
    const client = startStreamClient(lab, { host: lab.vip, port: STREAM_PORT, localPort: 41_000, timeoutMs: 30_000 });
    try {
      await client.waitForBytes(8 * chunk, 10_000);
      const index = streams.findIndex((s) => s.acceptedPorts().length > 0);
      t.not(index, -1, "a real accepted the stream");
      const peerPort = streams[index]!.acceptedPorts()[0]!;
      t.not(peerPort, 41_000, "the real sees natlb's local port, not the client's");
      const real = lab.reals[index]!;
      const before = (await natlb.status()).counters;
      const removed = await natlb.cli(["real", "remove", `${lab.vip}:${STREAM_PORT}`, `${real.ip}:${STREAM_REAL_PORT}`]);
      t.is(removed.code, 0, removed.stderr);
      const end = await client.ended(5000);
      t.is(end["reason"], "ECONNRESET", JSON.stringify(end));
      t.true(client.bytes() < total, "the real was removed in the middle of the stream");
      const closed = await streams[index]!.event("closed", peerPort, 5000);
      t.is(closed["reason"], "ECONNRESET", "the real's server saw its connection reset (from the local address and port it knows)");
      const after = (await natlb.status()).counters;
      t.deepEqual(
        { ended: after.deadRealFlowsEnded - before.deadRealFlowsEnded, resets: after.tcpResetsSent - before.tcpResetsSent },
        { ended: 1, resets: 2 },
      );
    } finally {
      await client.stop();
      for (const s of streams) await s.stop();
    }
  });
});
