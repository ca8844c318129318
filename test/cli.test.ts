// The `natlb` command as people and scripts use it: `node bin/natlb.js` as a child process. --version,
// help with an example for every command, exit statuses, --config finding the daemon's socket, and
// --json on every command that talks to the daemon, against a fake daemon (the real control server
// module with stub handlers). No network namespaces, no data plane.
import test from "ava";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { buildProgram } from "../src/cli";
import { startControlServer, TextAnswer, type ControlHandlers, type ControlRequest } from "../src/control";
import { ApiError, ConfigError } from "../src/errors";
import { EXIT_CODES, EXIT_CODE_MEANINGS, type ExitCodeName } from "../src/exitCodes";
import type { BalancerStatus } from "../src/balancer";
import { formatStatus } from "../src/statusText";

const ROOT = join(__dirname, "..", "..");
const BIN = join(ROOT, "bin", "natlb.js");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

// At most two CLI processes at a time: ava runs this file's tests at once, and a machine busy with
// other work would otherwise time them out.
let running = 0;
const waiting: (() => void)[] = [];
async function withSlot<T>(body: () => Promise<T>): Promise<T> {
  // A finished process hands its slot to the next waiter directly, so no newcomer slips in between.
  if (running >= 2) await new Promise<void>((resolve) => waiting.push(resolve));
  else running++;
  try {
    return await body();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

function natlb(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return withSlot(() => spawnNatlb(args, env));
}

function spawnNatlb(args: readonly string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NATLB_LOG_LEVEL: "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface Ctx {
  teardown(fn: () => unknown): void;
}

async function tempDir(t: Ctx): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "natlb-cli-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function validConfig(socket?: string): Record<string, unknown> {
  return {
    services: [{ vip: "198.18.0.100", port: 80, protocol: "tcp", scheduler: "wrr", reals: [{ ip: "198.18.1.11", port: 8080, weight: 1 }] }],
    ...(socket === undefined ? {} : { socket }),
  };
}

async function writeConfig(dir: string, name: string, config: unknown): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, typeof config === "string" ? config : JSON.stringify(config));
  return path;
}

/** A status shaped like the daemon's (only what the text formatter reads is filled in). */
const STATUS = {
  services: [
    {
      vip: "198.18.0.100",
      port: 80,
      protocol: "tcp",
      scheduler: "wrr",
      reals: [{ ip: "198.18.1.11", port: 8080, weight: 3, up: true, activeConns: 7, inactiveConns: 2 }],
    },
  ],
  interfaces: [{ name: "eth0", role: "client", receivePath: "af_packet" }],
  flows: {
    capacity: 1024,
    live: 9,
    inserted: 9,
    expired: 0,
    fullDrops: 0,
    unassured: { halfOpenTcp: 0, udp: 0 },
    evicted: { halfOpenTcpShare: 0, udpShare: 0, halfOpenTcpRoom: 0, udpRoom: 0 },
    expiredUnderPressure: 0,
  },
  kernelFastPath: { setting: "auto", enabled: false, flows: 0, unavailable: "attach the kernel fast path (tcx ingress) to eth0: Operation not permitted" },
  workerThreads: { setting: "auto", running: "perInterface" },
  counters: { toReal: 100, toClient: 90, ringDrops: 0, dropNoRoute: 0, kernelForwardedPackets: 0 },
};

const CONNS = {
  connections: [
    {
      protocol: "tcp",
      state: "ESTABLISHED",
      client: { ip: "198.18.0.21", port: 40000 },
      vip: { ip: "198.18.0.100", port: 80 },
      real: { ip: "198.18.1.11", port: 8080, id: 0 },
      idleMs: 1500,
      ageMs: 3000,
      packetsIn: 1,
      bytesIn: 60,
      packetsOut: 1,
      bytesOut: 60,
    },
  ],
  more: false,
};

/** A fake daemon on a fresh socket: the real control server with stub handlers that record what they got. */
async function fakeDaemon(t: Ctx, extra: ControlHandlers = {}): Promise<{ socket: string; dir: string; requests: ControlRequest[] }> {
  const dir = await tempDir(t);
  const socket = join(dir, "natlb.sock");
  const requests: ControlRequest[] = [];
  const record = (answer: unknown) => (request: ControlRequest) => {
    requests.push(request);
    return answer;
  };
  const server = await startControlServer(socket, {
    "GET /status": record(STATUS),
    "GET /conns": record(CONNS),
    "GET /health": record({ ok: true }),
    "POST /services": record({ ok: true }),
    "DELETE /services": record({ ok: true }),
    "POST /reals": record({ ok: true }),
    "PUT /reals": record({ ok: true }),
    "DELETE /reals": record({ ok: true }),
    "POST /reload": record({ ok: true }),
    ...extra,
  });
  t.teardown(() => server.close());
  return { socket, dir, requests };
}

function parseJson(text: string): unknown {
  return JSON.parse(text) as unknown;
}

function jsonError(run: Run): { code: string; message: string; exitCode: number } {
  const lines = run.stderr.trim().split("\n");
  const body = parseJson(lines[lines.length - 1] ?? "") as { error: { code: string; message: string; exitCode: number } };
  return body.error;
}

// ---------------------------------------------------------------------------------------------
// --version and help

test("--version prints package.json's version", async (t) => {
  const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { version: string };
  const run = await natlb(["--version"]);
  t.is(run.code, 0);
  t.is(run.stdout.trim(), pkg.version);
});

/** Every command path, e.g. ["status"], ["real", "add"] (commander's own `help` aside). */
function commandPaths(command: Command, prefix: string[] = []): string[][] {
  return command.commands
    .filter((c) => c.name() !== "help")
    .flatMap((c) => [[...prefix, c.name()], ...commandPaths(c, [...prefix, c.name()])]);
}

test("every command's --help has a description and an example", async (t) => {
  const paths = commandPaths(buildProgram());
  t.true(paths.length >= 14, `found only ${paths.length} commands`);
  for (const path of paths) {
    const run = await natlb([...path, "--help"]);
    const label = `natlb ${path.join(" ")} --help`;
    t.is(run.code, 0, label);
    const lines = run.stdout.split("\n");
    // commander prints: Usage line, blank, description.
    t.true(lines[0]?.startsWith(`Usage: natlb ${path.join(" ")}`), label);
    t.regex(lines[2] ?? "", /\w{3,}/, `${label} has no description`);
    t.regex(run.stdout, /\nExamples?:\n {2}\$ natlb /, `${label} has no example`);
  }
});

test("natlb --help lists every exit status, and the README's CLI section lists the same", async (t) => {
  const run = await natlb(["--help"]);
  t.is(run.code, 0);
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  for (const name of Object.keys(EXIT_CODES) as ExitCodeName[]) {
    const code = EXIT_CODES[name];
    t.true(run.stdout.includes(`${String(code).padStart(2)}  ${EXIT_CODE_MEANINGS[name]}`), `help lacks exit status ${code}`);
    t.true(readme.includes(`| ${code} | ${EXIT_CODE_MEANINGS[name]} |`), `README lacks exit status ${code}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Exit statuses

test("usage errors exit 2, as text or as JSON", async (t) => {
  for (const args of [["no-such-command"], ["status", "--no-such-option"], ["real", "weight", "198.18.0.100:80", "198.18.1.11", "heavy"], ["run"], []]) {
    const run = await natlb(args);
    t.is(run.code, EXIT_CODES.usage, `natlb ${args.join(" ")}: ${run.stderr}`);
  }
  const run = await natlb(["status", "--json", "--no-such-option"]);
  t.is(run.code, EXIT_CODES.usage);
  t.deepEqual(jsonError(run), { code: "E_USAGE", message: "unknown option '--no-such-option'", exitCode: EXIT_CODES.usage });
});

test("no daemon on the socket: exit 4 and a message that says how to start one", async (t) => {
  const dir = await tempDir(t);
  const missing = join(dir, "absent.sock");
  const text = await natlb(["status", "--socket", missing]);
  t.is(text.code, EXIT_CODES.noDaemon);
  t.regex(text.stderr, /^natlb: no natlb daemon on .*absent\.sock: start one with `natlb run/);
  const json = await natlb(["conns", "--json", "--socket", missing]);
  t.is(json.code, EXIT_CODES.noDaemon);
  t.is(json.stdout, "");
  t.like(jsonError(json), { code: "E_CONTROL_NO_DAEMON", exitCode: EXIT_CODES.noDaemon });
});

test("a bad config exits 3: check-config, run, and a client's --config", async (t) => {
  const dir = await tempDir(t);
  const bad = await writeConfig(dir, "bad.json", {
    services: [{ vip: "198.18.0.100", port: 80, reals: [{ ip: "198.18.1.11", weight: "abc" }] }],
  });
  const check = await natlb(["check-config", bad]);
  t.is(check.code, EXIT_CODES.config);
  t.regex(check.stderr, /services\[0\]\.reals\[0\]\.weight/);
  const json = await natlb(["check-config", bad, "--json"]);
  t.is(json.code, EXIT_CODES.config);
  const error = jsonError(json) as { code: string; issues?: { path: string }[] };
  t.is(error.code, "E_CONFIG");
  t.deepEqual(error.issues?.map((i) => i.path), ["services[0].reals[0].weight"]);
  // `run` refuses the file before it touches the network.
  t.is((await natlb(["run", "--config", bad])).code, EXIT_CODES.config);
  t.is((await natlb(["status", "--config", bad])).code, EXIT_CODES.config);
  t.is((await natlb(["status", "--config", join(dir, "missing.json")])).code, EXIT_CODES.config);
});

test("check-config prints the config with defaults as JSON, exit 0", async (t) => {
  const dir = await tempDir(t);
  const good = await writeConfig(dir, "good.json", validConfig());
  const run = await natlb(["check-config", good]);
  t.is(run.code, 0, run.stderr);
  const config = parseJson(run.stdout) as { services: { reals: { weight: number }[] }[] };
  t.is(config.services[0]?.reals[0]?.weight, 1);
});

test("run: a bad --log-level or $NATLB_LOG_LEVEL is a usage error (checked before the config)", async (t) => {
  const dir = await tempDir(t);
  const bad = await writeConfig(dir, "bad.json", "{");
  t.is((await natlb(["run", "--config", bad, "--log-level", "loud"])).code, EXIT_CODES.usage);
  const fromEnv = await natlb(["run", "--config", bad], { NATLB_LOG_LEVEL: "loud" });
  t.is(fromEnv.code, EXIT_CODES.usage);
  t.regex(fromEnv.stderr, /\$NATLB_LOG_LEVEL "loud" is not a log level/);
  // A good level gets as far as the config.
  t.is((await natlb(["run", "--config", bad, "--log-level", "debug"])).code, EXIT_CODES.config);
});

test("the daemon's refusal exits 5 with its code", async (t) => {
  const daemon = await fakeDaemon(t, {
    "DELETE /reals": () => {
      throw new ApiError("service 198.18.0.100:80 has no real server 198.18.1.99", { status: 404, code: "E_NOT_FOUND" });
    },
  });
  const run = await natlb(["real", "remove", "198.18.0.100:80", "198.18.1.99", "--socket", daemon.socket, "--json"]);
  t.is(run.code, EXIT_CODES.refused);
  t.deepEqual(jsonError(run), {
    code: "E_NOT_FOUND",
    message: "service 198.18.0.100:80 has no real server 198.18.1.99",
    exitCode: EXIT_CODES.refused,
  });
});

test("a reload of a bad config file exits 3, like any bad config", async (t) => {
  const daemon = await fakeDaemon(t, {
    "POST /reload": () => {
      throw new ConfigError("kernelFastPath", 'expected true or false, got "yes"', { file: "/etc/natlb/natlb.json" });
    },
  });
  const text = await natlb(["reload", "--socket", daemon.socket]);
  t.is(text.code, EXIT_CODES.config);
  t.regex(text.stderr, /^natlb: config: kernelFastPath: expected true or false, got "yes" \(in \/etc\/natlb\/natlb\.json\)/);
  const json = await natlb(["reload", "--socket", daemon.socket, "--json"]);
  t.like(jsonError(json), { code: "E_CONFIG", exitCode: EXIT_CODES.config });
});

test("status text from a daemon older than the CLI (no workerThreads in its status) leaves the layout out", (t) => {
  const { workerThreads: _left, ...older } = STATUS;
  const text = formatStatus(older as unknown as BalancerStatus);
  t.regex(text, /^forwarding: user space only \(kernelFastPath "auto"; unavailable: [^\n]*\)$/m);
  t.false(text.includes("worker thread"));
});

// ---------------------------------------------------------------------------------------------
// Finding the daemon

test("natlb metrics prints the daemon's Prometheus text; --json wraps it", async (t) => {
  const text = '# TYPE natlb_flows gauge\nnatlb_flows 7\n';
  const daemon = await fakeDaemon(t, { "GET /metrics": () => new TextAnswer("text/plain; version=0.0.4; charset=utf-8", text) });
  const plain = await natlb(["metrics", "--socket", daemon.socket]);
  t.is(plain.code, 0, plain.stderr);
  t.is(plain.stdout, text);
  const json = await natlb(["metrics", "--socket", daemon.socket, "--json"]);
  t.deepEqual(parseJson(json.stdout), { metrics: text });
});

test("--config finds the socket the config names; --socket wins over it", async (t) => {
  const daemon = await fakeDaemon(t);
  const config = await writeConfig(daemon.dir, "natlb.json", validConfig(daemon.socket));
  const run = await natlb(["status", "--config", config, "--json"]);
  t.is(run.code, 0, run.stderr);
  t.deepEqual(parseJson(run.stdout), STATUS);
  t.is(daemon.requests.length, 1);

  const elsewhere = await natlb(["status", "--config", config, "--socket", join(daemon.dir, "other.sock")]);
  t.is(elsewhere.code, EXIT_CODES.noDaemon);
  t.is(daemon.requests.length, 1);
});

// ---------------------------------------------------------------------------------------------
// --json and text on every command that talks to the daemon

test("status and conns: text for people, JSON with --json", async (t) => {
  const daemon = await fakeDaemon(t);
  const status = await natlb(["status", "--socket", daemon.socket]);
  t.is(status.code, 0, status.stderr);
  t.true(status.stdout.includes("Prot LocalAddress:Port Scheduler"));
  t.regex(status.stdout, /^forwarding: user space only \(kernelFastPath "auto"; unavailable: attach the kernel fast path/m);
  t.regex(status.stdout, /^forwarding: .*; user space: a worker thread per interface \(workerThreads "auto"\)$/m);
  t.regex(status.stdout, /-> 198\.18\.1\.11:8080 +3 {2}up +7 +2/);
  const conns = await natlb(["conns", "--socket", daemon.socket, "--limit", "5"]);
  t.is(conns.code, 0, conns.stderr);
  t.regex(conns.stdout, /TCP ESTABLISHED +198\.18\.0\.21:40000/);
  t.true(conns.stdout.includes("1 connection(s)"));
  t.is(daemon.requests[1]?.query.get("limit"), "5");
  const connsJson = await natlb(["conns", "--json", "--socket", daemon.socket]);
  t.deepEqual(parseJson(connsJson.stdout), CONNS);
});

test("conns: filters and the cursor go to the daemon as query parameters; a full page says how to go on", async (t) => {
  const asked: Array<Record<string, string>> = [];
  const daemon = await fakeDaemon(t, {
    "GET /conns": (request) => {
      asked.push(Object.fromEntries(request.query));
      return { ...CONNS, more: request.query.has("cursor"), next: 42 };
    },
  });
  const args = ["--service", "198.18.0.100:80/tcp", "--real", "198.18.1.11:8080", "--client", "198.18.0.0/24", "--state", "established"];
  const first = await natlb(["conns", ...args, "--socket", daemon.socket]);
  t.is(first.code, 0, first.stderr);
  t.true(first.stdout.includes("1 connection(s)\n") || first.stdout.endsWith("1 connection(s)"), first.stdout);
  const page = await natlb(["conns", ...args, "--limit", "1", "--cursor", "7", "--socket", daemon.socket]);
  t.is(page.code, 0, page.stderr);
  t.regex(page.stdout, /1 connection\(s\) shown, more match: add --cursor 42 for the next page/);
  t.deepEqual(asked, [
    { service: "198.18.0.100:80/tcp", real: "198.18.1.11:8080", client: "198.18.0.0/24", state: "established" },
    { limit: "1", cursor: "7", service: "198.18.0.100:80/tcp", real: "198.18.1.11:8080", client: "198.18.0.0/24", state: "established" },
  ]);
  const bad = await natlb(["conns", "--cursor", "-1", "--socket", daemon.socket]);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /--cursor/);
});

interface ChangeCase {
  args: string[];
  route: string;
  body: unknown;
  text: RegExp;
}

const CHANGES: ChangeCase[] = [
  {
    args: ["service", "add", "198.18.0.101:53/udp", "--scheduler", "rr"],
    route: "POST /services",
    body: { vip: "198.18.0.101", port: 53, protocol: "udp", scheduler: "rr", reals: [] },
    text: /service 198\.18\.0\.101:53\/udp added/,
  },
  {
    args: ["service", "remove", "198.18.0.101:53/udp"],
    route: "DELETE /services",
    body: { vip: "198.18.0.101", port: 53, protocol: "udp" },
    text: /service 198\.18\.0\.101:53\/udp removed/,
  },
  {
    args: ["real", "add", "198.18.0.100:80", "198.18.1.13:8080", "--weight", "2"],
    route: "POST /reals",
    body: { service: { vip: "198.18.0.100", port: 80 }, real: { ip: "198.18.1.13", port: 8080, weight: 2 } },
    text: /real 198\.18\.1\.13:8080 added to 198\.18\.0\.100:80 \(weight 2\)/,
  },
  {
    args: ["real", "weight", "198.18.0.100:80", "198.18.1.11", "0"],
    route: "PUT /reals",
    body: { service: { vip: "198.18.0.100", port: 80 }, real: { ip: "198.18.1.11" }, weight: 0 },
    text: /weight 0 \(draining\)/,
  },
  {
    args: ["real", "remove", "198.18.0.100:80", "198.18.1.12"],
    route: "DELETE /reals",
    body: { service: { vip: "198.18.0.100", port: 80 }, real: { ip: "198.18.1.12" } },
    text: /real 198\.18\.1\.12 removed from 198\.18\.0\.100:80/,
  },
  { args: ["reload"], route: "POST /reload", body: undefined, text: /config reloaded/ },
];

for (const change of CHANGES) {
  test(`natlb ${change.args.slice(0, 2).join(" ")}: sends ${change.route}, prints a sentence, or JSON with --json`, async (t) => {
    const daemon = await fakeDaemon(t);
    const config = await writeConfig(daemon.dir, "natlb.json", validConfig(daemon.socket));
    const text = await natlb([...change.args, "--config", config]);
    t.is(text.code, 0, text.stderr);
    t.regex(text.stdout, change.text);
    const json = await natlb([...change.args, "--socket", daemon.socket, "--json"]);
    t.is(json.code, 0, json.stderr);
    const printed = parseJson(json.stdout) as Record<string, unknown>;
    t.is(printed["ok"], true);
    t.is(printed["action"], change.args[1] === undefined || change.args[0] === "reload" ? "reload" : `${change.args[0]} ${change.args[1]}`);
    t.is(daemon.requests.length, 2);
    for (const request of daemon.requests) {
      t.is(`${request.method} ${request.path}`, change.route);
      t.deepEqual(request.body, change.body);
    }
  });
}
