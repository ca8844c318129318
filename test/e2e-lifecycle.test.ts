// The daemon's life cycle with real packets: readiness, signals, kernel state restored exactly, direct
// connections to real servers untouched, health checks taking a failed real out quickly.
import test from "ava";
import { NATLB_CLI, startBalancer } from "../src/lab/balancerProcess";
import { startBlobServer } from "../src/lab/blobServer";
import { blobUrl, runDownload } from "../src/lab/download";
import { runUdpClient } from "../src/lab/udpEcho";
import { REAL_PORT, SERVICE_PORT, gatewaySnapshot, startUdpEchoes, tcpService, udpService, withNatLab } from "./support/lab";
import { assertDirectDownloads } from "./support/trafficChecks";

const MiB = 1024 * 1024;

test("stop restores the gateway's routes, rules, neighbours, proxy entries, addresses, sysctls and offloads", async (t) => {
  await withNatLab(t, { offloads: true, startNatlb: false }, async ({ lab }) => {
    // Let the kernel learn its neighbours first: that happens with any traffic, natlb or not.
    for (const [i, real] of lab.reals.entries()) {
      await runDownload(lab, { url: blobUrl(real.ip, REAL_PORT, 1024, "warm"), localPortBase: 24000 + i });
    }
    const before = await gatewaySnapshot(lab);
    const natlb = await startBalancer(lab, { services: [tcpService(lab, [1, 1, 1])] });
    const during = await gatewaySnapshot(lab);
    t.not(during.routes, before.routes, "natlb installs its blackhole route while running");
    t.not(during.rules, before.rules, "natlb installs its reply-path rules while running");
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
    await assertDirectDownloads(t, lab, servers);
    const status = await natlb!.status();
    t.true(status.counters.passedThrough > 0, "the replies (dropped by the kernel's reply-path rule) were forwarded by natlb");
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
    } finally {
      await natlb.stop();
    }
    await lab.exec(lab.gateway.ns, process.execPath, [NATLB_CLI, "kernel-undo"]);
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
      t.regex(text, /natlb_frames_total\{counter="toReal"\} [1-9]\d*/);
      t.regex(text, /natlb_drops_total\{reason="noNeighbour"\} 0/);
    },
  );
});

test("the flow map is bounded: new flows beyond its capacity are dropped and counted; idle flows expire", async (t) => {
  await withNatLab(
    t,
    {
      offloads: true,
      config: (lab) => ({
        flowCapacity: 16,
        timeouts: { udp: 6 },
        services: [udpService(lab)],
      }),
    },
    async ({ lab, natlb }) => {
      await startUdpEchoes(lab);
      const fill = await runUdpClient(lab, { host: lab.vip, port: 53, count: 16, sockets: 16, localPortBase: 44000, timeoutMs: 2000 });
      t.is(fill.received, 16, "16 flows fit");
      const beyond = await runUdpClient(lab, { host: lab.vip, port: 53, count: 20, sockets: 20, localPortBase: 46000, timeoutMs: 200 });
      t.is(beyond.received, 0, "the 17th flow and later are refused");
      let status = await natlb!.status();
      t.is(status.flows.live, 16);
      t.is(status.counters.dropFlowTableFull, 20);
      t.is(status.flows.fullDrops, 20);
      const again = await runUdpClient(lab, { host: lab.vip, port: 53, count: 5, sockets: 5, localPortBase: 44000, timeoutMs: 2000 });
      t.is(again.received, 5, "existing flows keep working while the map is full");
      const deadline = Date.now() + 15_000;
      do {
        await new Promise((resolve) => setTimeout(resolve, 500));
        status = await natlb!.status();
      } while (status.flows.live > 0 && Date.now() < deadline);
      t.is(status.flows.live, 0, "idle UDP flows expire after the udp timeout (6 s)");
      t.true(status.flows.expired >= 16);
      await new Promise((resolve) => setTimeout(resolve, 2100)); // freed entries are reused after a 2 s grace
      const after = await runUdpClient(lab, { host: lab.vip, port: 53, count: 16, sockets: 16, localPortBase: 46000, timeoutMs: 2000 });
      t.is(after.received, 16, "expired entries make room for new flows");
    },
  );
});
