// The operator's daily commands against the real daemon in the lab: `natlb real drain --wait` ending
// when the last held connection ends (and at its timeout with --then remove), with its events in
// order; slow start's growing share of new short connections; `natlb service edit` switching rr to sh
// under an established stream (sha256); `natlb save` giving a file that check-config accepts and that
// runs into the same status.
import test from "ava";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { NATLB_CLI, startBalancer } from "../lab/balancerProcess";
import { startBlobServer } from "../lab/blobServer";
import { blobUrl, runDownload } from "../lab/download";
import { sleep, waitUntil } from "../lab/wait";
import { watchEvents } from "../src/control/eventsClient";
import type { BalancerStatus } from "../src/balancer";
import type { DrainResult } from "../src/drain";
import type { NatlbEvent } from "../src/events";
import { REAL_PORT, SERVICE_PORT, tcpService, withNatLab } from "./support/lab";
import { startPacedClient, startPacedServer, startStreamClient, startStreamServer } from "./support/pacedStream";

/** The drain test's service: VIP:HELD_PORT -> r1:HELD_REAL_PORT, a stream server that holds connections. */
const HELD_PORT = 81;
const HELD_REAL_PORT = 9101;
/** Closed connections leave the flow map (and the real's counts) within a second or two. */
const SHORT_TIMEOUTS = { tcpFinWait: 1, tcpTimeWait: 1, tcpClose: 1 };

test.serial("real drain --wait: returns once the last held connection has ended; at its timeout with --then remove; events in order", async (t) => {
  const config = (lab: { vip: string; reals: { ip: string }[] }) => ({
    services: [{ vip: lab.vip, port: HELD_PORT, scheduler: "rr", reals: [{ ip: lab.reals[0]!.ip, port: HELD_REAL_PORT }] }],
    timeouts: SHORT_TIMEOUTS,
  });
  await withNatLab(t, { offloads: true, config }, async ({ lab, natlb }) => {
    const service = `${lab.vip}:${HELD_PORT}`;
    const real = `${lab.reals[0]!.ip}:${HELD_REAL_PORT}`;
    const stop = new AbortController();
    t.teardown(() => stop.abort());
    const events: NatlbEvent[] = [];
    const watching = (async () => {
      for await (const e of watchEvents(natlb!.socket, { signal: stop.signal })) events.push(e);
    })();
    watching.catch(() => undefined); // awaited below; a failure before then must not go unhandled
    const server = await startStreamServer(lab, 1, HELD_REAL_PORT, { sendBytes: 1000, holdOpen: true, maxSeconds: 120 });
    t.teardown(() => server.stop());

    // Two held connections: the client closes the first 4 s after its last byte, the second 9 s after.
    const clients = [4000, 9000].map((lingerMs, i) => startStreamClient(lab, { host: lab.vip, port: HELD_PORT, localPort: 41_000 + i, expectBytes: 1000, lingerMs, timeoutMs: 30_000 }));
    t.teardown(() => Promise.all(clients.map((c) => c.stop())));
    await Promise.all(clients.map((c) => c.received(10_000)));
    t.is((await natlb!.status()).services[0]!.reals[0]!.activeConns, 2);
    const started = Date.now();
    const drain = await natlb!.cli(["real", "drain", service, lab.reals[0]!.ip, "--wait", "--timeout", "30s", "--json"]);
    const returned = Date.now();
    t.is(drain.code, 0, drain.stderr);
    const result = JSON.parse(drain.stdout) as DrainResult & { ok: boolean };
    t.like(result, { ok: true, service: `${service}/tcp`, real, connectionsLeft: 0, deadlineHit: false, then: "keep", done: "kept" });
    // It returned after the last connection ended (the server saw its close), and long before the timeout.
    const lastClosed = Number((await server.event("closed", 41_001, 1000))["t"]);
    t.true(returned >= lastClosed, `returned ${returned - lastClosed} ms after the last close`);
    t.true(started < lastClosed, "the drain began while the last connection was still open");
    t.true(returned - started < 20_000, `took ${returned - started} ms`);
    t.like((await natlb!.status()).services[0]!.reals[0], { weight: 0, activeConns: 0, inactiveConns: 0 });

    // Again with a connection that stays: the timeout ends the wait (exit 1) and --then remove takes the real out.
    t.is((await natlb!.cli(["real", "weight", service, lab.reals[0]!.ip, "1"])).code, 0);
    const stays = startStreamClient(lab, { host: lab.vip, port: HELD_PORT, localPort: 41_010, expectBytes: 1000, lingerMs: 40_000, timeoutMs: 50_000 });
    t.teardown(() => stays.stop());
    await stays.received(10_000);
    const before = Date.now();
    const timedOut = await natlb!.cli(["real", "drain", service, real, "--wait", "--timeout", "3s", "--then", "remove", "--json"]);
    const took = Date.now() - before;
    t.is(timedOut.code, 1, timedOut.stderr);
    t.like(JSON.parse(timedOut.stdout), { ok: false, connectionsLeft: 1, deadlineHit: true, then: "remove", done: "removed" });
    t.true(took >= 3000 && took < 10_000, `took ${took} ms`);
    t.deepEqual((await natlb!.status()).services[0]!.reals, []);
    // The removed real's connection goes on (deadRealFlows "keep" for TCP).
    t.is(stays.failure(), undefined);
    t.true((await natlb!.connections()).some((c) => c.client.port === 41_010));

    // The events, in order: each drain's weight change, then what followed it, then drainFinished.
    await waitUntil("the second drainFinished event", () => events.filter((e) => e.type === "drainFinished").length === 2, 5000, 50);
    const story = events.flatMap((e) => {
      if (e.type === "drainFinished") return [`drainFinished ${e.done} ${e.connectionsLeft}`];
      if (e.type !== "change") return [];
      const changed = (e.change["servicesChanged"] as Array<{ weights?: string[]; realsRemoved?: string[] }>)[0];
      return [changed?.weights ? `weight ${changed.weights.join()}` : `removed ${changed?.realsRemoved?.join()}`];
    });
    t.deepEqual(story, [
      `weight ${real} 1->0`, "drainFinished kept 0",
      `weight ${real} 0->1`,
      `weight ${real} 1->0`, `removed ${real}`, "drainFinished removed 1",
    ]);

    // --then reset: the real comes back, a connection stays past the timeout; at the end the real's
    // connections (this one and the one still open from before its removal) are reset at both ends.
    t.is((await natlb!.cli(["real", "add", service, real])).code, 0);
    const reset = startStreamClient(lab, { host: lab.vip, port: HELD_PORT, localPort: 41_020, expectBytes: 1000, lingerMs: 40_000, timeoutMs: 50_000 });
    t.teardown(() => reset.stop());
    await reset.received(10_000);
    const cut = await natlb!.cli(["real", "drain", service, real, "--wait", "--timeout", "2s", "--then", "reset", "--json"]);
    t.is(cut.code, 1, cut.stderr);
    t.like(JSON.parse(cut.stdout), { connectionsLeft: 2, deadlineHit: true, then: "reset", done: "reset" });
    for (const port of [41_010, 41_020]) t.is((await server.event("closed", port, 5000))["reason"], "ECONNRESET", `port ${port}`);
    // (An idle, lingering stream client does not report what it receives; e2e-dead-reals checks the client's side of a reset.)
    t.false((await natlb!.connections()).some((c) => c.client.port === 41_010 || c.client.port === 41_020));
    stop.abort();
    await watching;
  });
});

test.serial("slow start: a real added with slowStartS gets a growing share of new short connections, then its full share; coming back up ramps again", async (t) => {
  const SLOW_START_S = 12;
  // Tolerant of a loaded machine: a real is down after three failed checks, not one slow answer.
  const healthCheck = { type: "http", path: "/health", intervalMs: 300, timeoutMs: 2000, rise: 1, fall: 3 };
  await withNatLab(
    t,
    { offloads: true, config: (lab) => ({ services: [tcpService(lab, [1, 1], { slowStartS: SLOW_START_S, healthCheck })] }) },
    async ({ lab, natlb, servers }) => {
      const added = await natlb!.cli(["real", "add", `${lab.vip}:${SERVICE_PORT}`, `${lab.reals[2]!.ip}:${REAL_PORT}`]);
      t.is(added.code, 0, added.stderr);
      const addedAt = Date.now();
      const ramping = (await natlb!.status()).services[0]!.reals[2]!;
      t.true(ramping.slowStart !== undefined && ramping.slowStart.effectiveWeight < 0.3, JSON.stringify(ramping));
      t.true(Math.abs(Date.parse(ramping.slowStart!.endsAt) - (addedAt + SLOW_START_S * 1000)) < 2000, ramping.slowStart?.endsAt);
      // Windows of 60 short connections each, about one a second, until the ramp has been over for a while.
      const windows: Array<{ atS: number; share: number }> = [];
      for (let w = 0; w < 60 && (windows.length === 0 || windows.at(-1)!.atS < SLOW_START_S + 2); w++) {
        if (w > 0) await sleep(700);
        const atS = (Date.now() - addedAt) / 1000;
        const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 1000, `ss${w}`), conns: 4, count: 60 });
        t.is(summary.failed, 0);
        const third = summary.results.filter((r) => r.real?.startsWith(lab.reals[2]!.ip)).length;
        windows.push({ atS, share: third / summary.results.length });
      }
      t.log(windows.map((w) => `${w.atS.toFixed(1)} s: ${(w.share * 100).toFixed(0)} %`).join(", "));
      const first = windows[0]!;
      const last = windows.at(-1)!;
      // At the start 1/11 of a weight next to two whole ones (about 4 %); at the end a third.
      t.true(first.atS < 4 && first.share < 0.2, `first window ${JSON.stringify(first)}`);
      t.true(last.atS > SLOW_START_S && Math.abs(last.share - 1 / 3) < 0.08, `last window ${JSON.stringify(last)}`);
      const middle = windows.filter((w) => w.atS > SLOW_START_S / 2 && w.atS < SLOW_START_S - 1.5);
      for (const w of middle) t.true(w.share > first.share && w.share < last.share, `middle window ${JSON.stringify(w)}`);
      t.true(middle.length > 0, "a window in the ramp's second half");
      t.is((await natlb!.status()).services[0]!.reals[2]!.slowStart, undefined);

      // The real goes down (its server stops) and comes back: it ramps again from the bottom.
      const third = () => natlb!.status().then((s) => s.services[0]!.reals[2]!);
      await servers[2]!.stop();
      await waitUntil("the third real down", async () => !(await third()).up, 10_000, 100);
      t.is((await third()).slowStart, undefined, "a real that is down does not ramp");
      servers[2] = await startBlobServer(lab, 3, REAL_PORT);
      await waitUntil("the third real up again", async () => (await third()).up, 10_000, 50);
      const upAt = Date.now();
      const again = await third();
      t.true(again.slowStart !== undefined && again.slowStart.effectiveWeight < 0.3, JSON.stringify(again));
      t.true(Math.abs(Date.parse(again.slowStart!.endsAt) - (upAt + SLOW_START_S * 1000)) < 2000, again.slowStart?.endsAt);
    },
  );
});

test.serial("service edit rr -> sh under an established stream: the stream ends intact (sha256), new connections follow the client hash", async (t) => {
  const PORT = 82;
  const REAL = 9102;
  const config = (lab: { vip: string; reals: { ip: string }[] }) => ({
    services: [{ vip: lab.vip, port: PORT, scheduler: "rr", reals: lab.reals.map((r) => ({ ip: r.ip, port: REAL })) }],
  });
  await withNatLab(t, { offloads: true, config }, async ({ lab, natlb }) => {
    const chunkBytes = 64 * 1024;
    const chunks = 200;
    const servers = await Promise.all([1, 2, 3].map((i) => startPacedServer(lab, i, REAL, { chunkBytes, intervalMs: 50, chunks, maxSeconds: 90 })));
    t.teardown(() => Promise.all(servers.map((s) => s.stop())));
    // A 10 s stream, established before the edit.
    const stream = startPacedClient(lab, { host: lab.vip, port: PORT, localPort: 42_000, expectBytes: chunks * chunkBytes, timeoutMs: 40_000 });
    t.teardown(() => stream.stop());
    await stream.waitForBytes(10 * chunkBytes, 15_000);
    const edit = await natlb!.cli(["service", "edit", `${lab.vip}:${PORT}`, "--scheduler", "sh", "--json"]);
    t.is(edit.code, 0, edit.stderr);
    t.like(JSON.parse(edit.stdout), { ok: true, action: "service edit", set: { scheduler: "sh" } });
    t.true(stream.bytes() < chunks * chunkBytes, "the edit came while the stream was under way");
    t.is((await natlb!.status()).services[0]!.scheduler, "sh");
    const received = await stream.received(30_000);
    const server = servers.find((s) => s.acceptedPorts().includes(42_000))!;
    const sent = await server.sentTo(42_000, 5000);
    t.is(received.bytes, chunks * chunkBytes);
    t.is(received.sha256, sent.sha256);

    // sh: six new connections from the one client all land on one real (rr would spread them over three).
    const clients = [1, 2, 3, 4, 5, 6].map((i) => startPacedClient(lab, { host: lab.vip, port: PORT, localPort: 42_000 + i, expectBytes: chunkBytes, timeoutMs: 20_000 }));
    t.teardown(() => Promise.all(clients.map((c) => c.stop())));
    await waitUntil("six connections accepted", () => servers.flatMap((s) => s.acceptedPorts()).filter((p) => p > 42_000).length === 6, 15_000, 50);
    const holders = servers.map((s) => s.acceptedPorts().filter((p) => p > 42_000).length);
    t.is(holders.filter((n) => n > 0).length, 1, `connections per real: ${holders.join(", ")}`);
  });
});

test.serial("natlb save: the running config with the socket's changes; check-config accepts it and a daemon run from it has the same status", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "natlb-save-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await withNatLab(t, { offloads: true, config: (lab) => ({ services: [tcpService(lab, [1, 1])] }) }, async ({ lab, natlb }) => {
    const service = `${lab.vip}:${SERVICE_PORT}`;
    for (const args of [
      ["real", "add", service, `${lab.reals[2]!.ip}:${REAL_PORT}`, "--weight", "3"],
      ["real", "weight", service, lab.reals[0]!.ip, "2"],
      ["service", "edit", service, "--set", JSON.stringify({ scheduler: "mh", slowStartS: 20, deadRealFlows: "reset" })],
      ["service", "add", `${lab.vip2}:53/udp`, "--scheduler", "rr"],
      ["real", "add", `${lab.vip2}:53/udp`, `${lab.reals[1]!.ip}:5353`],
    ]) {
      const run = await natlb!.cli(args);
      t.is(run.code, 0, `${args.join(" ")}: ${run.stderr}`);
    }
    const saved = await natlb!.cli(["save"]);
    t.is(saved.code, 0, saved.stderr);
    const file = join(dir, "saved.json");
    writeFileSync(file, saved.stdout);
    const checked = await promisify(execFile)(process.execPath, [NATLB_CLI, "check-config", file]);
    t.deepEqual(JSON.parse(checked.stdout), JSON.parse(saved.stdout));
    const config = JSON.parse(saved.stdout) as { services: Array<{ scheduler: string; slowStartS?: number; reals: unknown[] }> };
    t.like(config.services[0], { scheduler: "mh", slowStartS: 20, deadRealFlows: "reset" });
    t.is(config.services[0]!.reals.length, 3);

    const shape = (status: BalancerStatus) =>
      status.services.map((s) => ({ vip: s.vip, port: s.port, protocol: s.protocol, scheduler: s.scheduler, reals: s.reals.map((r) => ({ ip: r.ip, port: r.port, weight: r.weight, up: r.up })) }));
    const before = shape(await natlb!.status());
    await natlb!.stop();
    const again = await startBalancer(lab, config);
    try {
      t.deepEqual(shape(await again.status()), before);
      const resaved = await again.cli(["save", "--json"]);
      t.deepEqual(JSON.parse(resaved.stdout), config);
      // And it forwards: a download through the edited service.
      await sleep(200);
      const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 100_000, "saved"), conns: 2, count: 4 });
      t.is(summary.failed, 0);
    } finally {
      await again.stop();
    }
  });
});
