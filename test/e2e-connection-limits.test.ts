// Connection limits, the fallback real and the hash schedulers' flags in the lab: connections held
// from the client fill reals to maxConns, the overflow goes to the fallback real (counted by natlb's
// flow map and by the servers' own sockets), a full real takes connections again once it has fewer
// than minConnsToResume, mh-port spreads one client's connections, and sh-fallback moves a client off
// its full real where plain sh sends it to the fallback real or drops it (dropRealsFull).
import test from "ava";
import type { BalancerProcess } from "../lab/balancerProcess";
import { blobSha256 } from "../lab/blobContent";
import { blobUrl, runDownload } from "../lab/download";
import type { Lab } from "../lab/topology";
import { waitUntil } from "../lab/wait";
import { holdConnections } from "./support/heldConnections";
import { REAL_PORT, SERVICE_PORT, withNatLab } from "./support/lab";

/** Closed flows leave the counts quickly (seconds). */
const SHORT_CLOSING_TIMEOUTS = { tcpTimeWait: 1, tcpFinWait: 2, tcpClose: 1 };

/** The real (by ip) of each held connection, from natlb's flow map, by the client's local port. */
async function realsByPort(natlb: BalancerProcess, vport: number): Promise<Map<number, string>> {
  const conns = await natlb.connections();
  return new Map(conns.filter((c) => c.vip.port === vport).map((c) => [c.client.port, c.real.ip]));
}

/** Established connections each real's own kernel holds on REAL_PORT (the servers' count). */
async function serverConnections(lab: Lab): Promise<number[]> {
  return Promise.all(
    lab.reals.map(async (r) => {
      const out = await lab.exec(r.ns, "ss", ["-Htn", "state", "established", `( sport = :${REAL_PORT} )`]);
      return out.stdout.split("\n").filter((line) => line.trim() !== "").length;
    }),
  );
}

const count = (values: Iterable<string>, ip: string) => [...values].filter((v) => v === ip).length;

test("maxConns: 5 + 5 on the reals, the overflow on the fallback real; a real resumes below minConnsToResume", async (t) => {
  await withNatLab(
    t,
    {
      offloads: true,
      config: (lab) => ({
        services: [
          {
            vip: lab.vip, port: SERVICE_PORT, scheduler: "rr",
            reals: [0, 1].map((i) => ({ ip: lab.reals[i]!.ip, port: REAL_PORT, maxConns: 5, minConnsToResume: 2 })),
            fallback: { ip: lab.reals[2]!.ip, port: REAL_PORT },
          },
        ],
        timeouts: SHORT_CLOSING_TIMEOUTS,
      }),
    },
    async ({ lab, natlb }) => {
      const [r1, r2, r3] = lab.reals.map((r) => r.ip) as [string, string, string];
      const holder = holdConnections(lab.client.ns);
      t.teardown(() => holder.stop());
      const held = await holder.open(lab.vip, SERVICE_PORT, 14);
      t.deepEqual({ opened: held.opened.length, failed: held.failed }, { opened: 14, failed: 0 });

      let status = (await natlb!.status()).services[0]!;
      t.deepEqual(status.reals.map((r) => [r.activeConns, r.overloaded]), [[5, true], [5, true]]);
      t.like(status.fallback, { ip: r3, port: REAL_PORT, inUse: true, activeConns: 4 });
      const byPort = await realsByPort(natlb!, SERVICE_PORT);
      t.deepEqual([r1, r2, r3].map((ip) => count(held.opened.map((p) => byPort.get(p)!), ip)), [5, 5, 4], "the flow map");
      t.deepEqual(await serverConnections(lab), [5, 5, 4], "the servers' sockets");
      const text = await natlb!.cli(["status"]);
      t.regex(text.stdout, /FULL: maxConns 5, takes new connections below 2/);
      t.regex(text.stdout, /fallback IN USE/);

      // Data through the fallback real arrives whole.
      const bytes = 1024 * 1024;
      const download = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "limits"), timeoutMs: 20_000 });
      t.like(download.results[0], { status: 200, bytes, real: r3, sha256: blobSha256("limits", bytes) });

      // r1 down to 2 connections: still full (it resumes below 2): a new connection goes to the fallback.
      const onR1 = held.opened.filter((p) => byPort.get(p) === r1);
      await holder.close(onR1.slice(0, 3));
      const totalOf = async (i: number) => {
        const r = (await natlb!.status()).services[0]!.reals[i]!;
        return r.activeConns + r.inactiveConns;
      };
      await waitUntil("r1's closed connections to expire", async () => (await totalOf(0)) === 2, 15_000, 100);
      t.is((await natlb!.status()).services[0]!.reals[0]!.overloaded, true);
      const whileFull = await holder.open(lab.vip, SERVICE_PORT, 1);
      t.is((await realsByPort(natlb!, SERVICE_PORT)).get(whileFull.opened[0]!), r3, "r1 at minConnsToResume takes nothing yet");

      // Down to 1: r1 takes new connections again (r2 is still full).
      await holder.close(onR1.slice(3, 4));
      await waitUntil("r1's last closed connection to expire", async () => (await totalOf(0)) === 1, 15_000, 100);
      status = (await natlb!.status()).services[0]!;
      t.deepEqual(status.reals.map((r) => r.overloaded), [false, true]);
      t.is(status.fallback!.inUse, false);
      const resumed = await holder.open(lab.vip, SERVICE_PORT, 2);
      const after = await realsByPort(natlb!, SERVICE_PORT);
      t.deepEqual(resumed.opened.map((p) => after.get(p)), [r1, r1], "r1 resumed; r2 still full");
      t.deepEqual(await serverConnections(lab), [3, 5, 5], "the servers' sockets after the changes");
      t.is((await natlb!.status()).counters.dropRealsFull, 0, "a fallback real leaves nothing to drop");
    },
  );
});

test("mh with mh-port: one client's connections spread over every real", async (t) => {
  await withNatLab(
    t,
    {
      offloads: true,
      config: (lab) => ({
        services: [{ vip: lab.vip, port: SERVICE_PORT, scheduler: "mh", schedulerFlags: ["mh-port"], reals: lab.reals.map((r) => ({ ip: r.ip, port: REAL_PORT })) }],
      }),
    },
    async ({ lab, natlb }) => {
      const holder = holdConnections(lab.client.ns);
      t.teardown(() => holder.stop());
      const held = await holder.open(lab.vip, SERVICE_PORT, 30);
      t.is(held.opened.length, 30);
      const byPort = await realsByPort(natlb!, SERVICE_PORT);
      const perReal = lab.reals.map((r) => count(held.opened.map((p) => byPort.get(p)!), r.ip));
      // Without mh-port all 30 would land on the one real the client's address hashes to.
      t.true(perReal.every((n) => n > 0), `per real: ${perReal.join("/")}`);
      t.deepEqual(await serverConnections(lab), perReal, "the servers' sockets");
    },
  );
});

test("sh: a client whose real is full moves on with sh-fallback; without it, to the fallback real or dropped (dropRealsFull)", async (t) => {
  const ports = { withFlag: SERVICE_PORT, plain: SERVICE_PORT + 1, withFallbackReal: SERVICE_PORT + 2 };
  await withNatLab(
    t,
    {
      offloads: true,
      config: (lab) => {
        const reals = (n: number) => lab.reals.slice(0, n).map((r) => ({ ip: r.ip, port: REAL_PORT, maxConns: 2 }));
        return {
          services: [
            { vip: lab.vip, port: ports.withFlag, scheduler: "sh", schedulerFlags: ["sh-fallback"], reals: reals(3) },
            { vip: lab.vip, port: ports.plain, scheduler: "sh", reals: reals(3) },
            { vip: lab.vip, port: ports.withFallbackReal, scheduler: "sh", reals: reals(2), fallback: { ip: lab.reals[2]!.ip, port: REAL_PORT } },
          ],
        };
      },
    },
    async ({ lab, natlb }) => {
      const holder = holdConnections(lab.client.ns);
      t.teardown(() => holder.stop());
      const homes = new Map<number, string>();
      for (const port of Object.values(ports)) {
        const held = await holder.open(lab.vip, port, 2);
        t.is(held.opened.length, 2);
        const byPort = await realsByPort(natlb!, port);
        const reals = held.opened.map((p) => byPort.get(p)!);
        t.is(reals[0], reals[1], `port ${port}: sh keeps the client on one real`);
        homes.set(port, reals[0]!);
      }
      const moved = await holder.open(lab.vip, ports.withFlag, 1);
      const movedTo = (await realsByPort(natlb!, ports.withFlag)).get(moved.opened[0]!);
      t.truthy(movedTo);
      t.not(movedTo, homes.get(ports.withFlag), "sh-fallback: on to another real");

      const toFallback = await holder.open(lab.vip, ports.withFallbackReal, 1);
      t.is((await realsByPort(natlb!, ports.withFallbackReal)).get(toFallback.opened[0]!), lab.reals[2]!.ip, "plain sh: the fallback real");

      const before = (await natlb!.status()).counters.dropRealsFull;
      const dropped = await holder.open(lab.vip, ports.plain, 1, 2500);
      t.deepEqual(dropped, { opened: [], failed: 1 }, "plain sh without a fallback real: no connection");
      const status = await natlb!.status();
      t.true(status.counters.dropRealsFull > before, `dropRealsFull ${before} -> ${status.counters.dropRealsFull}`);
      const plain = status.services.find((s) => s.port === ports.plain)!;
      t.deepEqual(plain.reals.filter((r) => r.overloaded).map((r) => r.ip), [homes.get(ports.plain)]);
      t.is(status.counters.dropNoReal, 0);
    },
  );
});
