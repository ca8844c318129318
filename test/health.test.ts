// Health checks: the TCP checker against real local listeners, the rise/fall state machine, and
// the monitor's scheduling (no overlap, stop, passive markDown).

import test from "ava";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import {
  HealthMonitor,
  RealHealthState,
  TcpHealthChecker,
  type CheckOutcome,
  type CheckResult,
  type HealthChange,
  type HealthChecker,
} from "../src/health";

const LOCAL = "127.0.0.1";

async function listen(port = 0): Promise<Server> {
  const server = createServer((socket) => socket.destroy());
  server.listen(port, LOCAL);
  await once(server, "listening");
  return server;
}

function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

async function close(server: Server): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A port nothing listens on: bind one, note it, close it. */
async function closedPort(): Promise<number> {
  const s = await listen();
  const port = portOf(s);
  await close(s);
  return port;
}

/** Polls `cond` every 10 ms for at most `ms`. */
async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(10);
  }
  return cond();
}

/** A checker that answers from a script and records how checks overlap. */
class ScriptedChecker implements HealthChecker {
  calls = 0;
  active = 0;
  maxActive = 0;
  constructor(
    private readonly next: (call: number) => CheckOutcome,
    private readonly delayMs = 0,
  ) {}
  async check(_target: unknown, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult> {
    const call = this.calls++;
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      const outcome = this.next(call);
      if (outcome === "timeout") {
        await sleep(timeoutMs, undefined, { signal }).catch(() => undefined);
      } else if (this.delayMs > 0) {
        await sleep(this.delayMs, undefined, { signal }).catch(() => undefined);
      }
      if (signal?.aborted) return { up: false, outcome: "aborted", reason: "cancelled", elapsedMs: 0 };
      return { up: outcome === "connected", outcome, reason: `scripted ${outcome} #${call}`, elapsedMs: 0 };
    } finally {
      this.active--;
    }
  }
}

// ----------------------------------------------------------------------------------- checker

test("TcpHealthChecker: listener -> up, closed port -> refused at once", async (t) => {
  const server = await listen();
  t.teardown(() => close(server));
  const checker = new TcpHealthChecker();
  const up = await checker.check({ ip: LOCAL, port: portOf(server) }, 1000);
  t.true(up.up);
  t.is(up.outcome, "connected");

  const port = await closedPort();
  const down = await checker.check({ ip: LOCAL, port }, 5000);
  t.false(down.up);
  t.is(down.outcome, "refused");
  t.true(down.reason.includes("ECONNREFUSED"));
  t.true(down.elapsedMs < 1000, "a refusal does not wait for the timeout");
});

test("TcpHealthChecker: sends no data", async (t) => {
  const received: Buffer[] = [];
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    socket.on("data", (d: Buffer) => received.push(d));
    socket.on("error", () => {});
  });
  server.listen(0, LOCAL);
  await once(server, "listening");
  t.teardown(() => close(server));
  const result = await new TcpHealthChecker().check({ ip: LOCAL, port: portOf(server) }, 1000);
  t.true(result.up);
  t.true(await waitFor(() => connections === 1, 1000));
  await sleep(100);
  t.is(Buffer.concat(received).length, 0);
});

/**
 * A listener whose accept queue is full, so the kernel drops further SYNs and a connect hangs:
 * a child process listens with backlog 1 (0 would mean Node's default, 511) and is stopped (SIGSTOP) so it never accepts.
 */
async function blackholeListener(t: { teardown: (fn: () => void) => void }): Promise<{ port: number; fill: Socket[] }> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      "-e",
      `const s = require("net").createServer(); s.listen({ port: 0, host: "${LOCAL}", backlog: 1 }, () => {
         process.stdout.write(String(s.address().port) + "\\n"); });
       setTimeout(() => process.exit(0), 60000);`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const fill: Socket[] = [];
  t.teardown(() => {
    for (const s of fill) s.destroy();
    child.kill("SIGKILL");
  });
  const [line] = (await once(child.stdout!, "data")) as [Buffer];
  const port = Number(line.toString().trim());
  child.kill("SIGSTOP");
  // Fill the accept queue: connect until one connect stays unanswered.
  for (let k = 0; k < 16; k++) {
    const s = connect({ host: LOCAL, port });
    s.on("error", () => {});
    fill.push(s);
    const connected = await Promise.race([once(s, "connect").then(() => true), sleep(300).then(() => false)]);
    if (!connected) return { port, fill };
  }
  throw new Error("could not fill the accept queue of the stopped listener");
}

test("TcpHealthChecker: no answer -> timeout, bounded by timeoutMs", async (t) => {
  const { port } = await blackholeListener(t);
  const started = Date.now();
  const result = await new TcpHealthChecker().check({ ip: LOCAL, port }, 300);
  const elapsed = Date.now() - started;
  t.is(result.outcome, "timeout");
  t.false(result.up);
  t.true(elapsed >= 290 && elapsed < 1000, `took ${elapsed} ms`);
});

test("TcpHealthChecker: abort signal ends a hanging check", async (t) => {
  const { port } = await blackholeListener(t);
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 100);
  const started = Date.now();
  const result = await new TcpHealthChecker().check({ ip: LOCAL, port }, 10_000, controller.signal);
  t.is(result.outcome, "aborted");
  t.true(Date.now() - started < 1000);
});

// ------------------------------------------------------------------------------- state machine

const ok = { up: true, outcome: "connected", reason: "ok" } as const;
const timeout = { up: false, outcome: "timeout", reason: "t/o" } as const;
const refused = { up: false, outcome: "refused", reason: "refused" } as const;

test("RealHealthState: fall consecutive failures take it down, a success resets the count", (t) => {
  const s = new RealHealthState({ rise: 2, fall: 3, downOnRefused: true }, true);
  t.false(s.record(timeout));
  t.false(s.record(timeout));
  t.false(s.record(ok)); // resets
  t.false(s.record(timeout));
  t.false(s.record(timeout));
  t.true(s.up);
  t.true(s.record(timeout));
  t.false(s.up);
  t.is(s.reason, "t/o");
});

test("RealHealthState: rise consecutive successes bring it up, a failure resets the count", (t) => {
  const s = new RealHealthState({ rise: 3, fall: 1, downOnRefused: true }, false);
  t.false(s.record(ok));
  t.false(s.record(ok));
  t.false(s.record(timeout));
  t.false(s.record(ok));
  t.false(s.record(ok));
  t.false(s.up);
  t.true(s.record(ok));
  t.true(s.up);
});

test("RealHealthState: refused takes it down at once unless configured otherwise", (t) => {
  const strict = new RealHealthState({ rise: 2, fall: 5, downOnRefused: true }, true);
  t.true(strict.record(refused));
  const lenient = new RealHealthState({ rise: 2, fall: 2, downOnRefused: false }, true);
  t.false(lenient.record(refused));
  t.true(lenient.record(refused));
});

test("RealHealthState: markDown is immediate and needs rise successes to recover", (t) => {
  const s = new RealHealthState({ rise: 2, fall: 2, downOnRefused: true }, true);
  t.true(s.markDown("resets seen by the data plane"));
  t.false(s.up);
  t.false(s.markDown("again")); // already down: no change
  t.false(s.record(ok));
  t.true(s.record(ok));
});

// ------------------------------------------------------------------------------------- monitor

test("HealthMonitor: stopping a listener takes the real down, restarting it brings it up after rise checks", async (t) => {
  let server = await listen();
  const port = portOf(server);
  const changes: HealthChange[] = [];
  const monitor = new HealthMonitor({ onChange: (c) => changes.push(c) });
  t.teardown(async () => {
    await monitor.stop();
    await close(server).catch(() => undefined);
  });
  const key = "198.18.0.100:80/tcp";
  const real = { ip: LOCAL, port };
  monitor.add(key, real, { intervalMs: 100, timeoutMs: 500, rise: 3, fall: 2, port: undefined });
  monitor.start();
  t.true(await waitFor(() => (monitor.status()[0]?.checks ?? 0) >= 2, 2000));
  t.deepEqual(changes, [], "an up real that answers produces no change");

  await close(server);
  t.true(await waitFor(() => changes.length === 1, 2000), "down after the listener stopped");
  t.like(changes[0], { serviceKey: key, real, up: false });
  t.true(changes[0]!.reason.includes("refused"), changes[0]!.reason);
  t.false(monitor.isUp(key, real));

  const checksAtRestart = monitor.status()[0]!.checks;
  server = await listen(port);
  t.true(await waitFor(() => changes.length === 2, 3000), "up after the listener came back");
  t.like(changes[1], { serviceKey: key, real, up: true });
  t.true(monitor.status()[0]!.checks - checksAtRestart >= 3, "rise = 3 successful checks were needed");
  t.true(monitor.isUp(key, real));
});

test("HealthMonitor: fall is honoured when refusals are not final", async (t) => {
  const port = await closedPort();
  const changes: HealthChange[] = [];
  let checksAtChange = 0;
  const monitor: HealthMonitor = new HealthMonitor({
    downOnRefused: false,
    onChange: (c) => {
      changes.push(c);
      checksAtChange = monitor.status()[0]!.checks;
    },
  });
  t.teardown(() => monitor.stop());
  monitor.add("svc", { ip: LOCAL, port }, { intervalMs: 50, timeoutMs: 500, rise: 1, fall: 4, port: undefined });
  monitor.start();
  t.true(await waitFor(() => changes.length === 1, 3000));
  t.is(checksAtChange, 4, "down exactly at the fourth failed check");
});

test("HealthMonitor: the health-check port overrides the real's port", async (t) => {
  const server = await listen();
  t.teardown(() => close(server));
  const deadPort = await closedPort();
  const changes: HealthChange[] = [];
  const monitor = new HealthMonitor({ initiallyUp: false, onChange: (c) => changes.push(c) });
  t.teardown(() => monitor.stop());
  monitor.add("svc", { ip: LOCAL, port: deadPort }, { intervalMs: 50, timeoutMs: 500, rise: 1, fall: 1, port: portOf(server) });
  monitor.start();
  t.true(await waitFor(() => changes.length === 1, 2000));
  t.true(changes[0]!.up);
});

test("HealthMonitor: slow checks never overlap (setTimeout chain, not setInterval)", async (t) => {
  const checker = new ScriptedChecker(() => "connected", 150);
  const monitor = new HealthMonitor({ checker });
  monitor.add("svc", { ip: LOCAL, port: 1 }, { intervalMs: 20, timeoutMs: 1000, rise: 1, fall: 1, port: undefined });
  monitor.start();
  t.true(await waitFor(() => checker.calls >= 3, 3000));
  await monitor.stop();
  t.is(checker.maxActive, 1, "a check never starts while the previous one runs");
});

test("HealthMonitor: interval is measured from the start of each check", async (t) => {
  const starts: number[] = [];
  const checker: HealthChecker = {
    async check() {
      starts.push(performance.now());
      await sleep(60); // if the interval ran from the end of a check, starts would be >= 160 ms apart
      return { up: true, outcome: "connected", reason: "ok", elapsedMs: 60 };
    },
  };
  const monitor = new HealthMonitor({ checker });
  monitor.add("svc", { ip: LOCAL, port: 1 }, { intervalMs: 100, timeoutMs: 500, rise: 1, fall: 1, port: undefined });
  monitor.start();
  t.true(await waitFor(() => starts.length >= 10, 5000));
  await monitor.stop();
  const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
  // Timers never fire early: measured from the end, no gap could be under 160 ms. Measured from the
  // start, gaps are ~100 ms; a busy machine delays some of them, so the shortest one is the witness.
  t.true(Math.min(...gaps) < 150, `gaps ${gaps.map(Math.round).join(",")}`);
});

test("HealthMonitor: a checker that ignores its timeout is cut off by the monitor", async (t) => {
  const hanging: HealthChecker = { check: () => new Promise<CheckResult>(() => {}) };
  const changes: HealthChange[] = [];
  const monitor = new HealthMonitor({ checker: hanging, onChange: (c) => changes.push(c) });
  t.teardown(() => monitor.stop());
  monitor.add("svc", { ip: LOCAL, port: 1 }, { intervalMs: 50, timeoutMs: 50, rise: 1, fall: 1, port: undefined });
  monitor.start();
  t.true(await waitFor(() => changes.length === 1, 2000));
  t.false(changes[0]!.up);
  t.true(changes[0]!.reason.includes("no answer"), changes[0]!.reason);
});

test("HealthMonitor: stop cancels checks in flight and schedules nothing more", async (t) => {
  const checker = new ScriptedChecker(() => "timeout");
  const monitor = new HealthMonitor({ checker });
  monitor.add("svc", { ip: LOCAL, port: 1 }, { intervalMs: 10, timeoutMs: 5000, rise: 1, fall: 1, port: undefined });
  monitor.start();
  t.true(await waitFor(() => checker.active === 1, 1000));
  const started = Date.now();
  await monitor.stop();
  t.true(Date.now() - started < 500, "stop did not wait for the 5 s timeout");
  t.is(checker.active, 0);
  const calls = checker.calls;
  await sleep(100);
  t.is(checker.calls, calls);
  t.false(monitor.isRunning);
});

test("HealthMonitor: markDown is passive, immediate, per service or for all services", async (t) => {
  const checker = new ScriptedChecker(() => "connected");
  const changes: HealthChange[] = [];
  const monitor = new HealthMonitor({ checker, onChange: (c) => changes.push(c) });
  t.teardown(() => monitor.stop());
  const real = { ip: "198.18.1.11", port: 8080 };
  const cfg = { intervalMs: 500, timeoutMs: 100, rise: 1, fall: 1, port: undefined };
  monitor.add("a", real, cfg);
  monitor.add("b", real, cfg);
  t.is(monitor.markDown(real, "RST storm", "a"), 1);
  t.deepEqual(
    changes.map((c) => [c.serviceKey, c.up, c.reason]),
    [["a", false, "RST storm"]],
  );
  t.is(monitor.markDown(real, "ICMP unreachable"), 2);
  t.is(changes.length, 2, "only b changed; a was already down");
  t.is(monitor.markDown({ ip: "198.18.1.99", port: 1 }, "x"), 0);
  // Checks bring them back (rise = 1), each within its first interval (the first round is spread over it).
  monitor.start();
  t.true(await waitFor(() => changes.length === 4, 2000));
  t.true(changes.slice(2).every((c) => c.up));
});

test("HealthMonitor: remove stops a real's checks; add twice updates settings", async (t) => {
  const checker = new ScriptedChecker(() => "connected");
  const monitor = new HealthMonitor({ checker });
  t.teardown(() => monitor.stop());
  const real = { ip: LOCAL, port: 1 };
  monitor.add("svc", real, { intervalMs: 60_000, timeoutMs: 100, rise: 1, fall: 1, port: undefined });
  monitor.add("svc", real, { intervalMs: 30, timeoutMs: 100, rise: 1, fall: 1, port: undefined });
  t.is(monitor.status().length, 1);
  monitor.start();
  t.true(await waitFor(() => checker.calls >= 3, 1000), "the second add's shorter interval applies");
  t.true(monitor.remove("svc", real));
  t.false(monitor.remove("svc", real));
  await sleep(50);
  const calls = checker.calls;
  await sleep(100);
  t.is(checker.calls, calls);
  t.is(monitor.isUp("svc", real), undefined);
});

test("HealthMonitor: an onChange that throws goes to onError, checks continue", async (t) => {
  const errors: unknown[] = [];
  let flip = 0;
  const checker = new ScriptedChecker(() => (flip++ % 2 === 0 ? "refused" : "connected"));
  const monitor = new HealthMonitor({
    checker,
    onChange: () => {
      throw new Error("listener bug");
    },
    onError: (e) => errors.push(e),
  });
  t.teardown(() => monitor.stop());
  monitor.add("svc", { ip: LOCAL, port: 1 }, { intervalMs: 10, timeoutMs: 100, rise: 1, fall: 1, port: undefined });
  monitor.start();
  t.true(await waitFor(() => errors.length >= 3, 2000));
  t.true(errors[0] instanceof Error);
});

test("HealthMonitor: invalid settings are rejected", (t) => {
  const monitor = new HealthMonitor();
  t.throws(() => monitor.add("svc", { ip: LOCAL, port: 1 }, { intervalMs: 0, timeoutMs: 100, rise: 1, fall: 1, port: undefined }));
  t.throws(() => monitor.add("svc", { ip: LOCAL, port: 1 }, { intervalMs: 100, timeoutMs: 100, rise: 0, fall: 1, port: undefined }));
});
