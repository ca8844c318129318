// drainReal's waiting logic on a driven clock: it resolves when the count reaches 0, at the deadline
// with the connections left, reports each change of the count once, and ends when natlb stops.
import test from "ava";
import { watchDrain, type DrainClock } from "../src/drain";

/** A clock that moves only when the watch sleeps; `counts` gives the real's connections at each time. */
function drivenClock(): DrainClock & { readonly sleeps: number[] } {
  let now = 1_000_000;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    sleep: async (ms: number, signal?: AbortSignal) => {
      signal?.throwIfAborted();
      sleeps.push(ms);
      now += ms;
    },
  };
}

test("resolves as soon as the last connection ends, before the deadline, with each count once", async (t) => {
  const clock = drivenClock();
  const start = clock.now();
  // 3 connections until +1 s, 1 until +2.5 s, then none.
  const connections = () => (clock.now() - start < 1000 ? 3 : clock.now() - start < 2500 ? 1 : 0);
  const seen: number[] = [];
  const result = await watchDrain({ connections, deadlineMs: start + 60_000, clock, pollMs: 200, onProgress: (n) => seen.push(n) });
  t.deepEqual(result, { connectionsLeft: 0, deadlineHit: false });
  t.deepEqual(seen, [3, 1, 0]);
  t.is(clock.now() - start, 2600); // the first poll at or after 2.5 s
});

test("at the deadline with connections left: deadlineHit and the count, the last sleep cut to the deadline", async (t) => {
  const clock = drivenClock();
  const start = clock.now();
  const result = await watchDrain({ connections: () => 2, deadlineMs: start + 1050, clock, pollMs: 200 });
  t.deepEqual(result, { connectionsLeft: 2, deadlineHit: true });
  t.is(clock.now(), start + 1050);
  t.deepEqual(clock.sleeps, [200, 200, 200, 200, 200, 50]);
});

test("a real with no connections: resolves at once without sleeping", async (t) => {
  const clock = drivenClock();
  t.deepEqual(await watchDrain({ connections: () => 0, deadlineMs: clock.now() + 1000, clock }), { connectionsLeft: 0, deadlineHit: false });
  t.deepEqual(clock.sleeps, []);
});

test("a deadline already past still reads the count once: 0 is a success, not a timeout", async (t) => {
  const clock = drivenClock();
  t.deepEqual(await watchDrain({ connections: () => 0, deadlineMs: clock.now() - 1, clock }), { connectionsLeft: 0, deadlineHit: false });
  t.deepEqual(await watchDrain({ connections: () => 4, deadlineMs: clock.now() - 1, clock }), { connectionsLeft: 4, deadlineHit: true });
});

test("without a deadline it waits as long as connections remain; natlb stopping ends it with the abort's reason", async (t) => {
  const clock = drivenClock();
  const stop = new AbortController();
  let reads = 0;
  const connections = () => {
    if (++reads === 50) stop.abort(new Error("natlb stopped"));
    return 1;
  };
  await t.throwsAsync(watchDrain({ connections, clock, signal: stop.signal }), { message: "natlb stopped" });
  t.is(reads, 50);
});
