// What the `natlb` commands share: the options of the commands that talk to the daemon, help examples,
// and how results and errors print: results on stdout (text, or JSON with --json), errors on stderr
// (a `natlb: ...` line, or {"error":{"code","message"}} with --json), with the exit status from
// exitCodes.ts.
import { CommanderError, type Command } from "commander";
import { DEFAULT_CONTROL_TIMEOUT_MS, requestControl, resolveSocketPath } from "./control/client";
import { toJson } from "./control/protocol";
import { ConfigError, NatlbError, type ConfigIssue } from "./errors";
import { EXIT_CODES, exitCodeFor, type ExitCode } from "./exitCodes";

/** What --json prints on stderr for a failure. `issues` only for configuration errors. */
export interface JsonErrorReport {
  readonly error: { readonly code: string; readonly message: string; readonly exitCode: ExitCode; readonly issues?: readonly ConfigIssue[] };
}

/** Commands whose `--json` means something else (bench: `--json <file>` names its report file). */
const JSON_IS_NOT_OUTPUT_MODE = new Set(["bench"]);

/**
 * True when the command line asks for JSON output. Read from the raw arguments, because errors can
 * happen before (or while) commander parses them: everything up to `--` counts.
 */
export function wantsJson(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  const options = end < 0 ? args : args.slice(0, end);
  const command = options.find((a) => !a.startsWith("-"));
  if (command !== undefined && JSON_IS_NOT_OUTPUT_MODE.has(command)) return false;
  return options.includes("--json");
}

/** Prints a command's result: JSON when asked, otherwise the text. */
export function printResult(json: boolean | undefined, value: unknown, text: () => string): void {
  process.stdout.write(`${json ? JSON.stringify(JSON.parse(toJson(value)), null, 2) : text()}\n`);
}

/** Commander's own errors carry `commander.*` codes; they are all about the command line. */
function isUsageError(error: unknown): error is CommanderError {
  return error instanceof CommanderError && error.code.startsWith("commander.");
}

export function errorReport(error: unknown): JsonErrorReport {
  if (isUsageError(error)) {
    return { error: { code: "E_USAGE", message: error.message.replace(/^error: /, ""), exitCode: EXIT_CODES.usage } };
  }
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof NatlbError ? error.code : "E_INTERNAL";
  return {
    error: {
      code,
      message,
      exitCode: exitCodeFor(error),
      ...(error instanceof ConfigError ? { issues: error.issues } : {}),
    },
  };
}

/**
 * Reports a failed command on stderr and returns its exit status. Commander has already printed its
 * own usage errors in text mode (with the help hint), so only JSON mode prints those again.
 */
export function reportFailure(error: unknown, json: boolean): ExitCode {
  if (isUsageError(error)) {
    // --help, --version, and `natlb help`: not failures. A bare `natlb` prints help with exit code 1 in
    // commander: that is a missing command, a usage error.
    if (error.exitCode === 0) return EXIT_CODES.ok;
    if (json) process.stderr.write(`${JSON.stringify(errorReport(error))}\n`);
    return EXIT_CODES.usage;
  }
  const report = errorReport(error);
  process.stderr.write(json ? `${JSON.stringify(report)}\n` : `natlb: ${report.error.message}\n`);
  return report.error.exitCode;
}

/** Options of every command that talks to the daemon. */
export interface ClientOptions {
  json?: boolean;
  socket?: string;
  config?: string;
}

/** Adds --json, --socket and --config (where to find the daemon) to a command that talks to the daemon. */
export function addClientOptions(command: Command): Command {
  return command
    .option("--json", "print the result as JSON (errors as JSON on stderr)")
    .option("-s, --socket <path>", "the daemon's control socket (wins over --config)")
    .option(
      "-c, --config <file>",
      "the config file the daemon runs with: its `socket` field names the socket (default without both: /run/natlb/natlb-<netns inode>.sock)",
    );
}

/** Sends one request to the daemon the options name and returns its JSON answer. */
export async function askDaemon(options: ClientOptions, route: string, body?: unknown): Promise<unknown> {
  const socket = await resolveSocketPath({ socket: options.socket, config: options.config });
  return requestControl(socket, route, DEFAULT_CONTROL_TIMEOUT_MS, body === undefined ? {} : { body });
}

/** Appends an "Example:" block to a command's --help. */
export function withExamples(command: Command, ...examples: readonly string[]): Command {
  const heading = examples.length === 1 ? "Example:" : "Examples:";
  return command.addHelpText("after", `\n${heading}\n${examples.map((e) => `  $ ${e}`).join("\n")}`);
}
