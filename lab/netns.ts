// Running programs inside a network namespace. Everything goes through execFile/spawn with an
// argument vector (never a shell string), so namespace names and arguments cannot be re-parsed.
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';

/** The `ip` binary; iproute2 lives in /usr/sbin, which is not on every PATH (e.g. npm scripts). */
export const IP_BIN = sbin('ip');

export interface RunOptions {
  /** Kill the command (SIGKILL) after this many ms. Default 60 000. */
  timeoutMs?: number;
  /** Bytes written to the command's stdin. */
  input?: string | Buffer;
  /** Largest stdout/stderr accepted, in bytes. Default 64 MiB. */
  maxBuffer?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code; -1 when the command was killed by a signal (see `signal`) or could not start. */
  code: number;
  signal: NodeJS.Signals | null;
}

/** A command run by {@link runInChecked} failed; the message carries its stderr. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly ns: string | null,
    readonly cmd: string,
    readonly args: readonly string[],
    readonly result: RunResult,
  ) {
    const where = ns === null ? '' : `[netns ${ns}] `;
    const how = result.signal !== null ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
    const detail = (result.stderr.trim() || result.stdout.trim()).slice(0, 2000);
    super(`${where}${cmd} ${args.join(' ')} ${how}${detail ? `: ${detail}` : ''}`);
  }
}

/** argv that runs `cmd args` inside `ns` (or directly when ns is null). */
export function commandIn(ns: string | null, cmd: string, args: readonly string[]): [string, string[]] {
  if (ns === null) return [cmd, [...args]];
  // `ip netns exec` setns()es and then execvp()s the command: no extra process stays in between,
  // so signals sent to the child's pid reach the program itself.
  return [IP_BIN, ['netns', 'exec', ns, cmd, ...args]];
}

/** Runs a command to completion (in `ns`, or in the current namespace when ns is null). Never throws. */
export function runIn(ns: string | null, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, argv] = commandIn(ns, cmd, args);
  return new Promise((resolve) => {
    const child = execFile(
      file,
      argv,
      {
        timeout: opts.timeoutMs ?? 60_000,
        killSignal: 'SIGKILL',
        maxBuffer: opts.maxBuffer ?? 64 * 1024 * 1024,
        encoding: 'utf8',
        env: opts.env,
        cwd: opts.cwd,
      },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve({ stdout, stderr, code: 0, signal: null });
          return;
        }
        const e = err as NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals | null; killed?: boolean };
        const code = typeof e.code === 'number' ? e.code : -1;
        const spawnFailure = typeof e.code === 'string' ? `${e.message}\n` : '';
        const timedOut = e.killed === true ? `timed out after ${opts.timeoutMs ?? 60_000} ms\n` : '';
        resolve({ stdout, stderr: `${timedOut}${spawnFailure}${stderr}`, code, signal: e.signal ?? null });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Like {@link runIn} but throws a {@link CommandError} (with stderr) unless the command exits 0. */
export async function runInChecked(
  ns: string | null,
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const result = await runIn(ns, cmd, args, opts);
  if (result.code !== 0) throw new CommandError(ns, cmd, args, result);
  return result;
}

/** Starts a long-running command inside `ns` (stdio piped by default). The caller owns the process. */
export function spawnIn(ns: string | null, cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  const [file, argv] = commandIn(ns, cmd, args);
  return spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

/** Absolute path of a system tool (ip, ethtool, sysctl), so a PATH without /usr/sbin still works. */
export function sbin(name: string): string {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    const p = `${dir}/${name}`;
    if (existsSync(p)) return p;
  }
  return name;
}
