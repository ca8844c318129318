// Log levels and formats as the command line and the environment give them. Apart from log.ts so
// that the CLI can define and check its options without loading pino.
import { NatlbError } from "./errors";

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `auto`: readable on a terminal, JSON otherwise. */
export const LOG_FORMATS = ["auto", "pretty", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Environment variable read when no level is given on the command line. */
export const LOG_LEVEL_ENV = "NATLB_LOG_LEVEL";

export function isLogLevel(text: string): text is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(text);
}

/** Throws a usage error naming the allowed levels and where the bad one came from. */
export function parseLogLevel(text: string, source = "--log-level"): LogLevel {
  const level = text.trim().toLowerCase();
  if (!isLogLevel(level)) {
    throw new NatlbError("E_USAGE", `${source} ${JSON.stringify(text)} is not a log level: use one of ${LOG_LEVELS.join(", ")}`);
  }
  return level;
}

/** The level from the command line, else $NATLB_LOG_LEVEL, else info. */
export function resolveLogLevel(fromCommandLine: string | undefined, env: NodeJS.ProcessEnv = process.env): LogLevel {
  if (fromCommandLine !== undefined) return parseLogLevel(fromCommandLine);
  const fromEnv = env[LOG_LEVEL_ENV];
  return fromEnv === undefined || fromEnv === "" ? "info" : parseLogLevel(fromEnv, `$${LOG_LEVEL_ENV}`);
}
