// Active health checks: what a checker promises, and the TCP check. A TCP check opens a connection
// to the real server and closes it as soon as the handshake completes: no data is sent, so any TCP
// service can be checked. The other checkers (http, udp, exec) live next to this file.

import { connect, type Socket } from "node:net";
import { performance } from "node:perf_hooks";

/** Where to probe. */
export interface HealthTarget {
  readonly ip: string;
  readonly port: number;
}

/**
 * connected: handshake completed (tcp). passed: the real answered as expected (http, udp, exec).
 * failed: it answered, but not as expected (a 503, a body or reply that does not match, exit
 * status 1). refused: the host answered with RST or ICMP port unreachable (nothing listens), a
 * definite failure. timeout: no answer in time. unreachable: ICMP/route error. aborted: the check
 * was cancelled (monitor stopping). error: anything else.
 */
export type CheckOutcome = "connected" | "passed" | "failed" | "refused" | "timeout" | "unreachable" | "aborted" | "error";

/** The outcomes that mean the real is healthy. */
export function isUpOutcome(outcome: CheckOutcome): boolean {
  return outcome === "connected" || outcome === "passed";
}

export interface CheckResult {
  readonly up: boolean;
  readonly outcome: CheckOutcome;
  /** For people and logs, e.g. "connection refused (ECONNREFUSED)". */
  readonly reason: string;
  readonly elapsedMs: number;
}

export interface HealthChecker {
  /** Resolves (never rejects) within about `timeoutMs`, or soon after `signal` aborts. */
  check(target: HealthTarget, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult>;
}

export interface TcpHealthCheckerOptions {
  /** Source address for checks, when the default route's address is not the right one. */
  readonly localAddress?: string;
}

const UNREACHABLE = new Set(["EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN", "ENETDOWN", "EADDRNOTAVAIL"]);

/** How a socket error counts, and its words for people: shared by the checkers that open sockets. */
export function socketErrorOutcome(error: NodeJS.ErrnoException, refusedWords = "connection refused"): { outcome: CheckOutcome; reason: string } {
  const code = error.code ?? "error";
  if (code === "ECONNREFUSED") return { outcome: "refused", reason: `${refusedWords} (ECONNREFUSED)` };
  if (UNREACHABLE.has(code)) return { outcome: "unreachable", reason: `unreachable (${code})` };
  if (code === "ETIMEDOUT") return { outcome: "timeout", reason: "connection timed out (ETIMEDOUT)" };
  return { outcome: "error", reason: error.message };
}

export class TcpHealthChecker implements HealthChecker {
  private readonly localAddress: string | undefined;

  constructor(options: TcpHealthCheckerOptions = {}) {
    this.localAddress = options.localAddress;
  }

  check(target: HealthTarget, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult> {
    const started = performance.now();
    const elapsed = () => Math.round((performance.now() - started) * 1000) / 1000;
    return new Promise<CheckResult>((resolve) => {
      if (signal?.aborted) {
        resolve({ up: false, outcome: "aborted", reason: "check cancelled", elapsedMs: 0 });
        return;
      }
      let socket: Socket | undefined;
      let timer: NodeJS.Timeout | undefined;
      let done = false;
      const finish = (outcome: CheckOutcome, reason: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        socket?.removeAllListeners();
        socket?.on("error", () => {}); // a late error after destroy must not become uncaught
        socket?.destroy();
        socket = undefined;
        resolve({ up: outcome === "connected", outcome, reason, elapsedMs: elapsed() });
      };
      const onAbort = () => finish("aborted", "check cancelled");

      timer = setTimeout(() => finish("timeout", `no answer within ${timeoutMs} ms`), timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        socket = connect({
          host: target.ip,
          port: target.port,
          family: 4,
          ...(this.localAddress === undefined ? {} : { localAddress: this.localAddress }),
        });
      } catch (error) {
        // Synchronous throws are argument errors (bad port): report, do not crash the monitor.
        finish("error", error instanceof Error ? error.message : String(error));
        return;
      }
      socket.once("connect", () => finish("connected", `connected in ${Math.round(elapsed())} ms`));
      socket.once("error", (error: NodeJS.ErrnoException) => {
        const { outcome, reason } = socketErrorOutcome(error);
        finish(outcome, reason);
      });
    });
  }
}
