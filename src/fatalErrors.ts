// What `natlb run` does with an error nobody caught (an uncaughtException or unhandledRejection): a
// bug, after which the control plane's state cannot be trusted. It logs the error, stops forwarding
// and removes the kernel set-up (the same stop as SIGTERM's, so the gateway is left as natlb found it),
// then exits with status 1. Staying up would leave a data plane nobody steers; exiting without the stop
// would leave the VIPs blackholed and the ownership table in place until the next start.
import type { Logger } from "./log";
import { EXIT_CODES } from "./exitCodes";

/** How long the stop after a fatal error may take before natlb exits anyway (and says what is left). */
const STOP_DEADLINE_MS = 10_000;

export interface FatalErrorHandling {
  /** Removes the handlers (after a normal stop). */
  dispose(): void;
}

/**
 * Installs the handlers. `stop` is the daemon's stop (or, during start-up, a request to stop as soon
 * as it is up); it is called once, whatever the number of errors.
 */
export function handleFatalErrors(log: Logger, stop: () => Promise<void>): FatalErrorHandling {
  let stopping = false;
  const onFatal = (error: unknown, origin: "uncaughtException" | "unhandledRejection") => {
    if (stopping) {
      log.error({ err: error, origin }, "another uncaught error while stopping after the first one");
      return;
    }
    stopping = true;
    log.fatal({ err: error, origin }, `${origin}: stopping forwarding and removing the kernel set-up, then exiting (a bug: please report it with this log)`);
    const deadline = setTimeout(() => {
      log.error(
        `the stop took over ${STOP_DEADLINE_MS} ms: exiting without it; run \`natlb kernel-undo\` in this namespace (or start natlb again, which removes the leftovers)`,
      );
      process.exit(EXIT_CODES.error);
    }, STOP_DEADLINE_MS);
    stop()
      .catch((stopError: unknown) => log.error({ err: stopError }, "stopping after the uncaught error failed: run `natlb kernel-undo`"))
      .finally(() => {
        clearTimeout(deadline);
        log.info({ exitCode: EXIT_CODES.error }, "stopped after an uncaught error");
        process.exit(EXIT_CODES.error);
      });
  };
  const onException = (error: Error) => onFatal(error, "uncaughtException");
  const onRejection = (reason: unknown) => onFatal(reason, "unhandledRejection");
  process.on("uncaughtException", onException);
  process.on("unhandledRejection", onRejection);
  return {
    dispose: () => {
      process.off("uncaughtException", onException);
      process.off("unhandledRejection", onRejection);
    },
  };
}
