// Stopping child processes within a bounded time: SIGTERM, a grace period, then SIGKILL.
import type { ChildProcess } from 'node:child_process';
import { sleep } from './wait';

export function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Resolves when `child` has exited (immediately if it already has, or never started). */
export function exited(child: ChildProcess): Promise<void> {
  if (!isRunning(child)) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => {
      if (!isRunning(child)) resolve();
    });
  });
}

/** SIGTERM to every running child, SIGKILL after `graceMs` to those still running. */
export async function stopProcesses(children: Iterable<ChildProcess>, graceMs = 2000): Promise<void> {
  const running = [...children].filter(isRunning);
  if (running.length === 0) return;
  for (const c of running) c.kill('SIGTERM');
  await Promise.race([Promise.all(running.map(exited)), sleep(graceMs)]);
  const stubborn = running.filter(isRunning);
  for (const c of stubborn) c.kill('SIGKILL');
  await Promise.race([Promise.all(stubborn.map(exited)), sleep(2000)]);
}
