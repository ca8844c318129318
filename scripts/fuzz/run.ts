// `npm run fuzz -- [--seconds N] [--runs R] [--jobs J] [harness...]`: builds the fuzz harnesses, runs
// each (all by default) for N seconds (default 60) or R inputs if that comes first, J at a time
// (default 1), and prints executions and crashes per harness.
// Exits 1 when any crashed or broke an invariant; the crashing inputs stay in build-fuzz/crashes/<harness>/
// (rerun one with: build-fuzz/<harness> <file>).
import { parseArgs } from "node:util";
import { buildFuzzers, harnessNames, runFuzzer, type FuzzRun } from "./fuzzers";

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    options: {
      seconds: { type: "string", default: "60" },
      runs: { type: "string" },
      jobs: { type: "string", default: "1" },
    },
    allowPositionals: true,
  });
  const seconds = Number(values.seconds);
  if (!Number.isInteger(seconds) || seconds < 1) throw new Error(`--seconds must be a whole number >= 1 (got ${values.seconds})`);
  const runs = values.runs === undefined ? undefined : Number(values.runs);
  if (runs !== undefined && (!Number.isInteger(runs) || runs < 1)) throw new Error(`--runs must be a whole number >= 1 (got ${values.runs})`);
  const jobs = Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`--jobs must be a whole number >= 1 (got ${values.jobs})`);
  const known = harnessNames();
  const unknown = positionals.filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new Error(`unknown harness ${unknown.join(", ")}; there are: ${known.join(", ")}`);
  const chosen = positionals.length > 0 ? positionals : known;

  console.log("building the fuzz harnesses (build-fuzz/) ...");
  await buildFuzzers((line) => console.error(line));
  const queue = [...chosen];
  const finished = new Map<string, FuzzRun>();
  const lane = async (): Promise<void> => {
    for (let harness = queue.shift(); harness !== undefined; harness = queue.shift()) {
      console.log(`${harness}: fuzzing for ${seconds} s${runs ? ` or ${runs} inputs` : ""}`);
      const run = await runFuzzer(harness, { seconds, runs });
      finished.set(harness, run);
      console.log(`${harness}: ${run.executions} executions in ${run.seconds.toFixed(0)} s, ${run.crashes} crashes`);
      if (run.crashes > 0) {
        console.log(run.output.split("\n").filter((line) => /invariant violated|ERROR|runtime error|SUMMARY/.test(line)).join("\n"));
      }
    }
  };
  await Promise.all(Array.from({ length: jobs }, lane));
  const results = chosen.map((harness) => finished.get(harness)!);
  console.log("\nharness          executions   crashes");
  for (const run of results) {
    console.log(`${run.harness.padEnd(16)} ${String(run.executions).padStart(10)}   ${run.crashes}${run.crashFiles.length ? `  (${run.crashFiles.join(", ")})` : ""}`);
  }
  return results.some((run) => run.crashes > 0) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`natlb fuzz: ${(error as Error).message}`);
    process.exit(2);
  },
);
