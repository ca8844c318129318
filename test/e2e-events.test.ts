// The event stream from a running daemon, in the lab: a real's http check failing and recovering,
// and a weight change over the control socket, arrive in order with their reasons and origin, through
// the API (watchEvents) and `natlb events --json`.
import test from "ava";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { NATLB_CLI } from "../lab/balancerProcess";
import { startBlobServer } from "../lab/blobServer";
import { watchEvents } from "../src/control/eventsClient";
import type { NatlbEvent } from "../src/events";
import { REAL_PORT, tcpService, withNatLab } from "./support/lab";

const CHECK = { type: "http", path: "/health", intervalMs: 200, timeoutMs: 300, rise: 1, fall: 1 };

/** Collects events until `done` says so or `timeoutMs` passes. */
async function collect(stream: AsyncGenerator<NatlbEvent>, done: (events: NatlbEvent[]) => boolean, timeoutMs: number, stop: AbortController): Promise<NatlbEvent[]> {
  const events: NatlbEvent[] = [];
  const timer = setTimeout(() => stop.abort(), timeoutMs);
  try {
    for await (const event of stream) {
      events.push(event);
      if (done(events)) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return events;
}

test("health changes and a socket change arrive in order, with reasons and origin; natlb events --json follows them too", async (t) => {
  await withNatLab(t, { offloads: true, config: (lab) => ({ services: [tcpService(lab, [1, 1, 1], { healthCheck: CHECK })] }) }, async ({ lab, servers, natlb }) => {
    const real2 = `${lab.reals[1]!.ip}:${REAL_PORT}`;
    const stop = new AbortController();
    // after 0: a watcher whose connection is slow to open (a loaded machine) still gets every event.
    const stream = watchEvents(natlb!.socket, { after: 0, signal: stop.signal });
    // The CLI, as an operator runs it, in the gateway namespace. --after 0: a CLI that is slow to start
    // (a loaded machine) replays what it missed, then follows.
    const cli = spawn("ip", ["netns", "exec", lab.gateway.ns, process.execPath, NATLB_CLI, "events", "--json", "--after", "0", "--socket", natlb!.socket], { stdio: ["ignore", "pipe", "pipe"] });
    t.teardown(() => cli.kill("SIGKILL"));
    const cliEvents: NatlbEvent[] = [];
    createInterface({ input: cli.stdout }).on("line", (line) => cliEvents.push(JSON.parse(line) as NatlbEvent));
    await new Promise((resolve) => setTimeout(resolve, 1000));

    const watching = collect(stream, (events) => events.some((e) => e.type === "health" && e.up && e.real === real2), 20_000, stop);
    await servers[1]!.stop();
    const deadline = Date.now() + 10_000;
    while (!(await natlb!.status()).services[0]!.reals[1]!.health?.reason.includes("refused") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const change = await natlb!.cli(["real", "weight", `${lab.vip}:80`, lab.reals[0]!.ip, "3"]);
    t.is(change.code, 0, change.stderr);
    servers[1] = await startBlobServer(lab, 2, REAL_PORT);
    const events = await watching;

    const relevant = events.filter((e) => (e.type === "health" && e.real === real2) || e.type === "change");
    t.deepEqual(relevant.map((e) => e.type === "health" ? `health ${e.up ? "up" : "down"}` : "change"), ["health down", "change", "health up"]);
    const [down, changed, up] = relevant;
    t.true(down!.seq < changed!.seq && changed!.seq < up!.seq);
    if (down!.type === "health") t.regex(down!.reason, new RegExp(`^http connection refused .* from ${real2.replaceAll(".", "\\.")}/health$`));
    if (changed!.type === "change") {
      t.like(changed!.origin, { via: "control socket", peer: { uid: 0 } });
      t.deepEqual(changed!.change.servicesChanged, [{ service: `${lab.vip}:80/tcp`, weights: [`${lab.reals[0]!.ip}:${REAL_PORT} 1->3`] }]);
    }
    if (up!.type === "health") t.is(up!.reason, `http 200 from ${real2}/health`);

    // The CLI saw the same events, by sequence number.
    const cliDeadline = Date.now() + 5000;
    while (!cliEvents.some((e) => e.seq === up!.seq) && Date.now() < cliDeadline) await new Promise((r) => setTimeout(r, 100));
    t.deepEqual(cliEvents.filter((e) => relevant.some((r) => r.seq === e.seq)), relevant);
    // A watcher that starts after them can replay them.
    const replayStop = new AbortController();
    const replayed = await collect(watchEvents(natlb!.socket, { after: down!.seq - 1, signal: replayStop.signal }), (e) => e.some((x) => x.seq === up!.seq), 5000, replayStop);
    replayStop.abort();
    t.deepEqual(replayed.filter((e) => relevant.some((r) => r.seq === e.seq)), relevant);
  });
});
