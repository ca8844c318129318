// The http, https, udp and exec health checkers against real local servers and programs, flap
// damping with a clock the test drives.

import test from "ava";
import { execFileSync } from "node:child_process";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseConfig, type HttpHealthCheckConfig } from "../src/config";
import { ExecHealthChecker, FlapDamping, HttpHealthChecker, RealHealthState, UdpHealthChecker } from "../src/health";

const LOCAL = "127.0.0.1";

/** The resolved http check of a service with `healthCheck`, as natlb would run it. */
function httpSettings(healthCheck: Record<string, unknown>): HttpHealthCheckConfig {
  const config = parseConfig({ services: [{ vip: "198.18.0.100", port: 80, reals: [], healthCheck: { type: "http", ...healthCheck } }] });
  return config.services[0]!.healthCheck as HttpHealthCheckConfig;
}

async function httpServer(answer: (path: string) => { status: number; body: string }): Promise<{ server: HttpServer; port: number; paths: string[] }> {
  const paths: string[] = [];
  const server = createHttpServer((request, response) => {
    paths.push(`${request.url} host=${request.headers.host}`);
    const { status, body } = answer(request.url ?? "/");
    response.writeHead(status, { "content-type": "text/plain" }).end(body);
  });
  server.listen(0, LOCAL);
  await once(server, "listening");
  return { server, port: (server.address() as AddressInfo).port, paths };
}

test("http: a status in range is up; a 503 is down, and the reason names status, real and path", async (t) => {
  let status = 200;
  const { server, port, paths } = await httpServer(() => ({ status, body: "ok\n" }));
  t.teardown(() => server.close());
  const checker = new HttpHealthChecker(httpSettings({ path: "/healthz", host: "app.example" }));
  const up = await checker.check({ ip: LOCAL, port }, 1000);
  t.like(up, { up: true, outcome: "passed" });
  status = 503;
  const down = await checker.check({ ip: LOCAL, port }, 1000);
  t.like(down, { up: false, outcome: "failed", reason: `http 503 from ${LOCAL}:${port}/healthz` });
  t.deepEqual(paths, ["/healthz host=app.example", "/healthz host=app.example"]);
});

test("http: expectStatus lists and bodyMatch decide", async (t) => {
  let body = "status: ok";
  const { server, port } = await httpServer(() => ({ status: 204, body }));
  t.teardown(() => server.close());
  t.false((await new HttpHealthChecker(httpSettings({ expectStatus: "200" })).check({ ip: LOCAL, port }, 1000)).up);
  t.true((await new HttpHealthChecker(httpSettings({ expectStatus: "200,204" })).check({ ip: LOCAL, port }, 1000)).up);
  const { server: withBody, port: bodyPort } = await httpServer(() => ({ status: 200, body }));
  t.teardown(() => withBody.close());
  const matching = new HttpHealthChecker(httpSettings({ bodyMatch: "status: (ok|degraded)" }));
  t.true((await matching.check({ ip: LOCAL, port: bodyPort }, 1000)).up);
  body = "status: failing";
  const mismatch = await matching.check({ ip: LOCAL, port: bodyPort }, 1000);
  t.like(mismatch, { up: false, outcome: "failed" });
  t.true(mismatch.reason.includes("does not match"), mismatch.reason);
});

test("http: nothing listening is refused, a server that never answers times out in bounds", async (t) => {
  const { server, port } = await httpServer(() => ({ status: 200, body: "" }));
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const refused = await new HttpHealthChecker(httpSettings({})).check({ ip: LOCAL, port }, 1000);
  t.like(refused, { up: false, outcome: "refused" });
  const silent = createHttpServer(() => {
    // never answers
  });
  silent.listen(0, LOCAL);
  await once(silent, "listening");
  t.teardown(() => {
    silent.closeAllConnections();
    silent.close();
  });
  const started = Date.now();
  const timeout = await new HttpHealthChecker(httpSettings({})).check({ ip: LOCAL, port: (silent.address() as AddressInfo).port }, 300);
  t.like(timeout, { up: false, outcome: "timeout" });
  t.true(Date.now() - started < 1500);
});

test("https: a self-signed real is up without verifyTls and down with it", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "natlb-tls-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=app.example",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
  ], { stdio: "ignore" });
  const server = createHttpsServer({ key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) }, (_req, res) => res.end("ok"));
  server.listen(0, LOCAL);
  await once(server, "listening");
  t.teardown(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const base = parseConfig({ services: [{ vip: "198.18.0.100", port: 443, reals: [], healthCheck: { type: "https", host: "app.example" } }] });
  const lenient = base.services[0]!.healthCheck as HttpHealthCheckConfig;
  t.like(await new HttpHealthChecker(lenient).check({ ip: LOCAL, port }, 2000), { up: true, reason: `https 200 from ${LOCAL}:${port}/` });
  const strict = await new HttpHealthChecker({ ...lenient, verifyTls: true }).check({ ip: LOCAL, port }, 2000);
  t.like(strict, { up: false, outcome: "error" });
  t.true(/self[- ]signed|certificate/i.test(strict.reason), strict.reason);
});

async function udpServer(reply: (data: Buffer) => Buffer | undefined): Promise<{ socket: UdpSocket; port: number; got: Buffer[] }> {
  const got: Buffer[] = [];
  const socket = createSocket("udp4");
  socket.on("message", (data, from) => {
    got.push(data);
    const answer = reply(data);
    if (answer) socket.send(answer, from.port, from.address);
  });
  socket.bind(0, LOCAL);
  await once(socket, "listening");
  return { socket, port: socket.address().port, got };
}

test("udp: a matching reply is up, another reply is down, the payload is sent as configured", async (t) => {
  const { socket, port, got } = await udpServer((data) => Buffer.concat([Buffer.from("pong "), data]));
  t.teardown(() => socket.close());
  const up = await new UdpHealthChecker({ payloadHex: Buffer.from("ping").toString("hex"), expect: "^pong ping$" }).check({ ip: LOCAL, port }, 1000);
  t.like(up, { up: true, outcome: "passed" });
  const wrong = await new UdpHealthChecker({ payloadHex: "", expect: "^ready" }).check({ ip: LOCAL, port }, 1000);
  t.like(wrong, { up: false, outcome: "failed" });
  t.deepEqual(got.map((b) => b.toString()), ["ping", ""]);
});

test("udp: a closed port (ICMP port unreachable) is refused; silence is up without expect, down with it", async (t) => {
  const { socket, port } = await udpServer(() => undefined);
  const refusedPort = await (async () => {
    const s = await udpServer(() => undefined);
    const p = s.port;
    await new Promise<void>((resolve) => s.socket.close(() => resolve()));
    return p;
  })();
  t.teardown(() => socket.close());
  const refused = await new UdpHealthChecker({ payloadHex: "00", expect: undefined }).check({ ip: LOCAL, port: refusedPort }, 1000);
  t.like(refused, { up: false, outcome: "refused" });
  t.true(refused.reason.includes("port unreachable"), refused.reason);
  t.like(await new UdpHealthChecker({ payloadHex: "00", expect: undefined }).check({ ip: LOCAL, port }, 300), { up: true, outcome: "passed" });
  t.like(await new UdpHealthChecker({ payloadHex: "00", expect: "x" }).check({ ip: LOCAL, port }, 300), { up: false, outcome: "timeout" });
});

test("exec: exit 0 is up, another status is down with stderr's first line; the real is in the environment", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "natlb-exec-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const seen = join(dir, "seen");
  const script = join(dir, "check.sh");
  writeFileSync(script, `#!/bin/sh\necho "$NATLB_REAL_IP $NATLB_REAL_PORT $NATLB_SERVICE" > ${seen}\n[ "$NATLB_REAL_PORT" = 8080 ] && exit 0\necho "port $NATLB_REAL_PORT is not served" >&2\nexit 3\n`, { mode: 0o755 });
  const checker = new ExecHealthChecker({ command: [script] }, "198.18.0.100:80/tcp");
  t.like(await checker.check({ ip: "198.18.1.11", port: 8080 }, 2000), { up: true, outcome: "passed" });
  t.is(readFileSync(seen, "utf8"), "198.18.1.11 8080 198.18.0.100:80/tcp\n");
  const down = await checker.check({ ip: "198.18.1.11", port: 9090 }, 2000);
  t.like(down, { up: false, outcome: "failed" });
  t.true(down.reason.includes("exited 3") && down.reason.includes("port 9090 is not served"), down.reason);
  t.like(await new ExecHealthChecker({ command: [join(dir, "missing")] }, "s").check({ ip: "198.18.1.11", port: 1 }, 2000), { up: false, outcome: "error" });
});

test("exec: a program that hangs is killed with its children at the timeout", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "natlb-exec-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pidFile = join(dir, "child.pid");
  const started = Date.now();
  const result = await new ExecHealthChecker({ command: ["/bin/sh", "-c", `sleep 30 & echo $! > ${pidFile}; wait`] }, "s").check({ ip: "198.18.1.11", port: 1 }, 400);
  t.like(result, { up: false, outcome: "timeout" });
  t.true(Date.now() - started < 2000);
  const childPid = Number(readFileSync(pidFile, "utf8"));
  let gone = false;
  for (let i = 0; i < 50 && !gone; i++) {
    gone = !existsSync(`/proc/${childPid}`) || readFileSync(`/proc/${childPid}/stat`, "utf8").split(" ")[2] === "Z";
    if (!gone) await sleep(20);
  }
  t.true(gone, `the check's child ${childPid} outlived the timeout`);
});

test("flap damping: the fourth change in the window holds the real down, doubling each time, forgotten when stable", (t) => {
  let now = 1_000_000;
  const damping = { flaps: 4, windowS: 60, holdDownS: 30, maxHoldDownS: 100 };
  const state = new RealHealthState({ rise: 1, fall: 1, downOnRefused: true, flapDamping: damping }, true, () => now);
  const ok = { up: true, outcome: "passed" as const, reason: "ok" };
  const bad = { up: false, outcome: "failed" as const, reason: "bad" };
  t.true(state.record(bad)); // change 1
  now += 1000;
  t.true(state.record(ok)); // 2
  now += 1000;
  t.true(state.record(bad)); // 3
  now += 1000;
  t.false(state.record(ok), "the 4th change within 60 s is held");
  t.false(state.up);
  t.is(state.heldDownUntil, now + 30_000);
  t.true(state.reason.startsWith("flapping: held down until"), state.reason);
  now += 29_000;
  t.false(state.record(ok));
  now += 1000;
  t.true(state.record(ok), "up once the hold-down is over");
  /** Down, up, down a second apart, then up once more: a flap. Returns whether the real came up. */
  const flapThenComeUp = (): boolean => {
    for (const result of [bad, ok, bad]) {
      now += 1000;
      state.record(result);
    }
    now += 1000;
    return state.record(ok);
  };
  // Flapping again soon: held for twice as long.
  t.false(flapThenComeUp(), "held again");
  t.is(state.heldDownUntil, now + 60_000);
  // A third time: capped at maxHoldDownS.
  now += 60_000;
  t.true(state.record(ok));
  t.false(flapThenComeUp(), "held again");
  t.is(state.heldDownUntil, now + 100_000);
  // Stable for a whole maximum hold-down: the next hold-down starts from holdDownS again.
  now += 100_000;
  t.true(state.record(ok));
  now += 200_000;
  t.false(flapThenComeUp(), "held again");
  t.is(state.heldDownUntil, now + 30_000);
});

test("flap damping: changes spread wider than the window never hold", (t) => {
  let now = 0;
  const damping = new FlapDamping({ flaps: 3, windowS: 10, holdDownS: 30, maxHoldDownS: 60 });
  for (let i = 0; i < 10; i++) {
    now += 6000;
    t.is(damping.holdBeforeUp(now), undefined);
    damping.recordChange(now);
  }
  t.is(damping.recentChanges(now), 2);
});
