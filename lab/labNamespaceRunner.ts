// Runs commands and processes in a lab's own namespaces, and nowhere else: every lab topology
// (topology.ts, haPairTopology.ts, syncPairTopology.ts, ecmpTopology.ts) goes through one of these,
// so a typo'd or foreign namespace name is an error, not a command in someone else's namespace, and
// every process started is tracked for the lab's teardown.
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import type { LiveLab } from './labRegistry';
import { runIn, runInChecked, spawnIn, type RunOptions, type RunResult } from './netns';
import { LabError } from './labError';

export class LabNamespaceRunner {
  /**
   * `live`: the lab's namespaces (as created so far) and the processes to stop at its teardown;
   * `destroyed`: whether the lab is being or has been torn down (nothing runs then).
   */
  constructor(
    private readonly live: LiveLab,
    private readonly destroyed: () => boolean,
  ) {}

  /** Runs a command in one of the lab's namespaces; a non-zero exit is an error (CommandError). */
  async exec(ns: string, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    this.check(ns);
    return runInChecked(ns, cmd, args, opts);
  }

  /** Runs a command in one of the lab's namespaces and returns its result, whatever the exit code. */
  async tryExec(ns: string, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    this.check(ns);
    return runIn(ns, cmd, args, opts);
  }

  /** Starts a process in one of the lab's namespaces; the teardown stops it if it still runs. */
  spawn(ns: string, cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess {
    this.check(ns);
    const child = spawnIn(ns, cmd, args, opts);
    this.live.children.add(child);
    child.once('exit', () => this.live.children.delete(child));
    child.once('error', () => {
      if (child.pid === undefined || child.exitCode !== null) this.live.children.delete(child);
    });
    return child;
  }

  /** Throws LabError unless `ns` is one of the lab's namespaces and the lab is not destroyed. */
  check(ns: string): void {
    if (this.destroyed()) throw new LabError(`lab ${this.live.id} is destroyed`);
    if (!this.live.namespaces.includes(ns)) {
      throw new LabError(`"${ns}" is not a namespace of lab ${this.live.id} (use one of ${this.live.namespaces.join(', ')})`);
    }
  }
}

/**
 * A lab topology whose commands and processes stay in its own namespaces: exec, tryExec and spawn go
 * through one LabNamespaceRunner, and nothing runs once destroy() has begun (`destroying` is set).
 */
export abstract class NamespaceBoundLab {
  protected destroying: Promise<void> | undefined;
  protected readonly runner: LabNamespaceRunner;

  constructor(protected readonly live: LiveLab) {
    this.runner = new LabNamespaceRunner(live, () => this.destroying !== undefined);
  }

  get destroyed(): boolean {
    return this.destroying !== undefined;
  }

  exec(ns: string, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return this.runner.exec(ns, cmd, args, opts);
  }

  tryExec(ns: string, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return this.runner.tryExec(ns, cmd, args, opts);
  }

  spawn(ns: string, cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess {
    return this.runner.spawn(ns, cmd, args, opts);
  }
}
