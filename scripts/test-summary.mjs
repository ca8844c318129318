#!/usr/bin/env node
// Runs the ava suite with TAP output, passes the output through, and ends with the one line CI reads:
// "N passed, N failed[, N skipped]". Exits with ava's exit code.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

const ava = spawn("npx", ["ava", "--tap", ...process.argv.slice(2)], { stdio: ["ignore", "pipe", "inherit"] });
let passed = 0;
let failed = 0;
let skipped = 0;
const lines = createInterface({ input: ava.stdout });
lines.on("line", (line) => {
  process.stdout.write(`${line}\n`);
  if (/^not ok \d+/.test(line)) {
    if (/# (TODO|SKIP)/i.test(line)) skipped += 1;
    else failed += 1;
  } else if (/^ok \d+/.test(line)) {
    if (/# (SKIP|TODO)/i.test(line)) skipped += 1;
    else passed += 1;
  }
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => ava.kill(signal));
ava.on("close", (code) => {
  lines.close();
  const exitCode = code ?? 1;
  // ava can fail outside any test (an uncaught exception in a file, a timeout): make it visible.
  if (exitCode !== 0 && failed === 0) failed = 1;
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exit(exitCode);
});
