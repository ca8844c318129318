// Typed errors. Every message says what went wrong and what to do about it; `code` is stable for
// programs (CLI exit paths, API error bodies) while the message is for people.

export interface NatlbErrorOptions {
  readonly cause?: unknown;
}

/** Base class of every error natlb throws on purpose. */
export class NatlbError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options: NatlbErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    // Subclasses set their own name through new.target so stack traces show the right class.
    this.name = new.target.name;
  }
}

/** One problem in a configuration, located by its field path (`services[0].reals[1].weight`). */
export interface ConfigIssue {
  /** Dotted/bracketed field path; "" for the document itself. */
  readonly path: string;
  /** What is wrong and what to do, without the path. */
  readonly problem: string;
}

export interface ConfigErrorOptions extends NatlbErrorOptions {
  /** The file the configuration came from, when there is one. */
  readonly file?: string;
  /** All problems found; the first one is the one named by `path`. Defaults to just that one. */
  readonly issues?: readonly ConfigIssue[];
}

function formatIssue(issue: ConfigIssue): string {
  return issue.path === "" ? `config: ${issue.problem}` : `config: ${issue.path}: ${issue.problem}`;
}

/**
 * An invalid configuration. The message reads
 * `config: services[0].reals[1].weight: expected an integer 0..65535, got "abc"`, one line per
 * problem, followed by `(in <file>)` when it came from a file.
 */
export class ConfigError extends NatlbError {
  /** Path of the first problem, e.g. `services[0].reals[1].weight` ("" for the whole document). */
  readonly path: string;
  readonly file: string | undefined;
  readonly issues: readonly ConfigIssue[];

  constructor(path: string, problem: string, options: ConfigErrorOptions = {}) {
    const issues = options.issues && options.issues.length > 0 ? options.issues : [{ path, problem }];
    const lines = issues.map(formatIssue);
    const where = options.file === undefined ? "" : ` (in ${options.file})`;
    super("E_CONFIG", lines.join("\n") + where, options);
    this.path = issues[0]!.path;
    this.file = options.file;
    this.issues = issues;
  }
}

export interface ApiErrorOptions extends NatlbErrorOptions {
  /** HTTP status the control server answers with (400 bad request, 404 unknown thing, 409 conflict). */
  readonly status?: number;
  /** Machine-readable code, e.g. `E_UNKNOWN_SERVICE`; defaults to `E_API`. */
  readonly code?: string;
}

/** A bad call to the API (unknown service, invalid argument), locally or over the control socket. */
export class ApiError extends NatlbError {
  readonly status: number;

  constructor(message: string, options: ApiErrorOptions = {}) {
    super(options.code ?? "E_API", message, options);
    this.status = options.status ?? 400;
  }
}

export interface PrivilegeErrorOptions extends NatlbErrorOptions {
  /** The Linux capability that is missing, e.g. `CAP_NET_RAW`. */
  readonly capability?: string;
}

/** natlb lacks a privilege it needs (CAP_NET_RAW for the packet path, CAP_NET_ADMIN for set-up). */
export class PrivilegeError extends NatlbError {
  readonly capability: string | undefined;

  constructor(message: string, options: PrivilegeErrorOptions = {}) {
    super("E_PRIVILEGE", message, options);
    this.capability = options.capability;
  }
}

export interface KernelSetupErrorOptions extends NatlbErrorOptions {
  /** The command or operation that failed, e.g. `ip route add blackhole 198.18.0.100/32`. */
  readonly command?: string;
}

/** Installing or removing the kernel settings natlb needs (routes, rules, sysctls) failed. */
export class KernelSetupError extends NatlbError {
  readonly command: string | undefined;

  constructor(message: string, options: KernelSetupErrorOptions = {}) {
    super("E_KERNEL_SETUP", message, options);
    this.command = options.command;
  }
}

/** Announcing the VIPs through BIRD failed (config bgp): its control socket, or the routes file. */
export class BgpError extends NatlbError {
  constructor(message: string, options: NatlbErrorOptions = {}) {
    super("E_BGP", message, options);
  }
}

/** Why talking to (or starting) the control socket failed. */
export type ControlErrorCode =
  | "E_CONTROL_IN_USE" // a live daemon already answers on the socket
  | "E_CONTROL_NOT_SOCKET" // the path exists and is not a socket: natlb will not delete it
  | "E_CONTROL_NO_DAEMON" // nothing at the path, or a stale socket nobody listens on
  | "E_CONTROL_ACCESS" // permission denied on the socket or its directory
  | "E_CONTROL_FORBIDDEN" // the daemon refused the request: the peer lacks the role it needs (HTTP 403)
  | "E_CONTROL_TIMEOUT" // the daemon did not answer in time
  | "E_CONTROL_PROTOCOL" // the answer was not what a natlb daemon sends
  | "E_CONTROL_PATH"; // the path is unusable (too long, not absolute)

/** The control socket between the `natlb` CLI and the daemon could not be used. */
export class ControlError extends NatlbError {
  declare readonly code: ControlErrorCode;
  /** The socket path involved. */
  readonly socketPath: string;

  constructor(code: ControlErrorCode, socketPath: string, message: string, options: NatlbErrorOptions = {}) {
    super(code, message, options);
    this.socketPath = socketPath;
  }
}
