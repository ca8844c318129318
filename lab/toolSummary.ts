// A lab tool that runs to its end and prints one {"event":"summary",...} line: the result of a run.
import { ToolError, launchTool, type NamespaceSpawner } from './toolProcess';

/**
 * Runs `node <script> ...args` in `ns`, waits for it to exit (killed after `boundMs` plus 15 s for
 * its start-up and summary) and returns its summary without the "event" key.
 */
export async function runToSummary<T>(lab: NamespaceSpawner, ns: string, script: string, args: readonly string[], label: string, boundMs: number): Promise<T> {
  const tool = launchTool(lab, ns, script, args, label);
  const exit = await tool.waitForExit(boundMs + 15_000);
  const summary = tool.events.find((e) => e.event === 'summary');
  if (summary === undefined) {
    throw new ToolError(`${label} printed no summary (exit code ${exit.code}, signal ${exit.signal})${tool.stderrSuffix()}`);
  }
  const { event: _event, ...rest } = summary;
  return rest as unknown as T;
}
