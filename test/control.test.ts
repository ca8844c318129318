// The control socket: HTTP over a unix socket between the CLI and the daemon.

import test from "ava";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ControlClient,
  defaultSocketPath,
  requestControl,
  startControlServer,
  type ControlHandlers,
  type ControlServer,
} from "../src/control";
import { ApiError, ControlError } from "../src/errors";

interface Ctx {
  teardown(fn: () => unknown): void;
}

async function tempDir(t: Ctx): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "natlb-ctl-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const handlers: ControlHandlers = {
  "GET /status": async () => ({ services: 2, uptimeS: 12 }),
  "GET /conns": async (req) => ({ limit: Number(req.query.get("limit") ?? 10), flows: [] }),
  "GET /health": async () => [{ real: "198.18.1.11:8080", up: true }],
};

async function serve(t: Ctx, path: string, h: ControlHandlers = handlers): Promise<ControlServer> {
  const server = await startControlServer(path, h);
  t.teardown(() => server.close());
  return server;
}

/** Leaves a socket file nobody listens on: a child binds it and is killed before it can clean up. */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(
    process.execPath,
    ["-e", `require("net").createServer().listen(${JSON.stringify(path)}, () => process.stdout.write("ready\\n")); setTimeout(() => {}, 30000);`],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await once(child.stdout!, "data");
  child.kill("SIGKILL");
  await once(child, "exit");
  if (!statSync(path).isSocket()) throw new Error("expected a leftover socket file");
}

test("serves /status, /conns, /health as JSON to requestControl and ControlClient", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "natlb.sock");
  await serve(t, path);
  t.deepEqual(await requestControl(path, "/status"), { services: 2, uptimeS: 12 });
  t.deepEqual(await requestControl(path, "GET /conns?limit=5", 1000), { limit: 5, flows: [] });
  const client = new ControlClient(path, { timeoutMs: 1000 });
  t.deepEqual(await client.status(), { services: 2, uptimeS: 12 });
  t.deepEqual(await client.conns(), { limit: 10, flows: [] });
  t.deepEqual(await client.health(), [{ real: "198.18.1.11:8080", up: true }]);
});

// Serial: the umask is process-wide, so no other test may run while it is changed.
test.serial("creates the directory 0750 and the socket 0660, never world-accessible", async (t) => {
  const dir = await tempDir(t);
  const sub = join(dir, "run", "natlb");
  const path = join(sub, "natlb.sock");
  // Even with a permissive umask the socket must not be world-writable.
  const previous = process.umask(0);
  t.teardown(() => process.umask(previous));
  await serve(t, path);
  const s = await stat(path);
  t.true(s.isSocket());
  t.is(s.mode & 0o777, 0o660);
  t.is(s.mode & 0o007, 0, "no access for others");
  t.is((await stat(sub)).mode & 0o777, 0o750);
  t.is((await stat(join(dir, "run"))).mode & 0o777, 0o750);
  t.is(process.umask(previous), 0, "our umask is restored after listening");
});

test("an existing directory keeps its mode", async (t) => {
  const dir = await tempDir(t);
  const before = (await stat(dir)).mode & 0o777;
  await serve(t, join(dir, "natlb.sock"));
  t.is((await stat(dir)).mode & 0o777, before);
});

test("unknown route -> 404 with a JSON error naming the routes; wrong method -> 405", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "natlb.sock");
  await serve(t, path);
  const e = await t.throwsAsync(requestControl(path, "/nope"), { instanceOf: ApiError });
  t.is(e.status, 404);
  t.is(e.code, "E_NOT_FOUND");
  t.true(e.message.includes("GET /nope") && e.message.includes("GET /status"), e.message);
  const m = await t.throwsAsync(requestControl(path, "POST /status"), { instanceOf: ApiError });
  t.is(m.status, 405);
});

test("a handler that throws -> 500 with its message; ApiError keeps its status", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "natlb.sock");
  await serve(t, path, {
    "GET /status": async () => {
      throw new Error("flow map unavailable");
    },
    "GET /health": () => {
      throw new ApiError("unknown service 198.18.0.9:80/tcp", { status: 404, code: "E_UNKNOWN_SERVICE" });
    },
  });
  const e = await t.throwsAsync(requestControl(path, "/status"), { instanceOf: ApiError });
  t.is(e.status, 500);
  t.true(e.message.includes("flow map unavailable"), e.message);
  const a = await t.throwsAsync(requestControl(path, "/health"), { instanceOf: ApiError });
  t.is(a.status, 404);
  t.is(a.code, "E_UNKNOWN_SERVICE");
  t.is(a.message, "unknown service 198.18.0.9:80/tcp");
  // The server keeps serving after errors.
  await t.throwsAsync(requestControl(path, "/status"), { instanceOf: ApiError });
});

test("POST bodies reach the handler; invalid JSON is a 400", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "natlb.sock");
  await serve(t, path, { "POST /weight": async (req) => ({ echo: req.body }) });
  t.deepEqual(await requestControl(path, "POST /weight", 1000, { body: { real: "198.18.1.11:80", weight: 0 } }), {
    echo: { real: "198.18.1.11:80", weight: 0 },
  });
  const http = await import("node:http");
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request({ socketPath: path, path: "/weight", method: "POST" }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end("{not json");
  });
  t.is(status, 400);
});

test("bigint counters are sent as numbers (or strings beyond 2^53)", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "natlb.sock");
  await serve(t, path, { "GET /status": () => ({ packets: 42n, bytes: 2n ** 64n - 1n, ring: new Uint16Array([1, 2]) }) });
  t.deepEqual(await requestControl(path, "/status"), { packets: 42, bytes: "18446744073709551615", ring: [1, 2] });
});

test("a stale socket is replaced", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "natlb.sock");
  await staleSocket(path);
  const stale = await t.throwsAsync(requestControl(path, "/status"), { instanceOf: ControlError });
  t.is(stale.code, "E_CONTROL_NO_DAEMON");
  t.true(stale.message.includes("stale") && stale.message.includes("natlb run --config"), stale.message);
  await serve(t, path);
  t.deepEqual(await requestControl(path, "/status"), { services: 2, uptimeS: 12 });
});

test("refuses to start when a live daemon answers; the live one keeps working", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "natlb.sock");
  await serve(t, path);
  const e = await t.throwsAsync(startControlServer(path, handlers), { instanceOf: ControlError });
  t.is(e.code, "E_CONTROL_IN_USE");
  t.true(e.message.includes(path) && e.message.includes("already running"), e.message);
  t.deepEqual(await requestControl(path, "/status"), { services: 2, uptimeS: 12 });
});

test("refuses to delete a path that is not a socket", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "natlb.sock");
  await writeFile(path, "precious");
  const e = await t.throwsAsync(startControlServer(path, handlers), { instanceOf: ControlError });
  t.is(e.code, "E_CONTROL_NOT_SOCKET");
  t.is(await readFile(path, "utf8"), "precious");
});

test("rejects relative and over-long socket paths", async (t) => {
  const rel = await t.throwsAsync(startControlServer("natlb.sock", handlers), { instanceOf: ControlError });
  t.is(rel.code, "E_CONTROL_PATH");
  const long = await t.throwsAsync(startControlServer("/tmp/" + "x".repeat(120), handlers), { instanceOf: ControlError });
  t.is(long.code, "E_CONTROL_PATH");
});

test("close() removes the socket file and stops answering; closing twice is fine", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "natlb.sock");
  const server = await startControlServer(path, handlers);
  await requestControl(path, "/status");
  await server.close();
  await server.close();
  t.false(existsSync(path));
  const e = await t.throwsAsync(requestControl(path, "/status"), { instanceOf: ControlError });
  t.is(e.code, "E_CONTROL_NO_DAEMON");
});

test("client error when no daemon: says where and how to start one", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "absent.sock");
  const e = await t.throwsAsync(new ControlClient(path).status(), { instanceOf: ControlError });
  t.is(e.code, "E_CONTROL_NO_DAEMON");
  t.is(e.message, `no natlb daemon on ${path}: start one with \`natlb run --config <file>\``);
  t.is(e.socketPath, path);
});

test("client times out on a daemon that does not answer; close() still completes", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "natlb.sock");
  const server = await startControlServer(path, { "GET /status": () => sleep(5000).then(() => ({})) });
  const started = Date.now();
  const e = await t.throwsAsync(requestControl(path, "/status", 200), { instanceOf: ControlError });
  t.is(e.code, "E_CONTROL_TIMEOUT");
  t.true(Date.now() - started < 2000);
  const closing = Date.now();
  await server.close();
  t.true(Date.now() - closing < 2000, "close does not wait for the hanging handler");
});

test("an answer that is not a natlb JSON answer is a protocol error", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "other.sock");
  const http = await import("node:http");
  const other = http.createServer((_req, res) => res.end("<html>hello</html>"));
  other.listen(path);
  await once(other, "listening");
  t.teardown(() => new Promise<void>((resolve) => other.close(() => resolve())));
  const e = await t.throwsAsync(requestControl(path, "/status", 1000), { instanceOf: ControlError });
  t.is(e.code, "E_CONTROL_PROTOCOL");
});

test("defaultSocketPath names this network namespace's inode", (t) => {
  const ino = statSync("/proc/self/ns/net").ino;
  t.is(defaultSocketPath(), `/run/natlb/natlb-${ino}.sock`);
});

test("defaultSocketPath differs in another network namespace", (t) => {
  // `unshare -n` gives the child an anonymous namespace that disappears when it exits.
  const script = `console.log(require(${JSON.stringify(require.resolve("../src/control"))}).defaultSocketPath())`;
  const result = spawnSync("unshare", ["-n", process.execPath, "-e", script], { encoding: "utf8", timeout: 10_000 });
  if (result.status !== 0) {
    t.log(`unshare -n unavailable here (${result.stderr.trim() || result.error?.message}); skipped`);
    t.pass();
    return;
  }
  const other = result.stdout.trim();
  t.regex(other, /^\/run\/natlb\/natlb-\d+\.sock$/);
  t.not(other, defaultSocketPath());
});
