// Test hooks of `natlb run`, for the crash-safety tests (test/e2e-crash-safety.test.ts): control routes
// that throw an exception nobody catches, reject a promise nobody handles, or block the event loop; and
// for the flow sync's (test/e2e-flow-sync.test.ts), the take-over's hand-over of established flows to
// the kernel fast path.
// They exist only when the environment has NATLB_TEST_HOOKS=1 when natlb starts (read once, here);
// in a normal run the routes are not there and the control socket answers 404 for them.
import { ApiError } from "./errors";
import type { ControlHandlers } from "./control";
import type { Logger } from "./log";
import type { Balancer } from "./balancer";

export const TEST_HOOKS_ENV = "NATLB_TEST_HOOKS";

const enabled = process.env[TEST_HOOKS_ENV] === "1";

/** The longest block the hook accepts: every wait in a test is bounded. */
const MAX_BLOCK_MS = 10_000;

export class TestHookError extends Error {
  override readonly name = "TestHookError";
}

/** The test hook routes, or none unless NATLB_TEST_HOOKS=1 was set at start. */
export function testHookRoutes(log: Logger, balancer: Pick<Balancer, "offloadEstablishedFlows">): ControlHandlers {
  if (!enabled) return {};
  log.warn({ env: TEST_HOOKS_ENV }, "test hooks enabled: the control socket can crash or block this natlb (tests only)");
  return {
    // After the answer: the error must escape every handler, as a bug's would.
    "POST /test/throw": (request) => {
      const kind = request.query.get("kind");
      if (kind === "exception") {
        setImmediate(() => {
          throw new TestHookError("test hook: an uncaught exception");
        });
      } else if (kind === "rejection") {
        setImmediate(() => void Promise.reject(new TestHookError("test hook: an unhandled rejection")));
      } else {
        throw new ApiError('query parameter kind must be "exception" or "rejection"');
      }
      return { ok: true, kind };
    },
    // Blocks the event loop (a busy wait) right after answering; logs when it starts and ends.
    "POST /test/block": (request) => {
      const ms = Number(request.query.get("ms"));
      if (!Number.isInteger(ms) || ms < 1 || ms > MAX_BLOCK_MS) {
        throw new ApiError(`query parameter ms must be an integer from 1 to ${MAX_BLOCK_MS}`);
      }
      setImmediate(() => {
        const from = Date.now();
        log.warn({ ms, from }, "test hook: blocking the event loop");
        while (Date.now() - from < ms) {
          // busy: nothing else on this thread runs
        }
        log.warn({ ms, from, to: Date.now() }, "test hook: event loop unblocked");
      });
      return { ok: true, ms };
    },
    // What an instance taking over calls (Balancer.offloadEstablishedFlows): every established flow,
    // synced ones included, to the kernel fast path now.
    "POST /test/offload-established": () => ({ offloaded: balancer.offloadEstablishedFlows() }),
  };
}
