// ICMP for VIPs with real packets: pings to a VIP are answered by natlb, and an ICMP error that a
// router on the client's path sends to the VIP (fragmentation needed) reaches the flow's real server,
// translated, so path-MTU discovery works through the balancer.
import test from "ava";
import { startCapture } from "../lab/capture";
import { pingFrom, sendFragmentationNeeded } from "../lab/icmpProbe";
import { runUdpClient } from "../lab/udpEcho";
import { withNatLab, withUdpLab } from "./support/lab";

test("pings to a VIP are answered by natlb from the VIP", async (t) => {
  await withNatLab(t, { offloads: true }, async ({ lab, natlb }) => {
    const ping = await pingFrom(lab, lab.client.ns, lab.vip, 3);
    t.is(ping.received, 3);
    t.deepEqual([...new Set(ping.from)], [lab.vip]);
    t.is((await natlb!.status()).counters.icmpEchoReplies, 3);
  });
});

test("an ICMP fragmentation-needed error about a flow reaches its real server, translated", async (t) => {
  await withUdpLab(t, async ({ lab, natlb }) => {
      const exchange = await runUdpClient(lab, { host: lab.vip, port: 53, count: 1, localPortBase: 40500 });
      t.is(exchange.received, 1);
      const realIp = exchange.replies[0]!.real;
      const real = lab.reals.find((r) => r.ip === realIp)!;
      const capture = await startCapture(lab, real.ns, { filter: "icmp", maxPackets: 10, seconds: 20 });
      await sendFragmentationNeeded(lab, lab.client.ns, lab.vip, `${lab.vip}:53-${lab.client.ip}:40500`);
      // The unrelated flow (another client port) is not translated: natlb counts it as without flow.
      await sendFragmentationNeeded(lab, lab.client.ns, lab.vip, `${lab.vip}:53-${lab.client.ip}:40999`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const packets = await capture.stop();
      t.is(packets.length, 1, JSON.stringify(packets));
      const icmp = packets[0]!;
      t.is(icmp.dst, real.ip, "the outer destination is the real server");
      t.is(icmp.src, lab.client.ip);
      t.is(icmp.icmpType, 3);
      t.is(icmp.icmpCode, 4);
      t.is(icmp.ipChecksum, "ok");
      t.is(icmp.l4Checksum, "full", "the ICMP checksum covers the translated quote");
      const counters = (await natlb!.status()).counters;
      t.is(counters.icmpErrorsToReal, 1);
      t.is(counters.dropNoFlow, 1);
    },
  );
});

test("an ICMP error a real server sends about a flow reaches the client from the VIP, translated", async (t) => {
  await withNatLab(
    t,
    {
      offloads: true,
      // No UDP server listens on the real: its kernel answers with "port unreachable".
      config: (lab) => ({ services: [{ vip: lab.vip, port: 53, protocol: "udp", reals: [{ ip: lab.reals[0]!.ip, port: 5353 }] }] }),
    },
    async ({ lab, natlb }) => {
      const capture = await startCapture(lab, lab.client.ns, { filter: "icmp", maxPackets: 10, seconds: 20 });
      const exchange = await runUdpClient(lab, { host: lab.vip, port: 53, count: 1, localPortBase: 40600, timeoutMs: 500 });
      t.is(exchange.received, 0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const packets = await capture.stop();
      const fromVip = packets.filter((p) => p.src === lab.vip);
      t.is(fromVip.length, 1, JSON.stringify(packets));
      const icmp = fromVip[0]!;
      t.is(icmp.dst, lab.client.ip);
      t.is(icmp.icmpType, 3);
      t.is(icmp.icmpCode, 3);
      t.is(icmp.ipChecksum, "ok");
      t.is(icmp.l4Checksum, "full");
      t.is((await natlb!.status()).counters.icmpErrorsToClient, 1);
    },
  );
});
