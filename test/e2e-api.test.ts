// The typed TypeScript API (Balancer) driven at run time, with real traffic: adding, reweighting and
// removing real servers and services changes where new connections go; existing ones keep their real;
// bad calls get typed errors and change nothing.
import test from "ava";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { BalancerStatus } from "../src/balancer";
import { startBlobServer } from "../lab/blobServer";
import { blobUrl, runDownload } from "../lab/download";
import type { Lab } from "../lab/topology";
import { REAL_PORT, SERVICE_PORT, tcpService, withNatLab } from "./support/lab";

interface Reply {
  ok: boolean;
  result?: unknown;
  name?: string;
  message?: string;
}

function startDriver(lab: Lab) {
  const child = lab.spawn(lab.gateway.ns, process.execPath, [join(__dirname, "support", "apiDriver.js")], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const replies: Reply[] = [];
  const waiters: ((reply: Reply) => void)[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const reply = JSON.parse(line) as Reply;
    const waiter = waiters.shift();
    if (waiter) waiter(reply);
    else replies.push(reply);
  });
  return {
    call(command: Record<string, unknown>, timeoutMs = 20_000): Promise<Reply> {
      child.stdin!.write(`${JSON.stringify(command)}\n`);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no reply to ${JSON.stringify(command)}`)), timeoutMs);
        waiters.push((reply) => {
          clearTimeout(timer);
          resolve(reply);
        });
      });
    },
    close: () => child.stdin!.end(),
  };
}

async function realsServing(lab: Lab, count: number, portBase: number): Promise<Map<string, number>> {
  const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 1024, "api"), conns: 4, count, localPortBase: portBase, timeoutMs: 20_000 });
  const counts = new Map<string, number>();
  for (const r of summary.results) counts.set(r.real ?? `error: ${r.error}`, (counts.get(r.real ?? `error: ${r.error}`) ?? 0) + 1);
  return counts;
}

test("add, reweight and remove real servers and services at run time through the typed API", async (t) => {
  await withNatLab(t, { offloads: true, startNatlb: false }, async ({ lab }) => {
    const driver = startDriver(lab);
    try {
      const [r1, r2, r3] = lab.reals.map((r) => r.ip);
      t.true((await driver.call({ op: "start", config: { services: [tcpService(lab, [1])] } })).ok);
      t.deepEqual([...(await realsServing(lab, 12, 31000)).keys()], [r1]);

      t.true((await driver.call({ op: "addReal", vip: lab.vip, port: SERVICE_PORT, real: { ip: r2, port: REAL_PORT, weight: 1 } })).ok);
      const both = await realsServing(lab, 12, 31100);
      t.is(both.get(r1!), 6);
      t.is(both.get(r2!), 6);

      t.true((await driver.call({ op: "updateReal", vip: lab.vip, port: SERVICE_PORT, ip: r1, weight: 0 })).ok);
      t.deepEqual([...(await realsServing(lab, 12, 31200)).keys()], [r2], "weight 0 drains: no new connections");

      const bad = await driver.call({ op: "addReal", vip: lab.vip, port: SERVICE_PORT, real: { ip: "not-an-ip" } });
      t.false(bad.ok);
      t.is(bad.name, "ConfigError");
      t.regex(bad.message!, /services\[0\]\.reals\[2\]\.ip/);
      const missing = await driver.call({ op: "removeReal", vip: lab.vip, port: 81, ip: r3 });
      t.false(missing.ok);
      t.is(missing.name, "ApiError");
      const status = (await driver.call({ op: "status" })).result as BalancerStatus;
      t.deepEqual(status.services[0]!.reals.map((r) => [r.ip, r.weight]), [[r1, 0], [r2, 1]], "failed calls changed nothing");

      t.true((await driver.call({ op: "removeReal", vip: lab.vip, port: SERVICE_PORT, ip: r1 })).ok);
      t.true((await driver.call({ op: "addService", service: { vip: lab.vip2, port: 8000, reals: [{ ip: r3, port: REAL_PORT }] } })).ok);
      const second = await runDownload(lab, { url: blobUrl(lab.vip2, 8000, 1024, "vip2"), conns: 2, count: 4, localPortBase: 31300 });
      t.deepEqual(second.results.map((r) => r.real), [r3, r3, r3, r3]);

      t.true((await driver.call({ op: "removeService", vip: lab.vip, port: SERVICE_PORT })).ok);
      const gone = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 1024, "gone"), conns: 1, count: 1, localPortBase: 31400, timeoutMs: 3000 });
      t.is(gone.failed, 1, "a removed service no longer answers");
      t.true((await driver.call({ op: "stop" })).ok);
    } finally {
      driver.close();
    }
  });
});

test("a connection keeps its real server when that real is removed, and finishes intact", async (t) => {
  await withNatLab(t, { offloads: true, startNatlb: false }, async ({ lab, servers }) => {
    const driver = startDriver(lab);
    try {
      const [r1, r2] = lab.reals.map((r) => r.ip);
      t.true((await driver.call({ op: "start", config: { services: [tcpService(lab, [1])] } })).ok);
      const big = runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 2048 * 1024 * 1024, "long"), conns: 1, count: 1, localPortBase: 32000, timeoutMs: 120_000, sha: true });
      let active = false;
      for (let i = 0; i < 100 && !active; i++) {
        const status = (await driver.call({ op: "status" })).result as BalancerStatus;
        active = status.services[0]!.reals[0]!.activeConns === 1;
        if (!active) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      t.true(active, "the long download is under way");
      // r2 answers on another port, so r1's port 8080 leaves the configuration: its live flow must keep
      // its reply path (BPF filter, kernel rule) until it ends.
      await startBlobServer(lab, 2, REAL_PORT + 1);
      t.true((await driver.call({ op: "addReal", vip: lab.vip, port: SERVICE_PORT, real: { ip: r2, port: REAL_PORT + 1 } })).ok);
      t.true((await driver.call({ op: "removeReal", vip: lab.vip, port: SERVICE_PORT, ip: r1 })).ok);
      const fresh = await realsServing(lab, 4, 32100);
      t.deepEqual([...fresh.keys()], [r2], "new connections go to the remaining real");
      const summary = await big;
      t.is(summary.failed, 0, JSON.stringify(summary.results.map((r) => r.error)));
      t.is(summary.results[0]!.real, r1);
      t.is(summary.results[0]!.sha256, servers[0]!.served().find((e) => e.peerPort === 32000)?.sha256 ?? null);
      t.true((await driver.call({ op: "stop" })).ok);
    } finally {
      driver.close();
    }
  });
});

test("the CLI changes a running daemon: real add/weight/remove, service add, reload back to the file", async (t) => {
  await withNatLab(t, { offloads: true, config: (lab) => ({ services: [tcpService(lab, [1])] }) }, async ({ lab, natlb }) => {
    const [r1, r2, r3] = lab.reals.map((r) => r.ip);
    const cli = async (...args: string[]) => {
      const result = await natlb!.cli(args);
      t.is(result.code, 0, `natlb ${args.join(" ")}: ${result.stderr}`);
    };
    const vip = `${lab.vip}:${SERVICE_PORT}`;
    await cli("real", "add", vip, `${r2}:${REAL_PORT}`, "--weight", "2");
    const shares = await realsServing(lab, 12, 33000);
    t.is(shares.get(r1!), 4);
    t.is(shares.get(r2!), 8);
    await cli("real", "weight", vip, r1!, "0");
    t.deepEqual([...(await realsServing(lab, 6, 33100)).keys()], [r2]);
    await cli("real", "remove", vip, r1!);
    t.deepEqual((await natlb!.status()).services[0]!.reals.map((r) => r.ip), [r2]);

    const refused = await natlb!.cli(["real", "add", `${lab.vip}:81`, r3!]);
    t.not(refused.code, 0);
    t.regex(refused.stderr, /no service 198\.18\.0\.100:81\/tcp/);
    const malformed = await natlb!.cli(["real", "add", vip, "not-an-ip"]);
    t.not(malformed.code, 0);

    await cli("service", "add", `${lab.vip2}:8000`, "--scheduler", "rr");
    await cli("real", "add", `${lab.vip2}:8000`, `${r3}:${REAL_PORT}`);
    const second = await runDownload(lab, { url: blobUrl(lab.vip2, 8000, 1024, "cli"), conns: 1, count: 2, localPortBase: 33200 });
    t.deepEqual(second.results.map((r) => r.real), [r3, r3]);

    await cli("reload");
    const status = await natlb!.status();
    t.deepEqual(status.services.map((s) => `${s.vip}:${s.port}`), [vip], "reload went back to the file");
    t.deepEqual(status.services[0]!.reals.map((r) => [r.ip, r.weight]), [[r1, 1]]);
  });
});
