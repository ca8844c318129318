// Command-line handling shared by the lab's traffic tools: `--name value` flags, validated, and a
// main() wrapper that turns bad arguments into exit code 2 with a usage message.

/** Bad command-line arguments: printed with the usage text, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface IntRange {
  min: number;
  max: number;
}

/** Parsed `--name value` / `--flag` arguments. Every accessor validates and throws UsageError. */
export class ToolArgs {
  private readonly values = new Map<string, string | true>();
  private readonly used = new Set<string>();

  constructor(argv: readonly string[], booleanFlags: readonly string[] = []) {
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i] as string;
      if (!arg.startsWith('--') || arg.length < 3) throw new UsageError(`unexpected argument "${arg}"`);
      const eq = arg.indexOf('=');
      const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
      if (this.values.has(name)) throw new UsageError(`--${name} given twice`);
      if (eq > 0) {
        this.values.set(name, arg.slice(eq + 1));
      } else if (booleanFlags.includes(name)) {
        this.values.set(name, true);
      } else {
        const v = argv[i + 1];
        if (v === undefined) throw new UsageError(`--${name} needs a value`);
        this.values.set(name, v);
        i++;
      }
    }
  }

  string(name: string): string | undefined;
  string(name: string, fallback: string): string;
  string(name: string, fallback?: string): string | undefined {
    this.used.add(name);
    const v = this.values.get(name);
    if (v === true) throw new UsageError(`--${name} needs a value`);
    return v ?? fallback;
  }

  requiredString(name: string): string {
    const v = this.string(name);
    if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
    return v;
  }

  int(name: string, range: IntRange): number | undefined;
  int(name: string, range: IntRange, fallback: number): number;
  int(name: string, range: IntRange, fallback?: number): number | undefined {
    const s = this.string(name);
    if (s === undefined) return fallback;
    if (!/^-?\d+$/.test(s)) throw new UsageError(`--${name} must be an integer, got "${s}"`);
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < range.min || n > range.max) {
      throw new UsageError(`--${name} must be in ${range.min}..${range.max}, got ${s}`);
    }
    return n;
  }

  flag(name: string): boolean {
    this.used.add(name);
    const v = this.values.get(name);
    if (v === undefined) return false;
    if (v === true || v === 'true' || v === '1') return true;
    if (v === 'false' || v === '0') return false;
    throw new UsageError(`--${name} takes no value (or true/false), got "${v}"`);
  }

  /** Call after reading every option: rejects options the tool does not know. */
  rejectUnknown(): void {
    for (const name of this.values.keys()) {
      if (!this.used.has(name)) throw new UsageError(`unknown option --${name}`);
    }
  }
}

/** "a.b.c.d" check (dotted quad, each part 0..255). */
export function isIpv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

/** Prints one JSON object as a line on stdout (the tools' output protocol). */
export function emit(obj: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/**
 * Prints a last JSON line and exits once stdout has taken it: a pipe to a busy reader accepts only
 * part of a long line at once, and process.exit() would cut the rest.
 */
export function emitThenExit(obj: Record<string, unknown>, code: number): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`, () => process.exit(code));
  // A reader that never drains the pipe must not keep the tool alive.
  setTimeout(() => process.exit(code), 5000);
}

/**
 * Runs a tool's main function: UsageError -> usage on stderr, exit 2; any other error -> message on
 * stderr, exit 1. The main function decides the exit code on success (it may keep running).
 */
export function runToolMain(tool: string, usage: string, main: (argv: string[]) => Promise<void>): void {
  if (process.env[EXIT_WITH_PARENT_ENV] === '1') exitWhenOrphaned(tool);
  main(process.argv.slice(2)).catch((e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`${tool}: ${e.message}\nusage: ${usage}\n`);
      process.exit(2);
    }
    process.stderr.write(`${tool}: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}

/** Set by the launch helpers: the tool exits when the process that started it is gone. */
export const EXIT_WITH_PARENT_ENV = 'NATLB_EXIT_WITH_PARENT';

/**
 * A SIGKILLed test process cannot stop its tools; they notice by being re-parented (`ip netns exec`
 * execs the tool, so its parent is the launching process itself) and exit.
 */
function exitWhenOrphaned(tool: string): void {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) {
      process.stderr.write(`${tool}: the launching process (pid ${parent}) is gone, exiting\n`);
      process.exit(0);
    }
  }, 500).unref();
}
