// `npm run fuzz -- [--seconds N] [harness...]`: builds the fuzz harnesses, runs each (all by default)
// for N seconds (default 60), one after the other, and prints executions and crashes per harness.
// Exits 1 when any crashed or broke an invariant; the crashing inputs stay in build-fuzz/crashes/<harness>/
// (rerun one with: build-fuzz/<harness> <file>).
import { parseArgs } from "node:util";
import { buildFuzzers, harnessNames, runFuzzer, type FuzzRun } from "./fuzzers";

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    options: { seconds: { type: "string", default: "60" } },
    allowPositionals: true,
  });
  const seconds = Number(values.seconds);
  if (!Number.isInteger(seconds) || seconds < 1) throw new Error(`--seconds must be a whole number >= 1 (got ${values.seconds})`);
  const known = harnessNames();
  const unknown = positionals.filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new Error(`unknown harness ${unknown.join(", ")}; there are: ${known.join(", ")}`);
  const chosen = positionals.length > 0 ? positionals : known;

  console.log("building the fuzz harnesses (build-fuzz/) ...");
  await buildFuzzers((line) => console.error(line));
  const runs: FuzzRun[] = [];
  for (const harness of chosen) {
    console.log(`${harness}: fuzzing for ${seconds} s`);
    const run = await runFuzzer(harness, { seconds });
    runs.push(run);
    if (run.crashes > 0) {
      console.log(run.output.split("\n").filter((line) => /invariant violated|ERROR|runtime error|SUMMARY/.test(line)).join("\n"));
    }
  }
  console.log("\nharness          executions   crashes");
  for (const run of runs) {
    console.log(`${run.harness.padEnd(16)} ${String(run.executions).padStart(10)}   ${run.crashes}${run.crashFiles.length ? `  (${run.crashFiles.join(", ")})` : ""}`);
  }
  return runs.some((run) => run.crashes > 0) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`natlb fuzz: ${(error as Error).message}`);
    process.exit(2);
  },
);
