// keepalived's HTTP_GET and SSL_GET: GET a path from the real, up when the status is in the
// expected ranges and (when asked) the start of the body matches. One connection per check, closed
// after it (no keep-alive: a check must see a real that still accepts new connections).

import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { statusRanges, type HttpHealthCheckConfig } from "../config";
import { boundedCheck } from "./boundedCheck";
import { socketErrorOutcome, type CheckResult, type HealthChecker, type HealthTarget } from "./checker";

/** How much of the body a bodyMatch is tried against. */
export const HTTP_BODY_LIMIT_BYTES = 64 * 1024;

export type HttpCheckSettings = Pick<HttpHealthCheckConfig, "type" | "path" | "host" | "expectStatus" | "bodyMatch" | "verifyTls">;

export class HttpHealthChecker implements HealthChecker {
  private readonly ranges: Array<[number, number]>;
  private readonly bodyMatch: RegExp | undefined;

  constructor(
    private readonly settings: HttpCheckSettings,
    private readonly localAddress?: string,
  ) {
    const ranges = statusRanges(settings.expectStatus);
    if (ranges === undefined) throw new RangeError(`expectStatus ${JSON.stringify(settings.expectStatus)} is not a list of status codes like "200-399"`);
    this.ranges = ranges;
    this.bodyMatch = settings.bodyMatch === undefined ? undefined : new RegExp(settings.bodyMatch);
  }

  check(target: HealthTarget, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult> {
    const { type, path, host, verifyTls } = this.settings;
    const where = `${target.ip}:${target.port}${path}`;
    return boundedCheck(timeoutMs, signal, (finish) => {
      const request = (type === "https" ? httpsRequest : httpRequest)({
        host: target.ip,
        port: target.port,
        path,
        method: "GET",
        family: 4,
        agent: false,
        headers: { host: host ?? target.ip, "user-agent": "natlb-health-check", connection: "close", accept: "*/*" },
        ...(this.localAddress === undefined ? {} : { localAddress: this.localAddress }),
        ...(type === "https" ? { rejectUnauthorized: verifyTls, servername: host?.replace(/:\d+$/, "") } : {}),
      });
      request.on("error", (error: NodeJS.ErrnoException) => {
        const { outcome, reason } = socketErrorOutcome(error);
        finish(outcome, `${type} ${reason} from ${where}`);
      });
      request.on("response", (response: IncomingMessage) => {
        const status = response.statusCode ?? 0;
        const expected = this.ranges.some(([low, high]) => status >= low && status <= high);
        if (!expected) {
          finish("failed", `${type} ${status} from ${where}`);
          return;
        }
        if (this.bodyMatch === undefined) {
          finish("passed", `${type} ${status} from ${where}`);
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        const judge = () => {
          const body = Buffer.concat(chunks).subarray(0, HTTP_BODY_LIMIT_BYTES).toString("utf8");
          if (this.bodyMatch!.test(body)) finish("passed", `${type} ${status} from ${where}, body matches`);
          else finish("failed", `${type} ${status} from ${where}, body does not match ${this.bodyMatch!.source}`);
        };
        response.on("data", (chunk: Buffer) => {
          chunks.push(chunk);
          size += chunk.length;
          if (size >= HTTP_BODY_LIMIT_BYTES) judge();
        });
        response.on("end", judge);
        response.on("error", (error) => finish("error", `${type} body from ${where}: ${error.message}`));
      });
      request.end();
      return () => {
        request.removeAllListeners("response");
        request.on("error", () => {}); // a late error after destroy must not become uncaught
        request.destroy();
      };
    });
  }
}
