// The native unit tests again, on a copy of the addon built under AddressSanitizer and
// UndefinedBehaviorSanitizer (build-sanitized/, scripts/sanitizers/sanitizedAddon.ts): any report
// ends its test process, so the run fails. The copy is really the one loaded, instrumented: checked
// first from the process's own mappings.
import test from "ava";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { SANITIZED_ADDON, buildSanitizedAddon, sanitizedEnvironment } from "../scripts/sanitizers/sanitizedAddon";

const root = join(__dirname, "..", "..");
const NATIVE_TEST_FILES = [
  "packet", "checksumState", "gsoFrames", "coalesce", "icmpTranslate", "routerFrames", "tcpTracking", "flowTableDefences", "nativeSurface",
  "connectionLimits", "flowSyncMessage", "flowSync",
].map((name) => join("dist", "test", `${name}.test.js`));

interface Finished {
  status: number | null;
  output: string;
}

function run(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn("nice", ["-n", "19", process.execPath, ...args], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, output }));
  });
}

// Two serial steps, so each stays within ava's inactivity timeout on a loaded two-core machine.
test.serial("the sanitized addon builds, and is what a process run with its environment loads", async (t) => {
  t.timeout(5 * 60_000);
  await buildSanitizedAddon();
  const probe = await run(
    ["-e", `require(${JSON.stringify(join(root, "dist", "src", "native.js"))}).loadNative();
      const maps = require("node:fs").readFileSync("/proc/self/maps", "utf8");
      console.log(JSON.stringify({ addon: maps.includes(${JSON.stringify(SANITIZED_ADDON)}), asan: /libclang_rt\\.asan/.test(maps) }));`],
    await sanitizedEnvironment(), 60_000,
  );
  t.is(probe.status, 0, probe.output);
  t.regex(probe.output, /"addon":true,"asan":true/, "the sanitized addon and the ASan runtime are what the process runs");
});

test.serial("the native unit tests pass under ASan and UBSan", async (t) => {
  t.timeout(5 * 60_000);
  const tests = await run([join("node_modules", "ava", "entrypoints", "cli.mjs"), ...NATIVE_TEST_FILES], await sanitizedEnvironment(), 4.5 * 60_000);
  t.notRegex(tests.output, /ERROR: AddressSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer/, tests.output.slice(-6000));
  t.is(tests.status, 0, `exit ${tests.status} (null: killed at the time limit)\n${tests.output.slice(-6000)}`);
  t.regex(tests.output, /natlb sanitizers: loading /, "the test files loaded the sanitized addon");
  t.regex(tests.output, /\d+ tests passed/);
});
