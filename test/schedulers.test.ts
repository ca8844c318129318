// Scheduling policies: the selection tables they build for the native data plane.

import test from "ava";
import { formatIPv4, parseIPv4 } from "../src/addresses";
import { ApiError } from "../src/errors";
import {
  MAGLEV_TABLE_SIZE,
  SCHEDULER_NAMES,
  schedulerFor,
  sourceHashTableLength,
  type SchedulerName,
  type SchedulerReal,
  type SelectionTable,
} from "../src/schedulers";
import { isPrime } from "../src/schedulers/hash";
import { smoothSequence } from "../src/schedulers/smooth";
import { apportion } from "../src/schedulers/weights";

function reals(weights: readonly number[], down: readonly number[] = []): SchedulerReal[] {
  return weights.map((weight, i) => ({
    ip: formatIPv4(parseIPv4("198.18.1.0") + 1 + i),
    port: 8080,
    weight,
    up: !down.includes(i),
  }));
}

function build(name: SchedulerName, rs: readonly SchedulerReal[]): SelectionTable {
  return schedulerFor(name).build({ reals: rs });
}

function counts(table: SelectionTable, n: number): number[] {
  const c = new Array<number>(n).fill(0);
  for (const s of table.slots) c[s]! += 1;
  return c;
}

/** Longest run of one value, treating the table as a cycle (the cursor wraps). */
function longestCircularRun(slots: Uint16Array, value: number): number {
  if (slots.every((s) => s === value)) return slots.length;
  let best = 0;
  let run = 0;
  for (let k = 0; k < slots.length * 2; k++) {
    run = slots[k % slots.length] === value ? run + 1 : 0;
    best = Math.max(best, run);
  }
  return best;
}

// ---------------------------------------------------------------------------------- registry

test("schedulerFor knows every name and rejects others", (t) => {
  for (const name of SCHEDULER_NAMES) t.is(schedulerFor(name).name, name);
  const e = t.throws(() => schedulerFor("lblc" as SchedulerName), { instanceOf: ApiError });
  t.true(e.message.includes("wrr") && e.message.includes('"lblc"'), e.message);
});

test("every policy: down and weight-0 reals are never in the table; none usable -> empty", (t) => {
  const rs = reals([3, 0, 2, 5, 1], [3]);
  for (const name of SCHEDULER_NAMES) {
    const table = build(name, rs);
    const seen = new Set(table.slots);
    t.deepEqual([...seen].sort(), [0, 2, 4], name);
    t.is(build(name, reals([1, 1], [0, 1])).slots.length, 0, name);
    t.is(build(name, reals([0, 0])).slots.length, 0, name);
    t.is(build(name, []).slots.length, 0, name);
  }
});

test("every policy has the documented pick mode", (t) => {
  const modes = Object.fromEntries(SCHEDULER_NAMES.map((n) => [n, build(n, reals([1, 2])).mode]));
  t.deepEqual(modes, { rr: "cursor", wrr: "cursor", random: "random", wrandom: "random", sh: "hash", mh: "hash", lc: "lc", wlc: "wlc", sed: "sed", nq: "nq" });
});

test("invalid weights are rejected", (t) => {
  for (const bad of [-1, 1.5, 65536, Number.NaN]) {
    t.throws(() => build("wrr", [{ ip: "198.18.1.1", port: 80, weight: bad, up: true }]), { instanceOf: ApiError }, String(bad));
  }
});

// ---------------------------------------------------------------------------------- rr, random

test("rr: each usable real once, in input order", (t) => {
  t.deepEqual([...build("rr", reals([5, 1, 9, 0, 2], [1])).slots], [0, 2, 4]);
});

test("random: each usable real once regardless of weight", (t) => {
  t.deepEqual([...build("random", reals([5, 1, 9, 0, 2], [2])).slots].sort(), [0, 1, 4]);
});

// ------------------------------------------------------------------------------------------ wrr

test("wrr: exact shares over a full cycle of sum/gcd slots", (t) => {
  const table = build("wrr", reals([3, 2, 1]));
  t.is(table.slots.length, 6);
  t.deepEqual(counts(table, 3), [3, 2, 1]);

  const reduced = build("wrr", reals([300, 200, 100]));
  t.is(reduced.slots.length, 6, "weights are divided by their gcd");
  t.deepEqual(counts(reduced, 3), [3, 2, 1]);

  const odd = build("wrr", reals([7, 0, 13, 4], []));
  t.is(odd.slots.length, 24);
  t.deepEqual(counts(odd, 4), [7, 0, 13, 4]);
});

test("wrr: 5:1:1 is smooth (nginx order), never five in a row", (t) => {
  const table = build("wrr", reals([5, 1, 1]));
  t.deepEqual([...table.slots], [0, 0, 1, 0, 2, 0, 0]);
  t.true(longestCircularRun(table.slots, 0) < 5);
});

test("wrr: a heavy real is spread out, not served in bursts", (t) => {
  const table = build("wrr", reals([10, 1, 1, 1, 1, 1]));
  t.deepEqual(counts(table, 6), [10, 1, 1, 1, 1, 1]);
  // 10 of 15: between every two light picks come at most two heavy ones (plus one across the wrap).
  t.true(longestCircularRun(table.slots, 0) <= 4, [...table.slots].join(","));
});

test("smoothSequence: every prefix stays within one pick of the ideal share", (t) => {
  const weights = [9, 4, 2, 1];
  const total = 16;
  const seq = smoothSequence(weights);
  const got = new Array<number>(weights.length).fill(0);
  seq.forEach((i, step) => {
    got[i]! += 1;
    weights.forEach((w, j) => t.true(Math.abs(got[j]! - (w * (step + 1)) / total) < 1 + 1e-9, `step ${step} real ${j}`));
  });
});

test("wrr: cycles longer than 65536 are scaled proportionally", (t) => {
  const weights = [65535, 65534, 1, 40000];
  const table = build("wrr", reals(weights));
  t.true(table.slots.length <= 65536, String(table.slots.length));
  t.true(table.slots.length > 65000, String(table.slots.length));
  const c = counts(table, weights.length);
  const sum = weights.reduce((a, w) => a + w, 0);
  weights.forEach((w, i) => {
    t.true(c[i]! >= 1, `real ${i} keeps at least one slot`);
    t.true(Math.abs(c[i]! - (w * table.slots.length) / sum) <= 2, `real ${i}: ${c[i]}`);
  });
});

test("wrr: 256 reals with large distinct weights build quickly", (t) => {
  const weights = Array.from({ length: 256 }, (_, i) => 65535 - i * 7);
  const started = Date.now();
  const table = build("wrr", reals(weights));
  t.true(Date.now() - started < 5000);
  t.true(table.slots.length <= 65536);
  t.is(new Set(table.slots).size, 256);
});

// ---------------------------------------------------------------------------------- apportion

test("apportion: exact total, at least one each, within two of the exact share", (t) => {
  const weights = [1, 1000, 65535, 3, 77];
  const total = 1000;
  const out = apportion(weights, total);
  t.is(out.reduce((a, c) => a + c, 0), total);
  const sum = weights.reduce((a, w) => a + w, 0);
  out.forEach((c, i) => {
    t.true(c >= 1);
    t.true(Math.abs(c - (weights[i]! * total) / sum) < 2, `${i}: ${c}`);
  });
  t.throws(() => apportion([1, 1, 1], 2));
});

test("apportion: slots for tiny weights come from those with most to spare", (t) => {
  const out = apportion([1, 1, 1, 1000, 1000], 10);
  t.deepEqual(out.slice(0, 3), [1, 1, 1]);
  t.is(out[3]! + out[4]!, 7);
  t.true(Math.abs(out[3]! - out[4]!) <= 1, out.join(","));
  t.deepEqual(apportion([5, 3, 2], 10), [5, 3, 2], "exact shares stay exact");
});

// -------------------------------------------------------------------------------------- wrandom

test("wrandom: slots proportional to weights, random mode", (t) => {
  const table = build("wrandom", reals([6, 3, 0, 3]));
  t.is(table.mode, "random");
  t.is(table.slots.length, 4, "gcd-reduced: 2+1+1");
  t.deepEqual(counts(table, 4), [2, 1, 0, 1]);
});

test("wrandom: large weights capped at 65536 with largest-remainder rounding", (t) => {
  const weights = [65535, 30000, 12345, 1];
  const table = build("wrandom", reals(weights));
  t.true(table.slots.length <= 65536);
  const c = counts(table, 4);
  const sum = weights.reduce((a, w) => a + w, 0);
  weights.forEach((w, i) => t.true(Math.abs(c[i]! - (w * table.slots.length) / sum) <= 2, `${i}: ${c[i]}`));
});

test("wrandom: uniform picks over the table follow the weights", (t) => {
  // Stand-in for the native random pick: a seeded xorshift over the table.
  const weights = [5, 3, 2];
  const table = build("wrandom", reals(weights));
  let x = 0x9e3779b9;
  const picks = new Array<number>(3).fill(0);
  const n = 200_000;
  for (let k = 0; k < n; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    picks[table.slots[(x >>> 0) % table.slots.length]!]! += 1;
  }
  weights.forEach((w, i) => t.true(Math.abs(picks[i]! / n - w / 10) < 0.01, `${i}: ${picks[i]! / n}`));
});

// ------------------------------------------------------------------------------------------- sh

test("sh: prime table near 256 slots per real, shares follow weights, interleaved", (t) => {
  const weights = [1, 2, 3, 4];
  const table = build("sh", reals(weights));
  t.is(table.slots.length, sourceHashTableLength(4));
  t.true(isPrime(table.slots.length));
  t.true(table.slots.length >= 1024 && table.slots.length < 1100, String(table.slots.length));
  const c = counts(table, 4);
  weights.forEach((w, i) => t.true(Math.abs(c[i]! - (w * table.slots.length) / 10) <= 2, `${i}: ${c[i]}`));
  for (let i = 0; i < 4; i++) t.true(longestCircularRun(table.slots, i) <= 3, `real ${i} runs`);
});

test("sh: deterministic for the same set; table stays under 65536 for 256 reals", (t) => {
  const rs = reals([3, 1, 4, 1, 5]);
  t.deepEqual(build("sh", rs).slots, build("sh", rs).slots);
  const big = build("sh", reals(new Array<number>(256).fill(1)));
  t.true(big.slots.length < 65536 && isPrime(big.slots.length));
  t.is(new Set(big.slots).size, 256);
});

// ------------------------------------------------------------------------------------------- mh

test("mh: table of 65537 slots, shares near equal for equal weights", (t) => {
  const table = build("mh", reals(new Array<number>(10).fill(1)));
  t.is(table.slots.length, MAGLEV_TABLE_SIZE);
  t.true(isPrime(MAGLEV_TABLE_SIZE));
  const c = counts(table, 10);
  const ideal = MAGLEV_TABLE_SIZE / 10;
  for (const x of c) t.true(Math.abs(x - ideal) / ideal < 0.02, `${x} vs ${ideal}`);
});

test("mh: weights are honoured", (t) => {
  const weights = [1, 2, 3, 4];
  const table = build("mh", reals(weights));
  const c = counts(table, 4);
  weights.forEach((w, i) => {
    const share = c[i]! / MAGLEV_TABLE_SIZE;
    t.true(Math.abs(share - w / 10) < 0.01, `real ${i}: ${share}`);
  });
});

test("mh: one of 10 reals going down moves only about its share of slots", (t) => {
  const rs = reals(new Array<number>(10).fill(1));
  const before = build("mh", rs).slots;
  const after = build("mh", reals(new Array<number>(10).fill(1), [3])).slots;
  let moved = 0;
  let movedFromSurvivors = 0;
  for (let k = 0; k < MAGLEV_TABLE_SIZE; k++) {
    if (before[k] !== after[k]) {
      moved++;
      if (before[k] !== 3) movedFromSurvivors++;
    }
  }
  const share = before.filter((s) => s === 3).length;
  t.false(after.includes(3));
  // Every slot of the lost real moves; Maglev moves a few more (the paper reports a small excess).
  t.true(moved >= share);
  t.true(movedFromSurvivors / MAGLEV_TABLE_SIZE < 0.03, `survivor slots moved: ${movedFromSurvivors}`);
  t.true(moved / MAGLEV_TABLE_SIZE < 0.13, `moved ${moved} of ${MAGLEV_TABLE_SIZE}`);
});

test("mh: identity is ip:port, not list position (removing a real from the list)", (t) => {
  const rs = reals(new Array<number>(8).fill(1));
  const before = build("mh", rs).slots;
  const without = rs.filter((_, i) => i !== 0); // indexes shift by one
  const after = build("mh", without).slots;
  let kept = 0;
  for (let k = 0; k < MAGLEV_TABLE_SIZE; k++) {
    if (before[k] !== 0 && after[k]! + 1 === before[k]) kept++;
  }
  const survivorsBefore = before.filter((s) => s !== 0).length;
  t.true(kept / survivorsBefore > 0.97, `kept ${kept} of ${survivorsBefore}`);
});

test("mh: extreme weights still give every real a slot", (t) => {
  const table = build("mh", reals([65535, 1, 65535]));
  const c = counts(table, 3);
  t.true(c[1]! >= 1);
  t.true(Math.abs(c[0]! - c[2]!) / MAGLEV_TABLE_SIZE < 0.01);
});
