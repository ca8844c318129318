// The control socket's write routes against bad input: malformed JSON, wrong types, unknown fields,
// oversized bodies, wrong content types, partial requests and stalled clients. The real control
// server and admin routes, a recording stand-in for the Balancer, raw HTTP on a temp socket. Every
// change that gets through is in the audit log with its peer's uid and pid.
import test from "ava";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { diffConfig, parseConfig, type ConfigDiff, type NatlbConfig } from "../src/config";
import { adminRoutes, type ChangeTarget } from "../src/control/adminRoutes";
import { AuditLog } from "../src/control/auditLog";
import { summarizeDiff } from "../src/events";
import { requestControl } from "../src/control/client";
import { startControlServer, type ControlLimits, type ControlServer } from "../src/control/server";
import { ApiError } from "../src/errors";

interface Ctx {
  teardown(fn: () => unknown): void;
}

const CONFIG: NatlbConfig = parseConfig({
  services: [{ vip: "198.18.0.100", port: 80, reals: [{ ip: "198.18.1.11", port: 8080, weight: 3 }, { ip: "198.18.1.12", port: 8080 }] }],
});

const TEST_LIMITS: Partial<ControlLimits> = { headersTimeoutMs: 600, requestTimeoutMs: 1200, maxBodyBytes: 64 * 1024, maxConnections: 8 };

interface Fixture {
  path: string;
  server: ControlServer;
  /** Calls that reached the stand-in balancer, as [method, ...arguments]. */
  calls: unknown[][];
  /** Audit records (pino objects) written so far. */
  records: Record<string, unknown>[];
}

/** A control server with the real admin routes over a recording Balancer stand-in. */
async function fixture(t: Ctx, options: { refuse?: boolean; reloadDiff?: ConfigDiff } = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), "natlb-req-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "natlb.sock");
  const calls: unknown[][] = [];
  const records: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  const record =
    (name: string) =>
    async (...args: unknown[]): Promise<void> => {
      calls.push([name, ...args]);
      if (options.refuse) throw new ApiError("no service 198.18.0.9:80/tcp: list services with `natlb status`", { status: 404 });
    };
  const target: ChangeTarget = {
    addService: record("addService"),
    removeService: record("removeService"),
    addReal: record("addReal"),
    updateReal: record("updateReal"),
    removeReal: record("removeReal"),
    updateService: record("updateService"),
    beginDrain: async (...args: unknown[]) => {
      await record("beginDrain")(...args);
      const result = { service: "198.18.0.100:80/tcp", real: "198.18.1.11:8080", connectionsLeft: 0, deadlineHit: false, then: "keep", done: "kept", waitedMs: 5 } as const;
      return { service: result.service, real: result.real, then: "keep", deadline: undefined, connectionsLeft: () => 0, result: Promise.resolve(result) };
    },
    currentConfig: CONFIG,
    setGatewayRole: (role, reason) => {
      calls.push(["setGatewayRole", role, reason]);
      if (options.refuse) throw new ApiError("this natlb is a lone gateway", { status: 409, code: "E_NOT_IN_PAIR" });
      return { previous: "backup", role, changed: role !== "backup" };
    },
  };
  const reload = async (): Promise<ConfigDiff> => {
    calls.push(["reload"]);
    return options.reloadDiff ?? diffConfig(CONFIG, CONFIG);
  };
  const server = await startControlServer(path, adminRoutes(target, reload, new AuditLog(logger)), { logger, limits: TEST_LIMITS });
  t.teardown(() => server.close());
  return { path, server, calls, records };
}

interface RawAnswer {
  /** HTTP status, 0 when the server closed without answering. */
  status: number;
  body: string;
  /** How long until the server closed the connection, ms. */
  closedAfterMs: number;
}

/** Writes `text` raw, optionally keeps the connection open without sending more, and collects the answer until the server closes. */
function rawRequest(path: string, text: string | Buffer, options: { closeAfterMs?: number; giveUpMs?: number } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket: Socket = connect({ path });
    let received = "";
    const giveUp = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open for ${options.giveUpMs ?? 10_000} ms`));
    }, options.giveUpMs ?? 10_000);
    const closeTimer = options.closeAfterMs === undefined ? undefined : setTimeout(() => socket.destroy(), options.closeAfterMs);
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    socket.on("error", () => undefined); // a reset after the answer is fine: the answer is what counts
    socket.on("close", () => {
      clearTimeout(giveUp);
      if (closeTimer) clearTimeout(closeTimer);
      const match = /^HTTP\/1\.1 (\d{3})/.exec(received);
      const bodyAt = received.indexOf("\r\n\r\n");
      resolve({ status: match ? Number(match[1]) : 0, body: bodyAt < 0 ? "" : received.slice(bodyAt + 4), closedAfterMs: Date.now() - started });
    });
    socket.write(text);
  });
}

function post(route: string, body: string, headers: Record<string, string> = {}): string {
  const [method, path] = route.split(" ");
  const head = { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), connection: "close", ...headers };
  return `${method} ${path} HTTP/1.1\r\nhost: natlb\r\n${Object.entries(head).map(([k, v]) => `${k}: ${v}`).join("\r\n")}\r\n\r\n${body}`;
}

function errorOf(answer: RawAnswer): { code: string; message: string } {
  return (JSON.parse(answer.body) as { error: { code: string; message: string } }).error;
}

const SERVICE = { vip: "198.18.0.100", port: 80 };

test("malformed JSON is a 400 that says so; nothing reaches the balancer", async (t) => {
  const f = await fixture(t);
  for (const body of ["{not json", '{"service": {"vip": "198.18.0.100", "port": 80}, "real": ', "\u0000\u0001"]) {
    const answer = await rawRequest(f.path, post("DELETE /reals", body));
    t.is(answer.status, 400, body);
    t.is(errorOf(answer).code, "E_BAD_JSON");
    t.regex(errorOf(answer).message, /not valid JSON/);
  }
  t.deepEqual(f.calls, []);
});

test("wrong types and bad values: a 400 naming the field; nothing reaches the balancer", async (t) => {
  const f = await fixture(t);
  const cases: Array<[string, unknown, RegExp]> = [
    ["PUT /reals", { service: SERVICE, real: { ip: "198.18.1.11" }, weight: "heavy" }, /at weight: .*number/i],
    ["PUT /reals", { service: SERVICE, real: { ip: "198.18.1.11" }, weight: 70000 }, /at weight: .*65535/],
    ["PUT /reals", { service: { vip: "198.18.0.100", port: "80" }, real: { ip: "198.18.1.11" }, weight: 1 }, /at service\.port/],
    ["POST /reals", { service: SERVICE, real: { ip: "not-an-ip" } }, /at real\.ip/],
    ["POST /reals", { service: SERVICE }, /at real: /],
    ["DELETE /services", { vip: "198.18.0.100", port: 0 }, /at port/],
    ["POST /services", { vip: "198.18.0.101", port: 80, reals: "many" }, /at reals: /],
    ["POST /services", { vip: "198.18.0.101", port: 80, reals: [], scheduler: "fastest" }, /at scheduler: /],
    ["POST /reals", [1, 2, 3], /at the body: /],
    ["POST /reals", "a string", /at the body: /],
  ];
  for (const [route, body, message] of cases) {
    const answer = await rawRequest(f.path, post(route, JSON.stringify(body)));
    t.is(answer.status, 400, `${route} ${JSON.stringify(body)}`);
    t.is(errorOf(answer).code, "E_BAD_BODY");
    t.regex(errorOf(answer).message, message);
    t.true(errorOf(answer).message.startsWith(`${route}: bad request body`), errorOf(answer).message);
  }
  t.deepEqual(f.calls, []);
});

test("unknown fields are refused, at any depth; so is a body for POST /reload and no body for a change", async (t) => {
  const f = await fixture(t);
  const cases: Array<[string, unknown, RegExp]> = [
    ["PUT /reals", { service: SERVICE, real: { ip: "198.18.1.11" }, weight: 1, force: true }, /at the body: unknown field "force": remove it/],
    ["POST /reals", { service: SERVICE, real: { ip: "198.18.1.13", colour: "red" } }, /at real: unknown field "colour"/],
    ["DELETE /services", { ...SERVICE, protocol: "tcp", everything: true }, /everything/],
    ["POST /services", { vip: "198.18.0.101", port: 80, reals: [], healthCheck: { type: "tcp", every: 5 } }, /at healthCheck: unknown field "every"/],
    ["POST /reload", { config: "/etc/shadow" }, /POST \/reload: bad request body/],
    ["DELETE /reals", "", /at the body: /],
  ];
  for (const [route, body, message] of cases) {
    const answer = await rawRequest(f.path, post(route, body === "" ? "" : JSON.stringify(body)));
    t.is(answer.status, 400, `${route} ${JSON.stringify(body)}`);
    t.regex(errorOf(answer).message, message);
  }
  t.deepEqual(f.calls, []);
  // `{}` and no body are both "no arguments" for a reload.
  t.is((await rawRequest(f.path, post("POST /reload", "{}"))).status, 200);
  t.is((await rawRequest(f.path, post("POST /reload", ""))).status, 200);
  t.deepEqual(f.calls, [["reload"], ["reload"]]);
});

test("POST /ha: a role (and keepalived's reason) reaches the balancer and is audited; a bad role is a 400, a refusal keeps its status", async (t) => {
  const f = await fixture(t);
  const ok = await rawRequest(f.path, post("POST /ha", JSON.stringify({ role: "master", reason: "keepalived notify INSTANCE VI_1 MASTER 100" })));
  t.is(ok.status, 200, ok.body);
  t.deepEqual(JSON.parse(ok.body), { ok: true, previous: "backup", role: "master", changed: true });
  t.deepEqual(f.calls, [["setGatewayRole", "master", "keepalived notify INSTANCE VI_1 MASTER 100"]]);
  const audited = f.records.find((r) => r.route === "POST /ha");
  t.like(audited, { result: "applied", change: { ha: "backup->master", reason: "keepalived notify INSTANCE VI_1 MASTER 100" } });
  const plain = await rawRequest(f.path, post("POST /ha", JSON.stringify({ role: "fault" })));
  t.is(plain.status, 200);
  t.deepEqual(f.calls[1], ["setGatewayRole", "fault", "natlb ha fault"]);
  for (const body of [{ role: "primary" }, { role: "master", extra: 1 }, {}, { role: "master", reason: "" }]) {
    const bad = await rawRequest(f.path, post("POST /ha", JSON.stringify(body)));
    t.is(bad.status, 400, JSON.stringify(body));
  }
  t.is(f.calls.length, 2);
  const refusing = await fixture(t, { refuse: true });
  const refused = await rawRequest(refusing.path, post("POST /ha", JSON.stringify({ role: "backup" })));
  t.is(refused.status, 409);
  t.is(errorOf(refused).code, "E_NOT_IN_PAIR");
});

test("a body that is not declared JSON is a 415", async (t) => {
  const f = await fixture(t);
  const answer = await rawRequest(f.path, post("DELETE /services", "vip=198.18.0.100&port=80", { "content-type": "application/x-www-form-urlencoded" }));
  t.is(answer.status, 415);
  t.regex(errorOf(answer).message, /content-type application\/json/);
  t.deepEqual(f.calls, []);
});

test("oversized bodies: a 413 from the declared length without reading it, or once a chunked body passes the limit", async (t) => {
  const f = await fixture(t);
  const big = JSON.stringify({ service: SERVICE, real: { ip: "198.18.1.11" }, pad: "x".repeat(100 * 1024) });
  // Declared too long: refused from the header, and the connection closes without the body being sent.
  const declared = await rawRequest(f.path, post("DELETE /reals", "", { "content-length": String(50 << 20) }));
  t.is(declared.status, 413);
  t.is(errorOf(declared).code, "E_BODY_TOO_LARGE");
  // Chunked, no length: refused once the limit is passed.
  const chunk = (s: string) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;
  const head = "DELETE /reals HTTP/1.1\r\nhost: natlb\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
  const chunked = await rawRequest(f.path, head + chunk(big.slice(0, 40_000)) + chunk(big.slice(40_000)) + "0\r\n\r\n");
  t.is(chunked.status, 413);
  t.regex(errorOf(chunked).message, /over 65536 bytes/);
  t.deepEqual(f.calls, []);
  t.is((await f.server.connections()), 0, "the refused connections are closed");
});

test("a body shorter than its content-length: the server answers 408 after requestTimeout and closes; the handler never runs", async (t) => {
  const f = await fixture(t);
  const text = post("PUT /reals", '{"service":', { "content-length": "100" });
  const answer = await rawRequest(f.path, text);
  t.is(answer.status, 408);
  t.true(answer.closedAfterMs >= 1000 && answer.closedAfterMs < 5000, `closed after ${answer.closedAfterMs} ms`);
  t.deepEqual(f.calls, []);
  t.is(await f.server.connections(), 0);
});

test("a client that sends part of a body and closes: nothing is applied and the server goes on", async (t) => {
  const f = await fixture(t);
  const answer = await rawRequest(f.path, post("PUT /reals", '{"service":', { "content-length": "100" }), { closeAfterMs: 100 });
  t.is(answer.status, 0, "nobody to answer");
  t.deepEqual(f.calls, []);
  t.deepEqual(await requestControl(f.path, "PUT /reals", 2000, { body: { service: SERVICE, real: { ip: "198.18.1.11" }, weight: 0 } }), { ok: true });
  t.is(f.calls.length, 1);
});

test("headers never finished: the connection is closed after headersTimeout; stalled clients are bounded", async (t) => {
  const f = await fixture(t);
  // A slow client that never finishes its headers, and as many stalled ones as the server allows.
  const stalledAt = Date.now();
  const stalled = Array.from({ length: 8 }, () => rawRequest(f.path, "GET /status HTTP/1.1\r\nhost: natlb\r\nx-slow: "));
  await new Promise((resolve) => setTimeout(resolve, 200));
  // One more than maxConnections is turned away at once (closed without an answer), before the
  // stalled ones reach their headers timeout (absolute times: a loaded machine delays both alike).
  const extraAt = Date.now();
  const extra = await rawRequest(f.path, "GET /status HTTP/1.1\r\nhost: natlb\r\nx-slow: ", { giveUpMs: 3000 });
  t.is(extra.status, 0);
  const answers = await Promise.all(stalled);
  const firstStalledClosed = stalledAt + Math.min(...answers.map((a) => a.closedAfterMs));
  t.true(extraAt + extra.closedAfterMs < firstStalledClosed, `the extra connection closed ${extraAt + extra.closedAfterMs - stalledAt} ms in, the first stalled one ${firstStalledClosed - stalledAt} ms in`);
  for (const answer of answers) {
    t.true(answer.status === 408 || answer.status === 0, `status ${answer.status}`);
    t.true(answer.closedAfterMs >= 500 && answer.closedAfterMs < 5000, `closed after ${answer.closedAfterMs} ms`);
  }
  t.is(await f.server.connections(), 0);
  // And it serves again.
  t.deepEqual(await requestControl(f.path, "DELETE /services", 2000, { body: SERVICE }), { ok: true });
});

test("an applied change is logged with the peer's uid and pid, the route and what changed", async (t) => {
  const f = await fixture(t);
  t.deepEqual(await requestControl(f.path, "PUT /reals", 2000, { body: { service: SERVICE, real: { ip: "198.18.1.11" }, weight: 0 } }), { ok: true });
  t.deepEqual(f.calls, [["updateReal", SERVICE, { ip: "198.18.1.11" }, { weight: 0 }]]);
  const audit = f.records.filter((r) => r["audit"] === "change");
  t.is(audit.length, 1);
  t.like(audit[0], {
    level: 30,
    route: "PUT /reals",
    result: "applied",
    by: { via: "control socket", uid: process.getuid!(), gid: process.getgid!(), pid: process.pid },
    change: { service: "198.18.0.100:80/tcp", real: "198.18.1.11:8080", weight: "3->0" },
  });
});

test("the audit record of a new service names its forwarding, its pool and each real's own forwarding", async (t) => {
  const f = await fixture(t);
  const service = {
    vip: "198.18.0.101", port: 80, forwarding: "dr", fullnat: { localAddresses: ["198.18.1.2"] },
    reals: [{ ip: "198.18.1.11" }, { ip: "198.18.1.12", port: 8080, forwarding: "fullnat" }],
  };
  t.deepEqual(await requestControl(f.path, "POST /services", 2000, { body: service }), { ok: true });
  t.deepEqual(await requestControl(f.path, "POST /reals", 2000, { body: { service: SERVICE, real: { ip: "198.18.1.14", forwarding: "nat" } } }), { ok: true });
  const audit = f.records.filter((r) => r["audit"] === "change");
  t.like(audit[0], {
    route: "POST /services",
    change: { forwarding: "dr", fullnat: ["198.18.1.2"], reals: ["198.18.1.11:80 weight 1", "198.18.1.12:8080 weight 1 forwarding fullnat"] },
  });
  t.like(audit[1], { route: "POST /reals", change: { real: "198.18.1.14:80", forwarding: "nat" } });
});

test("a refused change is logged as refused with the error; the client gets the daemon's status", async (t) => {
  const f = await fixture(t, { refuse: true });
  const error = await t.throwsAsync(requestControl(f.path, "DELETE /services", 2000, { body: { vip: "198.18.0.9", port: 80 } }), { instanceOf: ApiError });
  t.is(error.status, 404);
  const audit = f.records.filter((r) => r["audit"] === "change");
  t.is(audit.length, 1);
  t.like(audit[0], { level: 40, route: "DELETE /services", result: "refused", change: { service: "198.18.0.9:80/tcp" }, by: { pid: process.pid } });
  t.regex(JSON.stringify(audit[0]!["err"]), /no service 198\.18\.0\.9/);
});

test("a reload is logged with a summary of what it changed", async (t) => {
  const next = parseConfig({
    services: [
      { vip: "198.18.0.100", port: 80, reals: [{ ip: "198.18.1.11", port: 8080, weight: 1 }, { ip: "198.18.1.13", port: 8080 }] },
      { vip: "198.18.0.101", port: 53, protocol: "udp", reals: [{ ip: "198.18.1.11" }] },
    ],
    timeouts: { udp: 30 },
  });
  const f = await fixture(t, { reloadDiff: diffConfig(CONFIG, next) });
  t.deepEqual(await requestControl(f.path, "POST /reload", 2000), { ok: true });
  const audit = f.records.filter((r) => r["audit"] === "change");
  t.like(audit[0], { route: "POST /reload", result: "applied" });
  t.deepEqual(audit[0]!["change"], {
    servicesAdded: ["198.18.0.101:53/udp"],
    servicesRemoved: [],
    servicesChanged: [
      { service: "198.18.0.100:80/tcp", realsAdded: ["198.18.1.13:8080"], realsRemoved: ["198.18.1.12:8080"], weights: ["198.18.1.11:8080 3->1"], realsReordered: true },
    ],
    servicesUnchanged: 0,
    settingsChanged: ["timeouts"],
  });
});

test("summarizeDiff: an identical config changes nothing", (t) => {
  t.deepEqual(summarizeDiff(diffConfig(CONFIG, CONFIG)), {
    servicesAdded: [],
    servicesRemoved: [],
    servicesChanged: [],
    servicesUnchanged: 1,
    settingsChanged: [],
  });
});

test("a service with an exec health check is refused over the socket (403): only the config file may run programs", async (t) => {
  const f = await fixture(t);
  const exec = { vip: "198.18.0.100", port: 81, reals: [], healthCheck: { type: "exec", command: ["/bin/true"] } };
  const answer = await rawRequest(f.path, post("POST /services", JSON.stringify(exec)));
  t.is(answer.status, 403);
  t.is(errorOf(answer).code, "E_EXEC_CHECK_FROM_FILE_ONLY");
  t.regex(errorOf(answer).message, /config file/);
  t.deepEqual(f.calls, []);
  const http = { ...exec, healthCheck: { type: "http", path: "/healthz" } };
  t.is((await rawRequest(f.path, post("POST /services", JSON.stringify(http)))).status, 200);
  t.is(f.calls.length, 1);
});

test("PUT /services (service edit): the edited service is checked with the config's service schema; identity, reals and exec checks are refused", async (t) => {
  const f = await fixture(t);
  const cases: Array<[unknown, number, RegExp]> = [
    [{ service: SERVICE, set: { scheduler: "fastest" } }, 400, /at set\.scheduler: /],
    [{ service: SERVICE, set: { slowStartS: -1 } }, 400, /at set\.slowStartS: /],
    [{ service: SERVICE, set: { colour: "red" } }, 400, /unknown field "colour"/],
    [{ service: SERVICE, set: { healthCheck: { type: "http", every: 5 } } }, 400, /at set\.healthCheck: unknown field "every"/],
    [{ service: SERVICE, set: { port: 81 } }, 400, /cannot change port/],
    [{ service: SERVICE, set: { reals: [] } }, 400, /natlb real add/],
    [{ service: { vip: "198.18.0.9", port: 80 }, set: { scheduler: "rr" } }, 404, /no service 198\.18\.0\.9:80\/tcp/],
    [{ service: SERVICE, set: { healthCheck: { type: "exec", command: ["/bin/true"] } } }, 403, /config file/],
  ];
  for (const [body, status, message] of cases) {
    const answer = await rawRequest(f.path, post("PUT /services", JSON.stringify(body)));
    t.is(answer.status, status, JSON.stringify(body));
    t.regex(errorOf(answer).message, message);
  }
  t.deepEqual(f.calls, []);
  const edit = { scheduler: "sh", slowStartS: 30, healthCheck: { type: "http", path: "/healthz" } };
  t.is((await rawRequest(f.path, post("PUT /services", JSON.stringify({ service: SERVICE, set: edit })))).status, 200);
  t.deepEqual(f.calls, [["updateService", SERVICE, edit]]);
});

test("POST /reals/drain: without wait the answer comes at once; with wait it comes line by line and ends with the result", async (t) => {
  const f = await fixture(t);
  const body = { service: SERVICE, real: { ip: "198.18.1.11" }, timeoutS: 30, then: "remove" };
  const at = Date.now();
  const quick = await rawRequest(f.path, post("POST /reals/drain", JSON.stringify(body)));
  t.is(quick.status, 200);
  t.like(JSON.parse(quick.body), { ok: true, real: "198.18.1.11:8080", then: "keep" });
  const [name, service, real, options] = f.calls[0] as [string, unknown, unknown, { deadline: number; then: string; onProgress?: unknown }];
  t.deepEqual([name, service, real, options.then, options.onProgress], ["beginDrain", SERVICE, { ip: "198.18.1.11" }, "remove", undefined]);
  t.true(Math.abs(options.deadline - (at + 30_000)) < 2000);
  const waiting = await rawRequest(f.path, post("POST /reals/drain", JSON.stringify({ ...body, wait: true })));
  t.is(waiting.status, 200);
  // The raw answer is chunked NDJSON: its JSON lines, in order.
  const lines = waiting.body.split(/\r?\n/).filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { type: string });
  t.deepEqual(lines.map((l) => l.type), ["started", "finished"]);
  t.like(lines[1], { type: "finished", connectionsLeft: 0, deadlineHit: false, done: "kept" });
  for (const bad of [{ ...body, then: "explode" }, { ...body, timeoutS: -5 }, { ...body, wait: "yes" }]) {
    t.is((await rawRequest(f.path, post("POST /reals/drain", JSON.stringify(bad)))).status, 400, JSON.stringify(bad));
  }
  t.is(f.calls.length, 2);
});
