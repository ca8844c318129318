// A traffic tool running in a lab namespace, seen from the test process: its JSON-lines stdout as
// events, its stderr for error messages, and bounded waits on both.
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { exited, isRunning, stopProcesses } from './processes';
import { EXIT_WITH_PARENT_ENV } from './toolArgs';
import { LabTimeoutError } from './wait';

/** Anything that can start a process in a namespace (a Lab). */
export interface NamespaceSpawner {
  spawn(ns: string, cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess;
}

export type ToolEvent = Record<string, unknown> & { event?: string };

export interface ToolExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Error from a tool: it exited early, printed garbage, or did not answer in time. */
export class ToolError extends Error {
  override readonly name = 'ToolError';
}

interface Waiter {
  pred: (e: ToolEvent) => boolean;
  resolve: (e: ToolEvent) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const STDERR_KEEP = 64 * 1024;

export class ToolProcess {
  readonly events: ToolEvent[] = [];
  /** stdout lines that were not JSON objects. */
  readonly textLines: string[] = [];
  readonly exit: Promise<ToolExit>;
  private stdoutParts: string[] = [];
  private stderrText = '';
  private waiters: Waiter[] = [];
  private readonly listeners: Array<(e: ToolEvent) => void> = [];
  private exitInfo: ToolExit | undefined;

  constructor(
    readonly child: ChildProcess,
    readonly label: string,
  ) {
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => this.onStdout(chunk));
    child.stderr?.on('data', (chunk: string) => {
      this.stderrText = (this.stderrText + chunk).slice(-STDERR_KEEP);
    });
    this.exit = new Promise<ToolExit>((resolve) => {
      let spawnError: Error | undefined;
      child.once('error', (e) => {
        spawnError = e;
        if (child.pid === undefined) finish(null, null);
      });
      const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (this.exitInfo !== undefined) return;
        if (this.stdoutParts.length > 0) this.onLine(this.stdoutParts.join(''));
        this.stdoutParts = [];
        this.exitInfo = { code, signal };
        const why = spawnError ? `could not start: ${spawnError.message}` : `exited (code ${code}, signal ${signal})`;
        for (const w of this.waiters) {
          clearTimeout(w.timer);
          w.reject(new ToolError(`${this.label} ${why} before the expected output${this.stderrSuffix()}`));
        }
        this.waiters = [];
        resolve(this.exitInfo);
      };
      // 'close' waits for stdio to drain, so every line has been seen.
      child.once('close', (code, signal) => finish(code, signal));
    });
  }

  get running(): boolean {
    return this.exitInfo === undefined && isRunning(this.child);
  }

  stderr(): string {
    return this.stderrText;
  }

  /** Called for every JSON event from now on. */
  onEvent(listener: (e: ToolEvent) => void): void {
    this.listeners.push(listener);
  }

  /** First event (already seen or future) matching `pred`; rejects if the tool exits first or on timeout. */
  /** Waits for the tool's `{"event":"listening"}` line; stops the tool if it never comes. */
  async waitUntilListening(timeoutMs = 15_000): Promise<void> {
    try {
      await this.waitForEvent((e) => e.event === 'listening', timeoutMs, 'the listening line');
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  waitForEvent(pred: (e: ToolEvent) => boolean, timeoutMs: number, what: string): Promise<ToolEvent> {
    const seen = this.events.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.exitInfo !== undefined) {
      return Promise.reject(new ToolError(`${this.label} exited (code ${this.exitInfo.code}) before ${what}${this.stderrSuffix()}`));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        pred,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          reject(new LabTimeoutError(`${this.label}: timed out after ${timeoutMs} ms waiting for ${what}${this.stderrSuffix()}`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /** Waits for the tool to exit by itself; kills it (SIGKILL) and throws after `timeoutMs`. */
  async waitForExit(timeoutMs: number): Promise<ToolExit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const r = await Promise.race([this.exit, timeout]);
    clearTimeout(timer);
    if (r === 'timeout') {
      this.child.kill('SIGKILL');
      await exited(this.child);
      throw new LabTimeoutError(`${this.label} did not finish within ${timeoutMs} ms (killed)${this.stderrSuffix()}`);
    }
    return r;
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves with how it ended. */
  async stop(graceMs = 2000): Promise<ToolExit> {
    await stopProcesses([this.child], graceMs);
    return this.exit;
  }

  stderrSuffix(): string {
    const s = this.stderrText.trim();
    return s ? `; stderr: ${s.slice(-2000)}` : '';
  }

  private onStdout(chunk: string): void {
    // Long lines (a capture's packets) arrive in many chunks: collect parts, join once per line.
    let start = 0;
    for (let nl = chunk.indexOf('\n'); nl !== -1; nl = chunk.indexOf('\n', start)) {
      this.stdoutParts.push(chunk.slice(start, nl));
      const line = this.stdoutParts.join('');
      this.stdoutParts = [];
      this.onLine(line);
      start = nl + 1;
    }
    if (start < chunk.length) this.stdoutParts.push(chunk.slice(start));
  }

  private onLine(line: string): void {
    const trimmed = line.trim();
    if (trimmed === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      this.textLines.push(trimmed);
      return;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      this.textLines.push(trimmed);
      return;
    }
    const event = parsed as ToolEvent;
    this.events.push(event);
    for (const l of this.listeners) l(event);
    const matched = this.waiters.filter((w) => w.pred(event));
    if (matched.length === 0) return;
    this.waiters = this.waiters.filter((w) => !matched.includes(w));
    for (const w of matched) {
      clearTimeout(w.timer);
      w.resolve(event);
    }
  }
}

/** Runs `node <script> ...args` inside `ns` through the lab (so destroy() kills it). */
export function launchTool(lab: NamespaceSpawner, ns: string, script: string, args: readonly string[], label: string): ToolProcess {
  const env = { ...process.env, [EXIT_WITH_PARENT_ENV]: '1' };
  const child = lab.spawn(ns, process.execPath, [script, ...args], { env });
  return new ToolProcess(child, label);
}
