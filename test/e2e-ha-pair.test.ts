// The active/backup pair with keepalived (README: High availability), with real packets: two natlb
// gateways, keepalived (VRRP) in each deciding which is master and telling natlb through
// `natlb ha notify`. The backup answers no ARP for the VIPs; the master that takes over announces them,
// and carries new connections.
import test from "ava";
import { requestControl } from "../src/control";
import { watchEvents } from "../src/control/eventsClient";
import type { NatlbEvent } from "../src/events";
import { startCapture } from "../lab/capture";
import { blobSha256 } from "../lab/blobContent";
import { blobUrl, runDownload } from "../lab/download";
import { clientReceivedBytes } from "../lab/downloadProgress";
import { RESUMED_BYTES, measureFailoverGap } from "../lab/failoverGap";
import { waitUntil } from "../lab/wait";
import { ECHO_SERVICE_PORT, HA_SERVICE_PORT, TAKEOVER_ARP_ROUNDS, syncConfig, withHaPair } from "./support/haPair";
import { holdConnections } from "./support/heldConnections";

test.serial("the backup stays silent for the VIPs; when the master dies, keepalived makes the backup master, which announces the VIPs and carries new connections", async (t) => {
  await withHaPair(t, {}, async ({ lab, natlb: [g1, g2] }) => {
    const [gw1, gw2] = lab.gateways;
    const capture = await startCapture(lab, lab.client.ns, { ifname: "eth0", filter: "arp", seconds: 60 });
    const events: NatlbEvent[] = [];
    const stopEvents = new AbortController();
    const watching = (async () => {
      for await (const event of watchEvents(g2.socket, { after: 0, signal: stopEvents.signal })) events.push(event);
    })().catch(() => undefined);

    // Through the master: the client asks for the VIP's MAC, g1 answers, g2 does not.
    await lab.exec(lab.client.ns, "/usr/sbin/ip", ["neigh", "flush", "dev", "eth0"]);
    const small = 4 * 1024 * 1024;
    const first = await runDownload(lab, { url: blobUrl(lab.vip, HA_SERVICE_PORT, small, "before"), timeoutMs: 20_000 });
    t.is(first.ok, 1, JSON.stringify(first.results));
    t.is(first.results[0]!.sha256, blobSha256("before", small));
    const g2Before = await g2.status();
    t.is(g2Before.ha?.role, "backup");
    t.true(g2Before.counters.arpSilentNotMaster >= 1, "g2 saw the client's ARP request for the VIP and left it unanswered");
    t.is(g2Before.counters.arpRepliesSent, 0);
    t.is(g2Before.counters.gratuitousArpSent, 0, "a backup announces nothing, not even at start");
    t.true((await g1.status()).counters.arpRepliesSent >= 1);
    const statusText = await g2.cli(["status"]);
    t.regex(statusText.stdout, /^ha: BACKUP since \S+ \(config ha\.initialRole; 0 transition\(s\)\); silent for the VIPs \(\d+ ARP request\(s\) left unanswered\)/m);

    // The master dies: natlb and keepalived SIGKILLed, links down.
    const killedAt = Date.now();
    await lab.killGateway(0);
    await waitUntil("g2 to become master", async () => (await g2.status()).ha?.role === "master", 10_000, 20);
    const takeoverMs = Date.now() - killedAt;
    t.log(`g2 master ${takeoverMs} ms after g1 was killed (VRRP adverts every 0.2 s, then natlb ha notify)`);
    await waitUntil("the takeover's announcements", async () => (await g2.status()).counters.gratuitousArpSent >= TAKEOVER_ARP_ROUNDS, 5_000, 20);

    // New connections go through g2.
    const after = await runDownload(lab, { url: blobUrl(lab.vip, HA_SERVICE_PORT, small, "after"), timeoutMs: 20_000 });
    t.is(after.ok, 1, JSON.stringify(after.results));
    t.is(after.results[0]!.sha256, blobSha256("after", small));
    const g2After = await g2.status();
    t.true(g2After.counters.toReal > g2Before.counters.toReal);
    t.like(g2After.ha, { role: "master", transitions: 1 });
    t.regex(g2After.ha!.reason, /^keepalived notify INSTANCE natlb_\w+_g2 MASTER 100$/);
    // keepalived repeating itself, by hand: nothing changes, and the CLI says so.
    const again = await g2.cli(["ha", "master", "--json"]);
    t.is(again.code, 0, again.stderr);
    t.like(JSON.parse(again.stdout), { ok: true, changed: false, role: "master", previous: "master", action: "ha master" });
    t.regex((await g2.cli(["status"])).stdout, /^ha: MASTER since .*keepalived notify INSTANCE .* MASTER 100; 1 transition\(s\)\); answers ARP for the VIPs/m);
    const refused = await g2.cli(["ha", "notify", "INSTANCE", "VI_1", "PRIMARY", "100"]);
    t.not(refused.code, 0);
    t.regex(refused.stderr, /STATE "PRIMARY"/);
    const metrics = (await requestControl(g2.socket, "GET /metrics")) as string;
    t.regex(metrics, /natlb_ha_role\{role="master"\} 1/);
    t.regex(metrics, /natlb_ha_role\{role="backup"\} 0/);

    // On the client's LAN: ARP replies for the VIP came from g1 only; g2 announced the VIP (sender = target = VIP).
    const arp = await capture.stop();
    const vipReplies = arp.filter((p) => p.arpOp === "reply" && p.src === lab.vip);
    t.true(vipReplies.length >= 1);
    t.deepEqual([...new Set(vipReplies.map((p) => p.srcMac))], [gw1.clientMac], "only the master answered ARP for the VIP");
    const announcements = arp.filter((p) => p.arpOp === "request" && p.src === lab.vip && p.dst === lab.vip);
    t.true(announcements.filter((p) => p.srcMac === gw2.clientMac).length >= TAKEOVER_ARP_ROUNDS, "g2 announced the VIP when it took over");

    stopEvents.abort();
    await watching;
    const roleEvents = events.filter((e) => e.type === "haRole");
    t.is(roleEvents.length, 1, JSON.stringify(roleEvents));
    t.like(roleEvents[0], { type: "haRole", previous: "backup", role: "master", origin: { via: "control socket" } });
  });
});

test.serial("failover: a 1 GiB download and 50 idle connections through the master survive its death (synced flows on the backup)", async (t) => {
  const gib = 1024 ** 3;
  // keepalived tells natlb through its notify FIFO here (`natlb ha notify-fifo`); the first test covers `notify`.
  await withHaPair(t, { realRate: "400mbit", extraConfig: syncConfig, notifyVia: "fifo" }, async ({ lab, natlb: [g1, g2] }) => {
    const holder = holdConnections(lab.client.ns);
    t.teardown(() => holder.stop());
    const held = await holder.open(lab.vip, ECHO_SERVICE_PORT, 50, 5000);
    t.is(held.opened.length, 50, `failed: ${held.failed}`);
    t.deepEqual((await holder.echo(5000)).silent, [], "every held connection answers through the master");

    const download = runDownload(lab, { url: blobUrl(lab.vip, HA_SERVICE_PORT, gib, "failover"), timeoutMs: 240_000 });
    const received = clientReceivedBytes(lab);
    const start = (await received()) ?? 0;
    await waitUntil("the download to be well under way", async () => ((await received()) ?? 0) - start > 128 * 1024 * 1024, 60_000, 50);

    // The backup has the master's flows before the master dies.
    const clientPorts = new Set(held.opened);
    await waitUntil(
      "g2 to hold the synced flows (50 idle, 1 download)",
      async () => {
        const flows = await g2.connections();
        return flows.filter((c) => c.vip.port === ECHO_SERVICE_PORT && clientPorts.has(c.client.port)).length === 50 && flows.some((c) => c.vip.port === HA_SERVICE_PORT);
      },
      10_000,
      100,
    );
    const g1Flows = await g1.connections();
    t.true(g1Flows.some((c) => c.vip.port === HA_SERVICE_PORT && c.state === "ESTABLISHED"));

    const transitionsBefore = (await g2.status()).ha!.transitions;
    const gap = await measureFailoverGap(lab, () => lab.killGateway(0));
    const killedAt = gap.killedAt;
    await waitUntil("g2 to be master", async () => (await g2.status()).ha?.role === "master", 10_000, 20);
    // When natlb on g2 became master (its own clock is this machine's): the bytes cannot move before.
    const masterAfterMs = Date.parse((await g2.status()).ha!.since) - killedAt;
    t.log(`failover gap ${gap.gapMs} ms (kill -> ${RESUMED_BYTES} more bytes at the client; readings take <= ${gap.resolutionMs} ms); g2 master ${masterAfterMs} ms after the kill`);
    const gapMs = gap.gapMs;
    t.true(gapMs >= masterAfterMs, "the client's bytes resumed only once g2 was master (else the measurement saw frames of the dead master)");

    const summary = await download;
    t.is(summary.ok, 1, JSON.stringify(summary.results));
    t.is(summary.results[0]!.bytes, gib);
    t.is(summary.results[0]!.sha256, blobSha256("failover", gib));
    const echoed = await holder.echo(10_000);
    t.deepEqual(echoed.silent, [], "every idle connection answers through the new master");
    t.is(echoed.answered.length, 50);

    const status = await g2.status();
    t.like(status.ha, { role: "master", transitions: transitionsBefore + 1 });
    t.regex(status.ha!.reason, /^keepalived notify INSTANCE natlb_\w+_g2 MASTER 100$/);
    t.true(status.counters.gratuitousArpSent >= TAKEOVER_ARP_ROUNDS);
    t.true(status.counters.toReal > 0);
    // The takeover handed the synced flows (50 idle, the download) to g2's kernel fast path at once.
    t.true(status.kernelFastPath.enabled, status.kernelFastPath.unavailable);
    t.true(status.counters.flowsOffloaded >= 51, `flowsOffloaded ${status.counters.flowsOffloaded}`);
    const flows = await g2.connections();
    t.is(flows.filter((c) => c.vip.port === ECHO_SERVICE_PORT && clientPorts.has(c.client.port) && c.state === "ESTABLISHED").length, 50);
    t.true(gapMs < 10_000, `the backup carried on within a few seconds (gap ${gapMs} ms)`);
  });
});
