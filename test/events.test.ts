// The event stream's parts: the hub (order, replay, bounded queues, close), the pressure watch
// (levels with hysteresis, drop spikes against the usual rate), change origins.
import test from "ava";
import { EventHub, PressureWatch, SIGHUP_ORIGIN, currentChangeOrigin, withChangeOrigin, type NatlbEvent } from "../src/events";

async function take(iterator: AsyncGenerator<NatlbEvent>, n: number): Promise<NatlbEvent[]> {
  const out: NatlbEvent[] = [];
  for (let i = 0; i < n; i++) {
    const next = await iterator.next();
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

const health = (real: string, up: boolean) => ({ type: "health" as const, service: "198.18.0.100:80/tcp", real, up, reason: up ? "ok" : "bad" });

test("hub: every watcher gets every event in order, with increasing sequence numbers", async (t) => {
  const hub = new EventHub();
  const a = hub.watch();
  const b = hub.watch();
  const pendingA = take(a, 3);
  const pendingB = take(b, 3);
  await new Promise((resolve) => setImmediate(resolve));
  for (const real of ["r1", "r2", "r3"]) hub.publish(health(real, false));
  const [fromA, fromB] = await Promise.all([pendingA, pendingB]);
  t.deepEqual(fromA.map((e) => [e.seq, e.type === "health" && e.real]), [[1, "r1"], [2, "r2"], [3, "r3"]]);
  t.deepEqual(fromB, fromA);
  t.true(fromA.every((e) => !Number.isNaN(Date.parse(e.at))));
});

test("hub: after replays what followed a sequence number; a gap older than the history is reported", async (t) => {
  const hub = new EventHub({ history: 3 });
  for (let i = 1; i <= 5; i++) hub.publish(health(`r${i}`, true));
  const replay = await take(hub.watch({ after: 3 }), 2);
  t.deepEqual(replay.map((e) => e.seq), [4, 5]);
  const gap = await take(hub.watch({ after: 0 }), 4);
  t.like(gap[0], { type: "lagged", missed: 2 });
  t.deepEqual(gap.slice(1).map((e) => e.seq), [3, 4, 5]);
});

test("hub: a watcher that does not read loses the oldest events and is told how many; close ends every watch", async (t) => {
  const hub = new EventHub({ queue: 4 });
  const slow = hub.watch();
  const first = slow.next(); // starts the watch
  await new Promise((resolve) => setImmediate(resolve));
  for (let i = 1; i <= 10; i++) hub.publish(health(`r${i}`, true));
  const got = [(await first).value as NatlbEvent, ...(await take(slow, 4))];
  t.like(got[0], { type: "lagged", missed: 6 });
  t.deepEqual(got.slice(1).map((e) => e.seq), [7, 8, 9, 10]);
  const ended = slow.next();
  hub.close();
  t.true((await ended).done);
});

test("hub: an aborted watch ends", async (t) => {
  const hub = new EventHub();
  const controller = new AbortController();
  const watch = hub.watch({ signal: controller.signal });
  const next = watch.next();
  controller.abort();
  t.true((await next).done);
});

test("pressure: high at 80 %, back to normal only below 70 %, full while flows are refused", (t) => {
  const watch = new PressureWatch();
  const at = (live: number, fullDrops = 0) => watch.observe({ live, capacity: 100, fullDrops, drops: {} }, 1, 0);
  t.deepEqual(at(50), []);
  t.like(at(80)[0], { type: "flowMapPressure", level: "high", live: 80 });
  t.deepEqual(at(75), [], "between the levels it holds");
  t.like(at(100, 3)[0], { level: "full" });
  t.deepEqual(at(100, 3), [{ type: "flowMapPressure", level: "high", live: 100, capacity: 100 }], "no new refusals: high again");
  t.like(at(69)[0], { level: "normal" });
});

test("pressure: a drop reason far above its usual rate spikes once, then stays quiet for a while", (t) => {
  const watch = new PressureWatch();
  let total = 0;
  let second = 0;
  const tick = (perSecond: number) => {
    total += perSecond;
    second += 1;
    return watch.observe({ live: 0, capacity: 100, fullDrops: 0, drops: { dropRateLimited: total } }, 1, second).filter((e) => e.type === "dropSpike");
  };
  tick(0);
  for (let i = 0; i < 20; i++) t.deepEqual(tick(50), [], "below the minimum rate");
  t.deepEqual(tick(400), [], "400/s is under 10x the usual 50/s");
  t.like(tick(5000)[0], { reason: "dropRateLimited", perSecond: 5000 });
  t.deepEqual(tick(50_000), [], "quiet for 10 s after a spike");
});

test("change origins: a plain call is the API; the socket and SIGHUP say so for the changes they run", async (t) => {
  t.deepEqual(currentChangeOrigin(), { via: "api" });
  const peer = { pid: 42, uid: 1000, gid: 1000, groups: [] };
  t.deepEqual(withChangeOrigin({ via: "control socket", peer }, () => currentChangeOrigin()), { via: "control socket", peer });
  const acrossAwait = await withChangeOrigin(SIGHUP_ORIGIN, async () => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    return currentChangeOrigin();
  });
  t.deepEqual(acrossAwait, SIGHUP_ORIGIN, "kept across an await, as a queued change needs");
  t.deepEqual(currentChangeOrigin(), { via: "api" }, "only inside");
});
