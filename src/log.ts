// Structured logging (pino): JSON lines on stderr, so stdout stays free for command output.
import pino, { type Logger } from "pino";

export type { Logger };

export function createLogger(name = "natlb", level = process.env.NATLB_LOG_LEVEL ?? "info"): Logger {
  return pino({ name, level }, pino.destination({ dest: 2, sync: true }));
}

/** A logger that writes nothing (library use, tests). */
export const silentLogger: Logger = pino({ level: "silent" });
