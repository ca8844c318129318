// Builds and runs the libFuzzer harnesses (fuzz/harnesses/, one per file; fuzz/CMakeLists.txt) for
// `npm run fuzz` (./run.ts) and test/fuzz.test.ts. Tooling, not product: the package does not ship fuzz/.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

export const REPO_ROOT = join(__dirname, "..", "..", "..");
export const FUZZ_SOURCE = join(REPO_ROOT, "fuzz");
export const SEED_CORPUS = join(FUZZ_SOURCE, "corpus");
/** Where the harnesses are built, and where each run keeps what it adds to the corpus and its crashes. */
export const FUZZ_BUILD = join(REPO_ROOT, "build-fuzz");
export const CRASH_DIR = join(FUZZ_BUILD, "crashes");

/** The harnesses, one per fuzz/harnesses/<name>.cc. */
export function harnessNames(): string[] {
  return readdirSync(join(FUZZ_SOURCE, "harnesses"))
    .filter((file) => file.endsWith(".cc"))
    .map((file) => file.slice(0, -3))
    .sort();
}

interface Finished {
  status: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

function runProcess(command: string, args: string[], cwd: string, onLine?: (line: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const take = (chunk: Buffer): void => {
      const text = chunk.toString();
      output += text;
      if (onLine) for (const line of text.split("\n")) if (line.trim()) onLine(line);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("error", reject);
    child.on("close", (status, signal) => resolve({ status, signal, output }));
  });
}

/** Configures (clang) and builds every harness into FUZZ_BUILD; nice -n 19. */
export async function buildFuzzers(log: (line: string) => void = () => {}): Promise<void> {
  const steps: string[][] = [
    ["cmake", "-S", FUZZ_SOURCE, "-B", FUZZ_BUILD, "-DCMAKE_CXX_COMPILER=clang++"],
    ["cmake", "--build", FUZZ_BUILD, "--parallel", "2"],
  ];
  for (const step of steps) {
    const result = await runProcess("nice", ["-n", "19", ...step], REPO_ROOT);
    if (result.status !== 0) {
      log(result.output);
      throw new Error(`${step.join(" ")} failed (exit ${result.status}): is clang with its compiler-rt installed? (scripts/bootstrap.sh)`);
    }
  }
}

export interface FuzzRun {
  harness: string;
  executions: number;
  /** Inputs that crashed or broke an invariant (libFuzzer stops at the first). */
  crashes: number;
  /** The crashing inputs this run left, with the path of each. */
  crashFiles: string[];
  seconds: number;
  output: string;
}

export interface FuzzOptions {
  seconds: number;
  /** Stop after this many inputs, if that comes before `seconds`. */
  runs?: number;
  /** Run it as its mutant (NATLB_FUZZ_MUTANT, fuzz/support/invariant.h): it damages what it checks, on purpose. */
  mutant?: boolean;
  onLine?: (line: string) => void;
}

/**
 * Runs one harness for `seconds` (or `runs` inputs) at nice -n 19, from the seed corpus plus what earlier runs added
 * (FUZZ_BUILD/corpus/<harness>); a crashing input is left in CRASH_DIR/<harness>/.
 */
export async function runFuzzer(harness: string, options: FuzzOptions): Promise<FuzzRun> {
  const binary = join(FUZZ_BUILD, harness);
  if (!existsSync(binary)) throw new Error(`${binary} is not built: run buildFuzzers() (npm run fuzz builds first)`);
  const name = options.mutant ? `${harness}_mutant` : harness;
  const workCorpus = join(FUZZ_BUILD, "corpus", name);
  const crashes = join(CRASH_DIR, name);
  mkdirSync(workCorpus, { recursive: true });
  rmSync(crashes, { recursive: true, force: true });
  mkdirSync(crashes, { recursive: true });
  const started = Date.now();
  const result = await runProcess(
    "nice",
    ["-n", "19", binary, `-max_total_time=${options.seconds}`, ...(options.runs ? [`-runs=${options.runs}`] : []), "-timeout=10", "-print_final_stats=1",
      `-artifact_prefix=${crashes}/`, workCorpus, join(SEED_CORPUS, harness)],
    REPO_ROOT,
    options.onLine,
    options.mutant ? { ...process.env, NATLB_FUZZ_MUTANT: "1" } : process.env,
  );
  const crashFiles = readdirSync(crashes).map((file) => join(crashes, file));
  const executions = Number(/stat::number_of_executed_units:\s*(\d+)/.exec(result.output)?.[1] ?? NaN);
  const ranClean = result.status === 0 && crashFiles.length === 0;
  return {
    harness: name,
    executions,
    crashes: ranClean ? 0 : Math.max(crashFiles.length, 1),
    crashFiles,
    seconds: (Date.now() - started) / 1000,
    output: result.output,
  };
}
