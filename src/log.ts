// Structured logging (pino) on stderr, so stdout stays free for command output. JSON lines for log
// collectors (journald, files, pipes); on a terminal, one readable line per record instead. The
// terminal format is a few lines here rather than the pino-pretty package, whose dozen dependencies
// would be shipped to every gateway for a convenience.
import { writeSync } from "node:fs";
import pino, { type DestinationStream, type Logger } from "pino";
import { resolveLogLevel, type LogFormat, type LogLevel } from "./logSettings";

export type { Logger };

export { LOG_FORMATS, LOG_LEVELS, LOG_LEVEL_ENV, isLogLevel, parseLogLevel, resolveLogLevel } from "./logSettings";
export type { LogFormat, LogLevel } from "./logSettings";

export interface LoggerOptions {
  readonly name?: string;
  readonly level?: LogLevel;
  readonly format?: LogFormat;
}

const LEVEL_NAMES: Readonly<Record<number, string>> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const LEVEL_COLORS: Readonly<Record<number, string>> = { 10: "90", 20: "36", 30: "32", 40: "33", 50: "31", 60: "35" };
/** Fields every record has, shown in the line's head instead of as key=value. */
const HEAD_FIELDS = new Set(["level", "time", "pid", "hostname", "name", "msg"]);

function formatValue(value: unknown): string {
  if (typeof value === "string") return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/**
 * One pino JSON record as a terminal line: `12:03:04.567 INFO  control socket ready socket=/run/...`;
 * an error's stack follows on its own lines. A line that is not a record is returned as it is.
 */
export function formatLogRecord(line: string, color: boolean): string {
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return line.trimEnd();
    record = parsed as Record<string, unknown>;
  } catch {
    return line.trimEnd();
  }
  const level = typeof record["level"] === "number" ? record["level"] : 30;
  const time = typeof record["time"] === "number" ? new Date(record["time"]).toISOString().slice(11, 23) : "";
  const levelName = (LEVEL_NAMES[level] ?? String(level)).padEnd(5);
  const paint = (code: string | undefined, text: string) => (color && code ? `\x1b[${code}m${text}\x1b[0m` : text);
  const fields: string[] = [];
  let stack = "";
  for (const [key, value] of Object.entries(record)) {
    if (HEAD_FIELDS.has(key)) continue;
    if (key === "err" && typeof value === "object" && value !== null) {
      const err = value as { message?: unknown; stack?: unknown };
      if (typeof err.message === "string") fields.push(`err=${formatValue(err.message)}`);
      if (typeof err.stack === "string") stack = `\n    ${err.stack.split("\n").slice(1).map((l) => l.trim()).join("\n    ")}`;
      continue;
    }
    fields.push(`${key}=${formatValue(value)}`);
  }
  const message = typeof record["msg"] === "string" ? record["msg"] : "";
  return [paint("90", time), paint(LEVEL_COLORS[level], levelName), message, ...fields].filter((p) => p !== "").join(" ") + stack;
}

/** A synchronous pino destination writing terminal lines to `fd` (sync: the last words before an exit are kept). */
function prettyDestination(fd: number, color: boolean): DestinationStream {
  return {
    write(chunk: string): void {
      for (const line of chunk.split("\n")) if (line !== "") writeSync(fd, `${formatLogRecord(line, color)}\n`);
    },
  };
}

/** A logger on stderr. `format` auto (the default) is readable when stderr is a terminal, JSON lines otherwise. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? resolveLogLevel(undefined);
  const format = options.format ?? "auto";
  const pretty = format === "pretty" || (format === "auto" && process.stderr.isTTY === true);
  const destination = pretty ? prettyDestination(2, process.stderr.isTTY === true) : pino.destination({ dest: 2, sync: true });
  return pino({ name: options.name ?? "natlb", level }, destination);
}

/** A logger that writes nothing (library use, tests). */
export const silentLogger: Logger = pino({ level: "silent" });
