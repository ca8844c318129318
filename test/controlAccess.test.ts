// The control socket's access check with real peers of other uids: clients run as `nobody` (spawn's
// uid/gid, or setpriv for supplementary groups) against the real control server on a temp socket.
// Two test groups are made with groupadd and removed after. The file permissions are the first gate,
// the peer's credentials (SO_PEERCRED, SO_PEERGROUPS) the second. Needs root.
import test from "ava";
import { spawn, spawnSync } from "node:child_process";
import { openSync, closeSync } from "node:fs";
import { chmod, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { startControlServer, type ControlHandlers, type ControlRequest } from "../src/control";
import { ROLE_GROUP_FIELDS, refusalMessage, roleNeeded, roleOf, type AccessPolicy } from "../src/control/roles";
import { resolveGroup } from "../src/control/systemGroups";
import { ConfigError } from "../src/errors";
import { EXIT_CODES } from "../src/exitCodes";
import { loadNative } from "../src/native";

const NOBODY = 65534;
const BIN = join(__dirname, "..", "..", "bin", "natlb.js");
// Short and unique: group names are at most 32 characters.
const SUFFIX = `${process.pid % 100000}`;
const READ_GROUP = `natlbt-read-${SUFFIX}`;
const ADMIN_GROUP = `natlbt-admin-${SUFFIX}`;
let readGid = -1;
let adminGid = -1;

function run(command: string, args: string[]): void {
  const result = spawnSync(command, args, { encoding: "utf8", timeout: 10_000 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${result.stderr || result.error?.message}`);
}

test.before(async () => {
  // A group left by an earlier run that was killed goes first.
  for (const group of [READ_GROUP, ADMIN_GROUP]) spawnSync("groupdel", [group]);
  run("groupadd", ["--system", READ_GROUP]);
  run("groupadd", ["--system", ADMIN_GROUP]);
  readGid = (await resolveGroup(READ_GROUP, "control.readGroup")).gid;
  adminGid = (await resolveGroup(ADMIN_GROUP, "control.adminGroup")).gid;
});

test.after.always(() => {
  for (const group of [READ_GROUP, ADMIN_GROUP]) spawnSync("groupdel", [group]);
});

interface Ctx {
  teardown(fn: () => unknown): void;
}

interface Served {
  socket: string;
  dir: string;
  requests: ControlRequest[];
  records: Record<string, unknown>[];
}

/** The real control server on a socket in a directory natlb creates, inside a temp dir anyone may pass. */
async function serve(t: Ctx, groups: { read?: boolean; admin?: boolean }): Promise<Served> {
  const base = await mkdtemp(join(tmpdir(), "natlb-acl-"));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  await chmod(base, 0o711);
  const dir = join(base, "run");
  const socket = join(dir, "natlb.sock");
  const requests: ControlRequest[] = [];
  const records: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  const answer = (request: ControlRequest) => {
    requests.push(request);
    return { ok: true };
  };
  const handlers: ControlHandlers = { "GET /status": answer, "GET /health": answer, "PUT /reals": answer, "POST /reload": answer };
  const access: AccessPolicy = {
    readGroup: groups.read ? { name: READ_GROUP, gid: readGid } : undefined,
    adminGroup: groups.admin ? { name: ADMIN_GROUP, gid: adminGid } : undefined,
    daemonUid: process.geteuid!(),
  };
  const server = await startControlServer(socket, handlers, { access, logger });
  t.teardown(() => server.close());
  return { socket, dir, requests, records };
}

interface PeerAnswer {
  status?: number;
  body?: { error?: { code: string; message: string } };
  error?: string;
  pid: number;
}

/** One request from a child process with other credentials: spawn's uid/gid, or setpriv with supplementary groups. */
function requestAs(identity: { gid: number; groups?: number[] }, socket: string, method: string, path: string, body?: unknown): Promise<PeerAnswer> {
  const script = `
    const payload = ${JSON.stringify(body === undefined ? "" : JSON.stringify(body))};
    const req = require("http").request({ socketPath: ${JSON.stringify(socket)}, method: ${JSON.stringify(method)}, path: ${JSON.stringify(path)},
      headers: payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {} }, (res) => {
      let text = ""; res.on("data", (c) => (text += c));
      res.on("end", () => console.log(JSON.stringify({ status: res.statusCode, body: JSON.parse(text), pid: process.pid })));
    });
    req.on("error", (e) => console.log(JSON.stringify({ error: e.code, pid: process.pid })));
    req.end(payload);`;
  const child =
    identity.groups === undefined
      ? spawn(process.execPath, ["-e", script], { uid: NOBODY, gid: identity.gid, stdio: ["ignore", "pipe", "inherit"] })
      : spawn("setpriv", [`--reuid=${NOBODY}`, `--regid=${identity.gid}`, `--groups=${identity.groups.join(",")}`, process.execPath, "-e", script], {
          stdio: ["ignore", "pipe", "inherit"],
        });
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("error", reject);
    child.on("close", () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out) as PeerAnswer);
      } catch {
        reject(new Error(`the client printed ${JSON.stringify(out)}`));
      }
    });
  });
}

const WEIGHT = { service: { vip: "198.18.0.100", port: 80 }, real: { ip: "198.18.1.11" }, weight: 0 };

test("the socket is 0660 and the directory natlb made is 0750, both in the read group", async (t) => {
  const served = await serve(t, { read: true, admin: true });
  const socket = await stat(served.socket);
  t.is(socket.mode & 0o777, 0o660);
  t.is(socket.gid, readGid);
  const dir = await stat(served.dir);
  t.is(dir.mode & 0o777, 0o750);
  t.is(dir.gid, readGid);
});

test("a directory natlb did not make keeps its mode and group; the daemon warns when the group cannot pass", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "natlb-acl-own-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const before = await stat(dir);
  const records: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  const access: AccessPolicy = { readGroup: { name: READ_GROUP, gid: readGid }, adminGroup: undefined, daemonUid: 0 };
  const server = await startControlServer(join(dir, "natlb.sock"), {}, { access, logger });
  t.teardown(() => server.close());
  const after = await stat(dir);
  t.is(after.mode, before.mode);
  t.is(after.gid, before.gid);
  t.is((await stat(join(dir, "natlb.sock"))).gid, readGid, "the socket itself gets the group");
  const warning = records.find((r) => r["directory"] === dir);
  t.is(warning?.["level"], 40);
  t.regex(String(warning?.["msg"]), new RegExp(`members of group "${READ_GROUP}" cannot pass through ${dir.replace(/[.]/g, "\\.")}`));
});

test("only the admin group configured: the socket gets the admin group", async (t) => {
  const served = await serve(t, { admin: true });
  t.is((await stat(served.socket)).gid, adminGid);
});

test("a read-group member reads; a change is 403 naming the admin role and control.adminGroup; nothing changes", async (t) => {
  const served = await serve(t, { read: true, admin: true });
  const read = await requestAs({ gid: readGid }, served.socket, "GET", "/status");
  t.is(read.status, 200);
  t.is(served.requests.length, 1);
  t.like(served.requests[0]!.peer, { uid: NOBODY, gid: readGid, pid: read.pid });

  const change = await requestAs({ gid: readGid }, served.socket, "PUT", "/reals", WEIGHT);
  t.is(change.status, 403);
  t.is(change.body?.error?.code, "E_CONTROL_FORBIDDEN");
  const message = change.body?.error?.message ?? "";
  t.regex(message, /^PUT \/reals needs the admin role, and uid 65534 .* has only the read role/);
  t.true(message.includes(`control.adminGroup ("${ADMIN_GROUP}", gid ${adminGid})`), message);
  t.true(message.includes(`add the user to group "${ADMIN_GROUP}", or change control.adminGroup`), message);
  t.is(served.requests.length, 1, "the change never reached its handler");
  const denied = served.records.filter((r) => r["audit"] === "denied");
  t.is(denied.length, 1);
  t.like(denied[0], { route: "PUT /reals", needed: "admin", by: { uid: NOBODY, pid: change.pid } });
});

test("the admin role through a supplementary group (SO_PEERGROUPS): the change is served", async (t) => {
  const served = await serve(t, { read: true, admin: true });
  const change = await requestAs({ gid: readGid, groups: [adminGid] }, served.socket, "PUT", "/reals", WEIGHT);
  t.is(change.status, 200);
  t.is(served.requests.length, 1);
  t.like(served.requests[0]!.peer, { uid: NOBODY, gid: readGid, pid: change.pid });
  t.deepEqual(served.requests[0]!.peer.groups, [adminGid]);
  t.deepEqual(served.requests[0]!.body, WEIGHT);
});

test("outside the socket's group the file permissions refuse the connection (EACCES)", async (t) => {
  const served = await serve(t, { read: true, admin: true });
  const answer = await requestAs({ gid: NOBODY }, served.socket, "GET", "/status");
  t.is(answer.error, "EACCES");
  t.is(served.requests.length, 0);
});

test("a peer that gets past the file (a socket made world-writable by hand) but holds no role is refused even reads", async (t) => {
  const served = await serve(t, { read: true, admin: true });
  await chmod(served.dir, 0o755);
  await chmod(served.socket, 0o666);
  for (const [method, path] of [["GET", "/status"], ["GET", "/nope"], ["POST", "/reload"]] as const) {
    const answer = await requestAs({ gid: NOBODY }, served.socket, method, path);
    t.is(answer.status, 403, `${method} ${path}`);
    t.regex(answer.body?.error?.message ?? "", /has no role/);
  }
  t.regex((await requestAs({ gid: NOBODY }, served.socket, "GET", "/status")).body?.error?.message ?? "", /needs the read role.*control\.readGroup/);
  t.is(served.requests.length, 0);
});

test("no groups configured: root is admin, anyone else is refused with the field to set", async (t) => {
  const served = await serve(t, {});
  await chmod(served.dir, 0o755);
  await chmod(served.socket, 0o666);
  const http = await import("node:http");
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request({ socketPath: served.socket, method: "POST", path: "/reload" }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
  t.is(status, 200, "root may change");
  const answer = await requestAs({ gid: NOBODY }, served.socket, "GET", "/status");
  t.is(answer.status, 403);
  t.regex(answer.body?.error?.message ?? "", /set control\.readGroup in natlb's config to a group of this user/);
});

test("the CLI shows the daemon's 403 and exits with the permission status", async (t) => {
  const served = await serve(t, { read: true, admin: true });
  const child = spawn(process.execPath, [BIN, "real", "weight", "198.18.0.100:80", "198.18.1.11", "0", "--socket", served.socket], {
    uid: NOBODY,
    gid: readGid,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NATLB_LOG_LEVEL: "" },
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  t.is(code, EXIT_CODES.permission);
  t.regex(stderr, new RegExp(`^natlb: refused by the daemon on ${served.socket.replace(/[.]/g, "\\.")}: PUT /reals needs the admin role`));
  t.regex(stderr, /change control\.adminGroup in natlb's config/);
  t.is(served.requests.length, 0);
});

test("roles: which route needs which, and who holds what", (t) => {
  t.is(roleNeeded("GET /status"), "read");
  t.is(roleNeeded("GET /conns"), "read");
  t.is(roleNeeded("GET /metrics"), "read");
  t.is(roleNeeded("POST /reload"), "admin");
  t.is(roleNeeded("GET /something-new"), "admin", "a route not listed as read is admin");
  const policy: AccessPolicy = { readGroup: { name: "r", gid: 2001 }, adminGroup: { name: "a", gid: 2002 }, daemonUid: 990 };
  const peer = (uid: number, gid: number, groups: number[] = []) => ({ pid: 1, uid, gid, groups });
  t.is(roleOf(peer(0, 0), policy), "admin", "root");
  t.is(roleOf(peer(990, 990), policy), "admin", "the daemon's own user");
  t.is(roleOf(peer(1000, 1000, [2002]), policy), "admin");
  t.is(roleOf(peer(1000, 2001), policy), "read");
  t.is(roleOf(peer(1000, 1000, [2001, 2002]), policy), "admin");
  t.is(roleOf(peer(1000, 1000, [27]), policy), undefined);
  t.is(ROLE_GROUP_FIELDS.read, "control.readGroup");
  t.regex(refusalMessage("GET /status", peer(1000, 1000), policy), /needs the read role, and uid 1000 \(gid 1000\), pid 1 has no role/);
});

test("a group that does not exist fails with the field and what to do; a numeric gid needs no lookup", async (t) => {
  const error = await t.throwsAsync(resolveGroup("natlbt-no-such-group", "control.adminGroup"), { instanceOf: ConfigError });
  t.is(error.path, "control.adminGroup");
  t.regex(error.message, /no group "natlbt-no-such-group" on this system: create it/);
  t.deepEqual(await resolveGroup(4242, "control.readGroup"), { name: "4242", gid: 4242 });
  t.deepEqual(await resolveGroup(READ_GROUP, "control.readGroup"), { name: READ_GROUP, gid: readGid });
});

test("peerCredentials on a descriptor that is not a socket throws instead of guessing", (t) => {
  const fd = openSync(__filename, "r");
  try {
    t.throws(() => loadNative().peerCredentials(fd), { message: /SO_PEERCRED.*not a socket|Socket operation on non-socket/i });
  } finally {
    closeSync(fd);
  }
  t.throws(() => loadNative().peerCredentials(-1), { instanceOf: RangeError });
});
