// A copy of the addon built with clang under AddressSanitizer and UndefinedBehaviorSanitizer
// (build-sanitized/, apart from the product's build-cmake/), and how to run node with it: the ASan
// runtime preloaded (node itself is not instrumented) and ./loadSanitizedAddon in place of the
// product's addon. Tooling for test/sanitizers.test.ts; the product loader (src/native.ts) never
// looks at any of it.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const REPO_ROOT = join(__dirname, "..", "..", "..");
export const SANITIZED_BUILD = join(REPO_ROOT, "build-sanitized");
export const SANITIZED_ADDON = join(SANITIZED_BUILD, "Release", "natlb.node");
/** The preload that swaps the addon (compiled from ./loadSanitizedAddon.ts). */
export const ADDON_SWAP = join(__dirname, "loadSanitizedAddon.js");
/** The environment variable the swap reads: where the sanitized addon is. */
export const SANITIZED_ADDON_VARIABLE = "NATLB_SANITIZED_ADDON";

const SANITIZE = "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -gline-tables-only";

/** Builds the sanitized addon with cmake-js (nice -n 19); incremental after the first build. */
export async function buildSanitizedAddon(): Promise<void> {
  await promisify(execFile)(
    "nice",
    ["-n", "19", process.execPath, join(REPO_ROOT, "node_modules", "cmake-js", "bin", "cmake-js"), "compile",
      "--out", SANITIZED_BUILD, "--cc", "clang", "--cxx", "clang++",
      // cmake-js sets CMAKE_CXX_FLAGS itself; the build type's flags are free.
      `--CDCMAKE_CXX_FLAGS_RELEASE=-DNDEBUG ${SANITIZE}`, `--CDCMAKE_SHARED_LINKER_FLAGS=${SANITIZE} -shared-libsan`],
    { cwd: REPO_ROOT, maxBuffer: 64 << 20, timeout: 10 * 60_000 },
  );
  if (!existsSync(SANITIZED_ADDON)) throw new Error(`the sanitized build did not produce ${SANITIZED_ADDON}`);
}

/** The shared ASan runtime (with UBSan's) of the clang that built the addon. */
export async function asanRuntime(): Promise<string> {
  const { stdout } = await promisify(execFile)("clang", ["-print-file-name=libclang_rt.asan-x86_64.so"]);
  const path = stdout.trim();
  if (!existsSync(path)) throw new Error(`clang has no shared ASan runtime (${path}): install libclang-rt-dev (scripts/bootstrap.sh)`);
  return path;
}

/** The environment for a node process that runs the addon's tests on the sanitized addon. */
export async function sanitizedEnvironment(base: NodeJS.ProcessEnv = process.env): Promise<NodeJS.ProcessEnv> {
  return {
    ...base,
    LD_PRELOAD: await asanRuntime(),
    // Node's own allocations are not the addon's leaks; any report ends the process with an error.
    ASAN_OPTIONS: "detect_leaks=0:abort_on_error=1:print_summary=1",
    UBSAN_OPTIONS: "print_stacktrace=1:halt_on_error=1",
    NODE_OPTIONS: `--require ${ADDON_SWAP}`,
    [SANITIZED_ADDON_VARIABLE]: SANITIZED_ADDON,
  };
}
