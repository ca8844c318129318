// The fuzz harnesses (fuzz/harnesses) build and run clean for a few seconds each, from the seed corpus
// (fuzz/corpus), under ASan and UBSan. And they can fail: each harness's mutant (NATLB_FUZZ_MUTANT, it
// damages the output of the function under test) must be caught by the harness's invariant checks,
// with the crashing input left in build-fuzz/crashes/ and passing the real harness when replayed.
// The long runs are `npm run fuzz -- --seconds N` (README, "Fuzzing and sanitizers").
import test from "ava";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { FUZZ_BUILD, buildFuzzers, harnessNames, runFuzzer } from "../scripts/fuzz/fuzzers";

const SECONDS_EACH = 4;
const MUTANT_SECONDS = 20;

/** Runs `work` over `items`, two at a time (this machine has two cores). */
async function twoAtATime<T>(items: string[], work: (item: string) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  const queue = [...items];
  const lane = async (): Promise<void> => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) results.push(await work(item));
  };
  await Promise.all([lane(), lane()]);
  return results;
}

test("every harness runs clean from its seeds, and catches its mutant", async (t) => {
  t.timeout(4 * 60_000);
  await buildFuzzers();
  const harnesses = harnessNames();
  t.true(harnesses.length >= 8, `harnesses: ${harnesses.join(", ")}`);

  const clean = await twoAtATime(harnesses, (harness) => runFuzzer(harness, { seconds: SECONDS_EACH }));
  for (const run of clean) {
    t.is(run.crashes, 0, `${run.harness} crashed or broke an invariant:\n${run.output.slice(-4000)}`);
    t.true(run.executions > 1000, `${run.harness} ran ${run.executions} inputs`);
  }

  const mutants = await twoAtATime(harnesses, (harness) => runFuzzer(harness, { seconds: MUTANT_SECONDS, mutant: true }));
  for (const run of mutants) {
    t.true(run.crashes > 0 && run.crashFiles.length > 0, `${run.harness}'s mutant went unnoticed:\n${run.output.slice(-2000)}`);
    t.regex(run.output, /natlb fuzz: invariant violated: /, `${run.harness}: the crash is an invariant's`);
    if (run.crashFiles.length === 0) continue;
    // The crashing input is good as an input: the real harness passes it.
    const harness = run.harness.replace(/_mutant$/, "");
    await t.notThrowsAsync(promisify(execFile)(join(FUZZ_BUILD, harness), [run.crashFiles[0]!]), `${harness} passes the mutant's crash input`);
  }
});
