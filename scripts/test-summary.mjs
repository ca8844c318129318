#!/usr/bin/env node
// Runs the ava suite with TAP output, passes the output through, and ends with the one line CI reads:
// "N passed, N failed[, N skipped]". Exits non-zero when any pass failed.
//
// Two passes: every test file but the ones that load the machine on purpose (spoofed floods near the
// 2-core limit, fuzzing, sanitizer builds), two files at a time as ava's config says; then those
// alone, one at a time, so their load cannot starve the timing-sensitive tests of another file, nor
// theirs be measured under it.
// Arguments (ava options or files) replace the passes: `npm test -- test/config.test.ts`.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

// The floods load the network path; the fuzzing and sanitizer tests compile with clang and run
// instrumented code on a core each, which starved a timing test beside them (the flood generator's
// own rate check) in a CI run.
const RUN_ALONE = ["test/e2e-floods.test.ts", "test/fuzz.test.ts", "test/sanitizers.test.ts"];

const counts = { passed: 0, failed: 0, skipped: 0 };

function runAva(args) {
  return new Promise((resolve) => {
    const ava = spawn("npx", ["ava", "--tap", ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let failedHere = 0;
    const lines = createInterface({ input: ava.stdout });
    lines.on("line", (line) => {
      process.stdout.write(`${line}\n`);
      if (/^not ok \d+/.test(line)) {
        if (/# (TODO|SKIP)/i.test(line)) counts.skipped += 1;
        else {
          counts.failed += 1;
          failedHere += 1;
        }
      } else if (/^ok \d+/.test(line)) {
        if (/# (SKIP|TODO)/i.test(line)) counts.skipped += 1;
        else counts.passed += 1;
      }
    });
    const forward = (signal) => ava.kill(signal);
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);
    ava.on("close", (code) => {
      lines.close();
      process.off("SIGINT", forward);
      process.off("SIGTERM", forward);
      const exitCode = code ?? 1;
      // ava can fail outside any test (an uncaught exception in a file, a timeout): make it visible.
      if (exitCode !== 0 && failedHere === 0) counts.failed += 1;
      resolve(exitCode);
    });
  });
}

const given = process.argv.slice(2);
const passes = given.length > 0
  ? [given]
  : [["test/**/*.test.ts", ...RUN_ALONE.map((file) => `!${file}`)], ["--concurrency", "1", ...RUN_ALONE]];
let exitCode = 0;
for (const args of passes) exitCode = Math.max(exitCode, await runAva(args));
console.log(`${counts.passed} passed, ${counts.failed} failed${counts.skipped ? `, ${counts.skipped} skipped` : ""}`);
process.exit(exitCode);
