// The daemon's life cycle with real packets: readiness, signals, kernel state restored exactly, direct
// connections to real servers untouched, health checks taking a failed real out quickly.
import test from "ava";
import { NATLB_CLI, startBalancer } from "../lab/balancerProcess";
import { startBlobServer } from "../lab/blobServer";
import { blobUrl, runDownload } from "../lab/download";
import { runUdpClient } from "../lab/udpEcho";
import { REAL_PORT, SERVICE_PORT, gatewaySnapshot, startUdpEchoes, tcpService, udpService, withNatLab } from "./support/lab";
import { assertDirectDownloads } from "./support/trafficChecks";

const MiB = 1024 * 1024;

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 250));
}

test("stop restores the gateway's routes, rules, nftables, neighbours, proxy entries, addresses, sysctls and offloads", async (t) => {
  await withNatLab(t, { offloads: true, startNatlb: false }, async ({ lab }) => {
    // Let the kernel learn its neighbours first: that happens with any traffic, natlb or not.
    for (const [i, real] of lab.reals.entries()) {
      await runDownload(lab, { url: blobUrl(real.ip, REAL_PORT, 1024, "warm"), localPortBase: 24000 + i });
    }
    const before = await gatewaySnapshot(lab);
    const natlb = await startBalancer(lab, { services: [tcpService(lab, [1, 1, 1])] });
    const during = await gatewaySnapshot(lab);
    t.not(during.routes, before.routes, "natlb installs its blackhole route while running");
    t.is(during.rules, before.rules, "natlb adds no policy rule");
    t.regex(during.nftables, /table netdev natlb/, "natlb installs its ownership table while running");
    t.notRegex(before.nftables, /natlb/);
    const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, MiB, "x"), conns: 3, count: 3, localPortBase: 21000 });
    t.is(summary.failed, 0);
    const exit = await natlb.stop("SIGTERM");
    t.deepEqual(exit, { code: 0, signal: null });
    const after = await gatewaySnapshot(lab);
    for (const key of Object.keys(before)) t.is(after[key], before[key], `${key} differs after stop`);
  });
});

test("status fails until the daemon forwards and after it stops; SIGINT twice still exits 0", async (t) => {
  await withNatLab(t, { offloads: true }, async ({ lab, natlb }) => {
    const status = await natlb!.status();
    t.deepEqual(Object.keys(status.services[0]!).sort(), ["port", "protocol", "reals", "scheduler", "vip"]);
    t.deepEqual(Object.keys(status.services[0]!.reals[0]!).sort(), ["activeConns", "inactiveConns", "ip", "port", "up", "weight"]);
    const human = await natlb!.cli(["status"]);
    t.is(human.code, 0);
    t.regex(human.stdout, /198\.18\.0\.100:80\s+wrr/);
    natlb!.child.kill("SIGINT");
    natlb!.child.kill("SIGINT");
    const exit = await natlb!.stop("SIGINT");
    t.deepEqual(exit, { code: 0, signal: null });
    const afterStop = await natlb!.cli(["status", "--json"]);
    t.not(afterStop.code, 0);
    t.regex(afterStop.stderr, /no natlb daemon/);
  });
});

test("a bad config file is refused with the field named, and nothing is left behind", async (t) => {
  await withNatLab(t, { offloads: true, startNatlb: false }, async ({ lab }) => {
    const before = await gatewaySnapshot(lab);
    const bad = { services: [{ ...tcpService(lab, [1, 1, 1]), reals: [{ ip: lab.reals[0]!.ip, port: REAL_PORT, weight: "abc" }] }] };
    const error = await t.throwsAsync(startBalancer(lab, bad, { readyTimeoutMs: 10_000 }));
    t.regex(error!.message, /services\[0\]\.reals\[0\]\.weight/);
    t.deepEqual(await gatewaySnapshot(lab), before);
    const localVip = { services: [{ ...tcpService(lab, [1]), vip: lab.gateway.clientIp }] };
    const refused = await t.throwsAsync(startBalancer(lab, localVip, { readyTimeoutMs: 10_000 }));
    t.regex(refused!.message, /services\[0\]\.vip: 198\.18\.0\.1 is an address of this gateway \(eth0\)/);
    t.deepEqual(await gatewaySnapshot(lab), before);
  });
});

test("direct connections to a real server's own address and port keep working beside natlb", async (t) => {
  await withNatLab(t, { offloads: true }, async ({ lab, servers, natlb }) => {
    const before = (await natlb!.status()).counters;
    await assertDirectDownloads(t, lab, servers);
    const status = await natlb!.status();
    // The kernel forwards them: natlb owns only its flows' replies.
    t.is(status.counters.toClient, before.toClient, "no reply of a direct connection went through natlb");
    t.is(status.counters.dropNoFlow, before.dropNoFlow);
    t.is(status.flows.live, 0, "direct connections are not NAT flows");
  });
});

test("a failed real server is taken out of scheduling within seconds and comes back", async (t) => {
  const healthCheck = { type: "tcp", intervalMs: 200, timeoutMs: 200, rise: 2, fall: 2 };
  await withNatLab(t, { offloads: true, config: (lab) => ({ services: [tcpService(lab, [1, 1, 1], { healthCheck })] }) }, async ({ lab, servers, natlb }) => {
    await servers[1]!.stop();
    const deadline = Date.now() + 5000;
    let down = false;
    while (!down && Date.now() < deadline) {
      const status = await natlb!.status();
      down = status.services[0]!.reals[1]!.up === false;
      if (!down) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    t.true(down, "the stopped real is marked down within 5 s");
    const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 4096, "h"), conns: 5, count: 30, localPortBase: 23000, timeoutMs: 20_000 });
    t.is(summary.failed, 0, "no new connection goes to the failed real");
    t.false(summary.results.some((r) => r.real === lab.reals[1]!.ip));
    servers[1] = await startBlobServer(lab, 2, REAL_PORT);
    let up = false;
    const upDeadline = Date.now() + 5000;
    while (!up && Date.now() < upDeadline) {
      up = (await natlb!.status()).services[0]!.reals[1]!.up;
      if (!up) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    t.true(up, "the real is back within 5 s of answering again");
  });
});

test("a second natlb in the same namespace is refused and the first keeps forwarding", async (t) => {
  await withNatLab(t, { offloads: true }, async ({ lab, natlb }) => {
    const before = await gatewaySnapshot(lab);
    const error = await t.throwsAsync(startBalancer(lab, { services: [tcpService(lab, [1, 1, 1])] }, { readyTimeoutMs: 10_000 }));
    t.regex(error!.message, /another natlb already runs in this network namespace/);
    t.deepEqual(await gatewaySnapshot(lab), before, "the refused one touched no kernel state");
    const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, MiB, "still"), conns: 3, count: 3, localPortBase: 25000 });
    t.is(summary.failed, 0);
    t.is((await natlb!.status()).flows.live, 3);
  });
});

test("with kernel set-up as a separate step, the daemon forwards holding CAP_NET_RAW but not CAP_NET_ADMIN", async (t) => {
  await withNatLab(t, { offloads: true, startNatlb: false }, async ({ lab, servers }) => {
    for (const [i, real] of lab.reals.entries()) {
      await runDownload(lab, { url: blobUrl(real.ip, REAL_PORT, 1024, "warm"), localPortBase: 26000 + i });
    }
    const before = await gatewaySnapshot(lab);
    const config = { services: [tcpService(lab, [1, 1, 1])] };
    const natlb = await startBalancer(lab, config, {
      runArgs: ["--no-kernel-setup"],
      wrapper: ["setpriv", "--bounding-set=-net_admin,-sys_admin", "--inh-caps=-net_admin,-sys_admin", "--"],
    });
    try {
      const status = await lab.exec(lab.gateway.ns, "grep", ["CapEff", `/proc/${natlb.child.pid}/status`]);
      const effective = BigInt(`0x${status.stdout.trim().split(/\s+/)[1]}`);
      t.is(effective & (1n << 12n), 0n, "CAP_NET_ADMIN (12) is not held");
      t.not(effective & (1n << 13n), 0n, "CAP_NET_RAW (13) is held");
      const setup = await lab.exec(lab.gateway.ns, process.execPath, [NATLB_CLI, "kernel-setup", "--config", natlb.configPath]);
      t.regex(setup.stdout, /kernel set-up installed/);
      const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 8 * MiB, "caps"), conns: 3, count: 3, localPortBase: 26100 });
      t.is(summary.failed, 0);
      for (const result of summary.results) {
        t.is(result.sha256, servers.flatMap((s) => s.served()).find((e) => e.peerPort === result.localPort)?.sha256 ?? null);
      }
      // The default kernelFastPath "auto" could not attach the TC program without CAP_NET_ADMIN:
      // user space forwarded everything, and natlb said why, once, and how to enable it.
      const fastPath = (await natlb.status()).kernelFastPath;
      t.like(fastPath, { setting: "auto", enabled: false, flows: 0 });
      t.regex(fastPath.unavailable ?? "", /kernel fast path/, JSON.stringify(fastPath));
      const warnings = natlb.output().split("\n").filter((line) => line.includes("kernel fast path off"));
      t.is(warnings.length, 1, natlb.output());
      t.regex(warnings[0] ?? "", /CAP_BPF and CAP_NET_ADMIN/);
      t.regex((await natlb.cli(["status"])).stdout, /forwarding: user space only \(kernelFastPath "auto"; unavailable: /);
      const counters = (await natlb.status()).counters;
      t.true(counters.txBytes >= 3 * 8 * MiB, `user space sent ${counters.txBytes} bytes for ${3 * 8 * MiB} downloaded`);
      t.is(counters.flowsOffloaded, 0);
    } finally {
      await natlb.stop();
    }
    await lab.exec(lab.gateway.ns, process.execPath, [NATLB_CLI, "kernel-undo"]);
    t.deepEqual(await gatewaySnapshot(lab), before);
  });
});

test("kernelFastPath true without CAP_NET_ADMIN refuses to start, saying what it needs; nothing is left behind", async (t) => {
  await withNatLab(t, { offloads: true, startNatlb: false }, async ({ lab }) => {
    const before = await gatewaySnapshot(lab);
    const error = await t.throwsAsync(startBalancer(lab, { services: [tcpService(lab, [1, 1, 1])], kernelFastPath: true }, {
      runArgs: ["--no-kernel-setup"],
      wrapper: ["setpriv", "--bounding-set=-net_admin,-sys_admin", "--inh-caps=-net_admin,-sys_admin", "--"],
    }));
    t.regex(error?.message ?? "", /exited before it was ready/);
    t.regex(error?.message ?? "", /kernelFastPath true also CAP_BPF and CAP_NET_ADMIN|kernel fast path/);
    t.deepEqual(await gatewaySnapshot(lab), before);
  });
});

test("Prometheus metrics: per-real connections and health, frames and drops by reason", async (t) => {
  await withNatLab(
    t,
    { offloads: true, config: (lab) => ({ services: [tcpService(lab, [2, 1, 1])], metrics: { listen: "127.0.0.1:9910" } }) },
    async ({ lab }) => {
      const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, MiB, "metrics"), conns: 4, count: 4, localPortBase: 27000 });
      t.is(summary.failed, 0);
      const fetch = `require("http").get("http://127.0.0.1:9910/metrics", (r) => { let b = ""; r.on("data", (c) => (b += c)); r.on("end", () => process.stdout.write(b)); })`;
      const text = (await lab.exec(lab.gateway.ns, process.execPath, ["-e", fetch])).stdout;
      const real1 = `vip="${lab.vip}",port="80",protocol="tcp",real="${lab.reals[0]!.ip}:${REAL_PORT}"`;
      t.regex(text, new RegExp(`natlb_real_weight\\{${real1.replace(/[.]/g, "\\.")}\\} 2`));
      t.regex(text, new RegExp(`natlb_real_up\\{${real1.replace(/[.]/g, "\\.")}\\} 1`));
      const inactive = text.split("\n").filter((l) => l.startsWith("natlb_real_inactive_connections{")).map((l) => Number(l.split(" ").pop()));
      t.is(inactive.reduce((a, b) => a + b, 0), 4, "the 4 finished connections are in TIME_WAIT");
      t.regex(text, /natlb_frames_total\{counter="newFlows"\} [1-9]\d*/);
      t.regex(text, /natlb_drops_total\{reason="noNeighbour"\} 0/);
    },
  );
});

test("the flow map is bounded: unassured flows give way to new ones, assured ones never do; idle flows expire", async (t) => {
  await withNatLab(
    t,
    {
      offloads: true,
      config: (lab) => ({
        flowCapacity: 16,
        // Long enough for the assured flows to outlive every wait below on a loaded machine.
        timeouts: { udp: 20 },
        floodProtection: { unassuredUdpShare: 1 },  // this test is about the map's room, not the class shares
        services: [udpService(lab)],
      }),
    },
    async ({ lab, natlb }) => {
      await startUdpEchoes(lab);
      const exchange = (localPortBase: number, count: number, timeoutMs = 2000) =>
        runUdpClient(lab, { host: lab.vip, port: 53, count, sockets: count, localPortBase, timeoutMs });
      // 8 flows that prove themselves: a reply, and the client still talking 2 s later.
      const first = await exchange(44000, 8);
      t.is(first.received, 8);
      await new Promise((resolve) => setTimeout(resolve, 2100));
      t.is((await exchange(44000, 8)).received, 8);
      let status = await natlb!.status();
      t.deepEqual(status.flows.unassured, { halfOpenTcp: 0, udp: 0 }, "the 8 flows are assured");

      // 20 single exchanges from other ports: the map has room for 8 more, so the newcomers make room by
      // evicting each other (one entry is always kept free), and every one is answered.
      const newcomers = await exchange(46000, 20);
      t.is(newcomers.received, 20, `lost: ${newcomers.lost.join(",")}`);
      status = await natlb!.status();
      t.true(status.flows.live <= 16);
      t.true(status.flows.evicted.udpRoom >= 12, JSON.stringify(status.flows));
      t.regex((await natlb!.cli(["status"])).stdout, /flood defences: unassured 0 half-open TCP, \d+ UDP; evicted [1-9]\d* \(/);
      t.is(status.counters.dropFlowTableFull, 0);
      // The assured flows were never evicted: they still reach the same reals.
      const again = await exchange(44000, 8);
      t.is(again.received, 8);
      t.deepEqual(again.replies.map((r) => r.real).sort(), first.replies.map((r) => r.real).sort());

      // The newcomers left behind are unassured: with the map more than half full (pressureAt 0.5) they
      // expire after 5 s idle, not after the udp timeout.
      await waitFor(async () => (await natlb!.status()).flows.unassured.udp === 0, 9000);
      status = await natlb!.status();
      t.true(status.flows.expiredUnderPressure > 0, JSON.stringify(status.flows));
      t.is(status.flows.live, 8);

      // 7 more assured flows: 15 in all, and the last entry kept free. New flows beyond that take turns in
      // it, each evicting the one before: the map never holds more than its capacity, whatever is refused
      // is counted, and the assured flows are untouched.
      t.is((await exchange(45000, 7)).received, 7);
      await new Promise((resolve) => setTimeout(resolve, 2100));
      t.is((await exchange(45000, 7)).received, 7);
      t.deepEqual((await natlb!.status()).flows.unassured, { halfOpenTcp: 0, udp: 0 });
      const beyond = await exchange(47000, 10, 300);
      status = await natlb!.status();
      t.true(status.flows.live <= 16);
      t.is(status.counters.dropFlowTableFull, status.flows.fullDrops);
      t.is(beyond.received + status.counters.dropFlowTableFull, 10, "each new flow was either answered or counted as refused");
      t.true(beyond.received >= 5, `new flows still get in: ${beyond.received} of 10`);
      const assured = await exchange(44000, 8);
      t.deepEqual(assured.replies.map((r) => r.real).sort(), first.replies.map((r) => r.real).sort(), "the assured flows were never evicted");
      t.is((await exchange(44000, 8)).received, 8, "existing flows keep working while the map is full");

      const deadline = Date.now() + 30_000;
      do {
        await new Promise((resolve) => setTimeout(resolve, 500));
        status = await natlb!.status();
      } while (status.flows.live > 0 && Date.now() < deadline);
      t.is(status.flows.live, 0, "idle UDP flows expire after the udp timeout (20 s)");
      const after = await exchange(48000, 8);
      t.is(after.received, 8, "expired entries make room for new flows");
    },
  );
});
