// keepalived's MISC_CHECK: run a program (no shell, no PATH search), up when it exits with 0. It gets
// the real's address and port in its environment, and is killed (its whole process group) when it
// outlives the timeout, so a hung script can never pile up.

import { spawn } from "node:child_process";
import type { ExecHealthCheckConfig } from "../config";
import { boundedCheck } from "./boundedCheck";
import type { CheckResult, HealthChecker, HealthTarget } from "./checker";

/** How much of the program's stderr is kept for the reason. */
const STDERR_LIMIT_BYTES = 4096;

export class ExecHealthChecker implements HealthChecker {
  constructor(
    private readonly settings: Pick<ExecHealthCheckConfig, "command">,
    /** `vip:port/protocol` of the service, for the program's environment. */
    private readonly serviceKey: string,
  ) {}

  check(target: HealthTarget, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult> {
    const [program, ...args] = this.settings.command;
    const name = program!;
    return boundedCheck(
      timeoutMs,
      signal,
      (finish) => {
        const child = spawn(name, args, {
          stdio: ["ignore", "ignore", "pipe"],
          detached: true, // its own process group, so the kill below reaches its children too
          env: {
            PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            NATLB_REAL_IP: target.ip,
            NATLB_REAL_PORT: String(target.port),
            NATLB_SERVICE: this.serviceKey,
          },
        });
        let stderr = "";
        child.stderr.setEncoding("utf8");
        child.stderr.on("data", (text: string) => {
          if (stderr.length < STDERR_LIMIT_BYTES) stderr += text.slice(0, STDERR_LIMIT_BYTES - stderr.length);
        });
        child.on("error", (error) => finish("error", `exec ${name}: ${error.message}`));
        child.on("close", (code, killedBy) => {
          const said = stderr.trim().split("\n")[0] ?? "";
          const detail = said === "" ? "" : `: ${said}`;
          if (code === 0) finish("passed", `exec ${name} exited 0 for ${target.ip}:${target.port}`);
          else if (code !== null) finish("failed", `exec ${name} exited ${code} for ${target.ip}:${target.port}${detail}`);
          else finish("error", `exec ${name} killed by ${killedBy ?? "a signal"}${detail}`);
        });
        return () => {
          child.removeAllListeners();
          child.stderr.removeAllListeners();
          child.stderr.destroy();
          if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
            try {
              process.kill(-child.pid, "SIGKILL");
            } catch {
              // already gone
            }
          }
        };
      },
      () => ({ outcome: "timeout", reason: `exec ${name} did not finish within ${timeoutMs} ms (killed)` }),
    );
  }
}
