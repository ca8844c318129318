// End to end, real packets: new connections scheduled by the kernel fast path itself (config
// kernelScheduling, on by default). The TC program picks the real for a SYN to a service natlb published
// to it, creates the flow's entries and reports it to user space through its event ring; the flow then
// never crosses user space. Checked here: short connections and downloads through the default
// configuration complete (sha256 for the downloads) with no frame through user space, every one is in
// the flow map with the real the weights give it and its TCP state as the FINs left it; kernelScheduling
// false and a reload back; services the program cannot schedule for stay in user space; a real taken out
// gets no new connection; a client that reuses its ports while natlb keeps the old connection's
// TIME_WAIT gets a new connection each time. Every lab here uses the namespace prefix "ks".
import { writeFileSync } from "node:fs";
import test, { type ExecutionContext } from "ava";
import type { EngineCounters } from "../src/native";
import type { BalancerProcess } from "../lab/balancerProcess";
import { runConnLoad, startSmallServer, DEFAULT_SMALL_PORT } from "../lab/benchTools";
import { blobUrl, runDownload } from "../lab/download";
import { startFlood } from "../lab/flood";
import type { Lab } from "../lab/topology";
import { waitUntil } from "../lab/wait";
import { SERVICE_PORT, tcpService, withNatLab, type NatLab } from "./support/lab";

const MiB = 1024 * 1024;
const SMALL_PORT = 81;

function smallService(lab: Lab, weights: readonly number[], extra: Record<string, unknown> = {}) {
  return {
    vip: lab.vip,
    port: SMALL_PORT,
    protocol: "tcp",
    scheduler: "wrr",
    reals: weights.map((weight, i) => ({ ip: lab.reals[i]!.ip, port: DEFAULT_SMALL_PORT, weight })),
    ...extra,
  };
}

function withKsLab(
  t: ExecutionContext,
  config: (lab: Lab) => Record<string, unknown>,
  body: (env: NatLab & { natlb: BalancerProcess }) => Promise<void>,
  options: { floodHost?: boolean } = {},
) {
  return withNatLab(t, { offloads: true, prefix: "ks", config, ...options }, async (env) => {
    await Promise.all(env.lab.reals.map((_, i) => startSmallServer(env.lab, i + 1)));
    await body({ ...env, natlb: env.natlb! });
  });
}

async function counters(natlb: BalancerProcess): Promise<EngineCounters> {
  return (await natlb.status()).counters;
}

function delta(before: EngineCounters, after: EngineCounters, names: (keyof EngineCounters)[]): Record<string, number> {
  return Object.fromEntries(names.map((n) => [n, after[n] - before[n]]));
}

/** `count` short connections (connect, request, whole response, close) to the small service. */
async function shortConnections(lab: Lab, count: number, port = SMALL_PORT) {
  const result = await runConnLoad(lab, { targets: [{ ip: lab.vip, port }], concurrency: 8, count, durationMs: 20_000, connTimeoutMs: 3000 });
  return result;
}

test("default configuration: short connections and downloads are scheduled by the kernel, none crosses user space, the flow map has every one", async (t) => {
  await withKsLab(t, (lab) => ({ services: [smallService(lab, [3, 1, 1]), tcpService(lab, [1, 1, 1])] }), async ({ lab, natlb, servers }) => {
    const status = await natlb.status();
    t.true(status.kernelFastPath.enabled, "the fast path runs (the test means nothing without it)");
    t.deepEqual(status.kernelFastPath.scheduling, { setting: true, active: true, services: 2 });
    const before = await counters(natlb);
    const conns = await shortConnections(lab, 500);
    t.is(conns.completed, 500, JSON.stringify(conns.errors));
    const downloads = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 32 * MiB, "ks"), conns: 3, count: 3, localPortBase: 41000 });
    t.is(downloads.failed, 0, JSON.stringify(downloads.results.map((r) => r.error)));
    for (const result of downloads.results) {
      const served = servers[lab.reals.findIndex((r) => r.ip === result.real)]!.served();
      t.is(result.bytes, 32 * MiB);
      t.is(result.sha256, served.find((s) => s.peerPort === result.localPort)?.sha256 ?? null, "the client got exactly what the real sent");
    }
    t.deepEqual(new Set(downloads.results.map((r) => r.real)).size, 3, "the three downloads went to three reals");

    const after = await waitUntil("the kernel's events to reach the flow map", async () => {
      const c = await counters(natlb);
      return c.kernelScheduledFlows - before.kernelScheduledFlows >= 503 ? c : undefined;
    }, 5000, 100);
    const moved = delta(before, after, ["kernelScheduledFlows", "newFlows", "toReal", "toClient", "kernelScheduledRefused", "kernelEventRingFull", "dropNoFlow"]);
    t.log(JSON.stringify(moved));
    t.is(moved.kernelScheduledFlows, 503, "every connection was scheduled by the kernel");
    t.is(moved.newFlows, 503, "and counted as a new flow, once");
    // Without the kernel's scheduling each connection's ~9 frames cross user space (thousands here); at most
    // a stray one may now (a client's RST, which user space always judges).
    t.true(moved.toReal! + moved.toClient! <= 3, `frames through user space: ${moved.toReal} to the reals, ${moved.toClient} to the client`);
    t.is(moved.kernelScheduledRefused + moved.kernelEventRingFull + moved.dropNoFlow, 0);

    // The flow map: each connection with its real, in the state its FINs left it.
    const flows = await waitUntil("every short connection to be closed in the flow map", async () => {
      const listed = (await natlb.connections()).filter((c) => c.vip.port === SMALL_PORT);
      return listed.length === 500 && listed.every((c) => c.state === "TIME_WAIT") ? listed : undefined;
    }, 10_000, 200);
    t.true(flows.every((c) => c.kernelScheduled === true), "listed as kernel-scheduled");
    t.true(flows.every((c) => c.packetsIn >= 4 && c.packetsOut >= 4), "with the kernel's packet counts (SYN, request, ACKs, FIN each way)");
    const shares = lab.reals.map((r) => flows.filter((c) => c.real.ip === r.ip).length);
    t.log(`shares over weights 3:1:1: ${shares.join(":")}`);
    t.true(Math.abs(shares[0]! - 300) <= 10 && Math.abs(shares[1]! - 100) <= 10 && Math.abs(shares[2]! - 100) <= 10, `shares ${shares.join(":")}`);
    const text = await natlb.cli(["status"]);
    t.regex(text.stdout, /new connections scheduled in the kernel for 2 service\(s\), 503 so far/);
  });
});

test("kernelScheduling false sends every SYN to user space; a reload to true gives them back to the kernel", async (t) => {
  const config = (lab: Lab, kernelScheduling: boolean) => ({ services: [smallService(lab, [1, 1, 1])], kernelScheduling });
  await withKsLab(t, (lab) => config(lab, false), async ({ lab, natlb }) => {
    t.deepEqual((await natlb.status()).kernelFastPath.scheduling, { setting: false, active: false, services: 1 });
    const before = await counters(natlb);
    t.is((await shortConnections(lab, 100)).completed, 100);
    const userSpace = delta(before, await counters(natlb), ["kernelScheduledFlows", "newFlows", "toReal", "toClient"]);
    t.log(`kernelScheduling false: ${JSON.stringify(userSpace)}`);
    t.is(userSpace.kernelScheduledFlows, 0);
    t.is(userSpace.newFlows, 100);
    t.true(userSpace.toReal! >= 300 && userSpace.toClient! >= 300, "each connection's frames crossed user space");

    writeFileSync(natlb.configPath, JSON.stringify(config(lab, true)));
    const reload = await natlb.cli(["reload"]);
    t.is(reload.code, 0, reload.stderr);
    t.deepEqual((await natlb.status()).kernelFastPath.scheduling, { setting: true, active: true, services: 1 });
    const middle = await counters(natlb);
    t.is((await shortConnections(lab, 100)).completed, 100);
    const kernel = await waitUntil("the kernel's events", async () => {
      const moved = delta(middle, await counters(natlb), ["kernelScheduledFlows", "newFlows", "toReal", "toClient"]);
      return moved.kernelScheduledFlows === 100 ? moved : undefined;
    }, 5000, 100);
    t.log(`after the reload: ${JSON.stringify(kernel)}`);
    t.is(kernel.newFlows, 100);
    t.is(kernel.toReal, 0);
  });
});

test("services the kernel cannot schedule for (persistence, wlc, a connection limit) keep user-space scheduling; the rest of the gateway goes on", async (t) => {
  await withKsLab(
    t,
    (lab) => ({
      services: [
        smallService(lab, [1, 1, 1], { persistence: { timeoutS: 30 } }),
        { ...smallService(lab, [1, 1, 1], { scheduler: "wlc" }), port: 82 },
        { ...smallService(lab, [1, 1, 1]), port: 83, reals: lab.reals.map((r) => ({ ip: r.ip, port: DEFAULT_SMALL_PORT, maxConns: 1000 })) },
        { ...smallService(lab, [1, 1, 1]), port: 84 },
      ],
    }),
    async ({ lab, natlb }) => {
      t.is((await natlb.status()).kernelFastPath.scheduling.services, 1, "only the plain wrr service is published to the kernel");
      const before = await counters(natlb);
      for (const port of [SMALL_PORT, 82, 83]) t.is((await shortConnections(lab, 60, port)).completed, 60, `port ${port}`);
      const userSpace = delta(before, await counters(natlb), ["kernelScheduledFlows", "newFlows"]);
      t.is(userSpace.kernelScheduledFlows, 0);
      t.is(userSpace.newFlows, 180);
      const persistent = (await natlb.connections()).filter((c) => c.vip.port === SMALL_PORT && !c.template);
      t.is(new Set(persistent.map((c) => c.real.ip)).size, 1, "persistence held every connection of the client on one real");
      t.is((await shortConnections(lab, 60, 84)).completed, 60);
      await waitUntil("the plain service's connections to come from the kernel", async () => (await counters(natlb)).kernelScheduledFlows - before.kernelScheduledFlows === 60, 5000, 100);
      t.pass();
    },
  );
});

test("a real taken out of the service (weight 0, then removed) gets no new kernel-scheduled connection", async (t) => {
  await withKsLab(t, (lab) => ({ services: [smallService(lab, [1, 1, 1])] }), async ({ lab, natlb }) => {
    const vip = `${lab.vip}:${SMALL_PORT}`;
    const r1 = `${lab.reals[0]!.ip}`;
    const setWeight = await natlb.cli(["real", "weight", vip, r1, "0"]);
    t.is(setWeight.code, 0, setWeight.stderr);
    t.is((await shortConnections(lab, 90)).completed, 90);
    const remove = await natlb.cli(["real", "remove", vip, r1]);
    t.is(remove.code, 0, remove.stderr);
    t.is((await shortConnections(lab, 90)).completed, 90);
    const flows = await waitUntil("180 kernel-scheduled flows in the map", async () => {
      const listed = (await natlb.connections()).filter((c) => c.kernelScheduled === true);
      return listed.length === 180 ? listed : undefined;
    }, 5000, 100);
    const shares = lab.reals.map((r) => flows.filter((c) => c.real.ip === r.ip).length);
    t.deepEqual(shares, [0, 90, 90]);
  });
});

test("a client that reuses its port while natlb keeps the last connection's TIME_WAIT gets a new connection each time, from the kernel", async (t) => {
  await withKsLab(t, (lab) => ({ services: [smallService(lab, [1, 1, 1])] }), async ({ lab, natlb }) => {
    const before = await counters(natlb);
    // One local port, five connections in a row: each SYN meets the previous flow closed on both sides.
    const script = `
      const net = require("node:net");
      (async () => {
        const times = [];
        for (let i = 0; i < 5; i++) {
          const started = Date.now();
          const real = await new Promise((resolve, reject) => {
            const s = net.connect({ host: ${JSON.stringify(lab.vip)}, port: ${SMALL_PORT}, localPort: 47555 });
            let body = "";
            s.setTimeout(3000, () => { s.destroy(); reject(new Error("timeout")); });
            s.on("connect", () => s.write("GET /s HTTP/1.0\\r\\n\\r\\n"));
            s.on("data", (d) => { body += d; });
            s.on("end", () => resolve((/X-Real: (\\S+)/.exec(body) || [])[1]));
            s.on("error", reject);
          });
          times.push({ ms: Date.now() - started, real });
          await new Promise((r) => setTimeout(r, 50));
        }
        console.log(JSON.stringify(times));
      })().catch((e) => { console.error(e.message); process.exit(1); });`;
    const result = await lab.exec(lab.client.ns, process.execPath, ["-e", script]);
    const runs = JSON.parse(result.stdout) as { ms: number; real: string }[];
    t.log(JSON.stringify(runs));
    t.is(runs.length, 5);
    t.true(runs.every((r) => r.ms < 1000), "no connection waited for a SYN retransmission");
    const moved = await waitUntil("five kernel-scheduled flows", async () => {
      const d = delta(before, await counters(natlb), ["kernelScheduledFlows", "newFlows", "toReal", "dropOutOfWindow"]);
      return d.kernelScheduledFlows === 5 ? d : undefined;
    }, 5000, 100);
    t.is(moved.newFlows, 5);
    t.is(moved.toReal, 0, "the reuse needed no user space");
    const listed = (await natlb.connections()).filter((c) => c.client.port === 47555);
    t.is(listed.length, 1, "the map keeps the last connection only");
    t.is(listed[0]?.real.ip, runs[4]!.real, "with the real that answered it");
  });
});

test("a spoofed SYN flood closes the kernel's scheduling, so the flow map's defences see every SYN; it opens again when the half-open flows are gone", async (t) => {
  await withKsLab(
    t,
    // A short handshake timeout, so the flood's half-open flows go soon after it.
    (lab) => ({ services: [smallService(lab, [1, 1, 1])], timeouts: { tcpSynRecv: 3 } }),
    async ({ lab, natlb }) => {
      t.true((await natlb.status()).kernelFastPath.scheduling.active, "scheduling is open before the flood");
      const before = await counters(natlb);
      const samples: boolean[] = [];
      const flood = await startFlood(lab, { kind: "syn", target: { ip: lab.vip, port: SMALL_PORT }, rate: 20_000, count: 60_000, seconds: 4, seed: 7 });
      const sampling = (async () => {
        while (flood.tool.running) {
          samples.push((await natlb.status()).kernelFastPath.scheduling.active);
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const summary = await flood.done;
      await sampling;
      const during = delta(before, await counters(natlb), ["newFlows", "kernelScheduledFlows", "ringDrops"]);
      t.log(`flood: ${summary.sent} SYNs sent; ${JSON.stringify(during)}; scheduling open in ${samples.filter(Boolean).length} of ${samples.length} samples`);
      t.true(summary.sent >= 50_000, `only ${summary.sent} SYNs sent`);
      t.true(samples.some((open) => !open), "scheduling closed during the flood");
      // The gate closes at 1/64 of the map's 262 144 flows (4096 half-open), checked every 100 ms.
      t.true(during.kernelScheduledFlows! <= 4096 + 20_000 * 0.3, `the kernel scheduled ${during.kernelScheduledFlows} of the flood's SYNs`);
      const byUserSpace = during.newFlows! - during.kernelScheduledFlows!;
      t.true(byUserSpace > during.kernelScheduledFlows!, `user space scheduled ${byUserSpace} of the flood's SYNs, the kernel ${during.kernelScheduledFlows}`);

      // The half-open flows expire (3 s), and the kernel schedules again.
      await waitUntil("scheduling to open again", async () => (await natlb.status()).kernelFastPath.scheduling.active, 20_000, 200);
      const after = await counters(natlb);
      t.is((await shortConnections(lab, 50)).completed, 50);
      await waitUntil("the new connections to come from the kernel", async () => (await counters(natlb)).kernelScheduledFlows - after.kernelScheduledFlows === 50, 5000, 100);
      t.pass();
    },
    { floodHost: true },
  );
});
