// Slow start's ramp, on a driven clock: the share of its weight a ramping real has over time, the
// scheduler input that gives it that share, and the shares the real schedulers' tables then give it.
import test from "ava";
import { schedulerFor, type SchedulerName } from "../src/schedulers";
import { effectiveWeight, nextRampChangeMs, rampedTableInput, rampFraction, rampSteps, type RampingReal } from "../src/slowStart/slowStartRamp";

const real = (n: number, weight: number, fraction = 1, up = true): RampingReal => ({ ip: `198.18.1.${10 + n}`, port: 8080, weight, up, fraction });

/** Each real's share of a table's slots (the least-connection modes: of its weights). */
function shares(scheduler: SchedulerName, reals: RampingReal[]): number[] {
  const input = rampedTableInput(scheduler, reals);
  const table = schedulerFor(input.scheduler).build({ reals: input.reals });
  const per = reals.map(() => 0);
  table.slots.forEach((index, slot) => (per[index]! += table.weights ? table.weights[slot]! : 1));
  const total = per.reduce((a, b) => a + b, 0);
  return per.map((p) => p / total);
}

test("a 30 s ramp: ten steps of 3 s, from 1/11 of the weight up, whole at 30 s and after", (t) => {
  t.is(rampSteps(30), 10);
  const at = [0, 2999, 3000, 6000, 15_000, 26_999, 27_000, 29_999, 30_000, 90_000];
  t.deepEqual(at.map((ms) => rampFraction(ms, 30)), [1 / 11, 1 / 11, 2 / 11, 3 / 11, 6 / 11, 9 / 11, 10 / 11, 10 / 11, 1, 1]);
  t.deepEqual(at.map((ms) => nextRampChangeMs(ms, 30)), [3000, 3000, 6000, 9000, 18_000, 27_000, 30_000, 30_000, undefined, undefined]);
});

test("a ramp shorter than ten seconds steps once a second; 0 means no ramp", (t) => {
  t.is(rampSteps(4), 4);
  t.deepEqual([0, 999, 1000, 3500, 4000].map((ms) => rampFraction(ms, 4)), [1 / 5, 1 / 5, 2 / 5, 4 / 5, 1]);
  t.is(rampFraction(0, 0), 1);
  t.is(nextRampChangeMs(0, 0), undefined);
});

test("the share only grows, step by step, on a driven clock", (t) => {
  let previous = 0;
  let steps = 0;
  for (let ms = 0; ms <= 20_000; ms += 250) {
    const fraction = rampFraction(ms, 20);
    t.true(fraction >= previous, `at ${ms} ms`);
    if (fraction > previous) steps++;
    previous = fraction;
  }
  t.is(steps, 11); // 10 steps, then whole
});

test("no real ramping: the input is the service's own, unchanged", (t) => {
  const reals = [real(1, 3), real(2, 1)];
  t.deepEqual(rampedTableInput("rr", reals), { scheduler: "rr", reals: reals.map(({ fraction: _f, ...r }) => r) });
});

test("weighted schedulers: a ramping weight-1 real gets its fraction of the others' share (weights scaled by 11)", (t) => {
  const input = rampedTableInput("wrr", [real(1, 1), real(2, 1), real(3, 1, 2 / 11)]);
  t.is(input.scheduler, "wrr");
  t.deepEqual(input.reals.map((r) => r.weight), [11, 11, 2]);
  // A drained real stays at 0, ramping or not; a down one stays down.
  const drained = rampedTableInput("wrr", [real(1, 2), real(2, 0, 1 / 11), real(3, 1, 1 / 11, false)]);
  t.deepEqual(drained.reals.map((r) => [r.weight, r.up]), [[22, true], [0, true], [1, false]]);
  // Large weights are not scaled (they would overflow 65535): the fraction applies to them directly.
  t.deepEqual(rampedTableInput("wrr", [real(1, 60000), real(2, 60000, 0.5)]).reals.map((r) => r.weight), [60000, 30000]);
});

test("rr, random and lc ramp as wrr, wrandom and wlc with every real at the same weight", (t) => {
  for (const [plain, weighted] of [["rr", "wrr"], ["random", "wrandom"], ["lc", "wlc"]] as const) {
    const input = rampedTableInput(plain, [real(1, 5), real(2, 1), real(3, 7, 1 / 11)]);
    t.is(input.scheduler, weighted);
    t.deepEqual(input.reals.map((r) => r.weight), [11, 11, 1], plain);
  }
});

test("every scheduler's table gives the ramping real its share, growing to its full one", (t) => {
  for (const scheduler of ["rr", "wrr", "random", "wrandom", "sh", "mh", "lc", "wlc", "sed", "nq"] as const) {
    const over = [0, 10_000, 20_000, 29_000, 30_000].map((ms) => shares(scheduler, [real(1, 2), real(2, 2), real(3, 2, rampFraction(ms, 30))])[2]!);
    // 1/11 of a weight next to two whole ones: about 1/23 of the slots, then more at each step, a third at the end.
    t.true(Math.abs(over[0]! - 1 / 23) < 0.01, `${scheduler}: ${over[0]}`);
    for (let i = 1; i < over.length; i++) t.true(over[i]! > over[i - 1]!, `${scheduler}: ${over.join(", ")}`);
    t.true(Math.abs(over[4]! - 1 / 3) < 0.01, `${scheduler}: ${over[4]}`);
  }
});

test("status's effective weight is in the real's own units", (t) => {
  t.is(effectiveWeight(4, 3 / 11), 1.09);
  t.is(effectiveWeight(4, 1), 4);
});
