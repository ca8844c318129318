// The `natlb` command's exit statuses: defined once here, printed by `natlb --help` and listed in the
// README, so scripts can tell "no daemon" from "bad config" from "the daemon refused" without parsing
// messages.
import { ApiError, NatlbError, type ControlErrorCode } from "./errors";

/** Exit status by meaning. */
export const EXIT_CODES = Object.freeze({
  ok: 0,
  error: 1,
  usage: 2,
  config: 3,
  noDaemon: 4,
  refused: 5,
  permission: 6,
  busy: 7,
} as const);

export type ExitCodeName = keyof typeof EXIT_CODES;
export type ExitCode = (typeof EXIT_CODES)[ExitCodeName];

/** One line per status, in order, for `natlb --help` and the README. */
export const EXIT_CODE_MEANINGS: Readonly<Record<ExitCodeName, string>> = Object.freeze({
  ok: "success",
  error: "any other failure (data plane, kernel set-up, a daemon that hangs or answers garbage)",
  usage: "bad command line: unknown command or option, missing or invalid argument",
  config: "invalid or unreadable configuration file",
  noDaemon: "no natlb daemon answers on the control socket (start one with `natlb run`)",
  refused: "the daemon refused the request (unknown service or real, invalid value, conflict)",
  permission: "a privilege, file permission or control role is missing (run as root, or join the group of control.readGroup or control.adminGroup)",
  busy: "a natlb daemon already runs in this network namespace or on this socket",
});

/** Every code a NatlbError that natlb throws itself can carry (ApiError codes from the daemon are open-ended). */
export type NatlbErrorCode =
  | ControlErrorCode
  | "E_CONFIG"
  | "E_API"
  | "E_PRIVILEGE"
  | "E_KERNEL_SETUP"
  | "E_DATAPLANE"
  | "E_ALREADY_RUNNING"
  | "E_RUNNING"
  | "E_CHECKOUT_ONLY"
  | "E_BENCH"
  | "E_INTERNAL"
  | "E_USAGE";

/** The one mapping from error codes to exit statuses; a new code does not compile until it is placed here. */
const EXIT_BY_ERROR_CODE: Readonly<Record<NatlbErrorCode, ExitCodeName>> = Object.freeze({
  E_USAGE: "usage",
  E_CONTROL_PATH: "usage",
  E_CONFIG: "config",
  E_CONTROL_NO_DAEMON: "noDaemon",
  E_API: "refused",
  E_PRIVILEGE: "permission",
  E_CONTROL_ACCESS: "permission",
  E_CONTROL_FORBIDDEN: "permission",
  E_ALREADY_RUNNING: "busy",
  E_RUNNING: "busy",
  E_CONTROL_IN_USE: "busy",
  E_CONTROL_NOT_SOCKET: "error",
  E_CONTROL_TIMEOUT: "error",
  E_CONTROL_PROTOCOL: "error",
  E_KERNEL_SETUP: "error",
  E_DATAPLANE: "error",
  E_CHECKOUT_ONLY: "error",
  E_BENCH: "error",
  E_INTERNAL: "error",
});

function isKnownCode(code: string): code is NatlbErrorCode {
  return Object.prototype.hasOwnProperty.call(EXIT_BY_ERROR_CODE, code);
}

/** The exit status for an error thrown by a command. */
export function exitCodeFor(error: unknown): ExitCode {
  if (error instanceof NatlbError && isKnownCode(error.code)) return EXIT_CODES[EXIT_BY_ERROR_CODE[error.code]];
  // The daemon's own refusals (E_UNKNOWN_SCHEDULER, E_NOT_FOUND, ...) arrive as ApiError with its code;
  // a 5xx is the daemon failing, not refusing.
  if (error instanceof ApiError) return error.status >= 500 ? EXIT_CODES.error : EXIT_CODES.refused;
  return EXIT_CODES.error;
}

/** The exit-status table as `natlb --help` prints it. */
export function exitCodeHelp(): string {
  const rows = (Object.keys(EXIT_CODES) as ExitCodeName[]).map((name) => `  ${String(EXIT_CODES[name]).padStart(2)}  ${EXIT_CODE_MEANINGS[name]}`);
  return ["Exit status:", ...rows].join("\n");
}
