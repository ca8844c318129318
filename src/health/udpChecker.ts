// keepalived's UDP_CHECK: send a datagram to the real. Nothing listening shows as an ICMP port
// unreachable, which a connected UDP socket reports as ECONNREFUSED. Without `expect` the real is up
// when no such error comes within the timeout (many UDP services do not answer arbitrary data);
// with `expect`, a reply that matches it is required.

import { createSocket } from "node:dgram";
import type { UdpHealthCheckConfig } from "../config";
import { boundedCheck } from "./boundedCheck";
import { socketErrorOutcome, type CheckResult, type HealthChecker, type HealthTarget } from "./checker";

export type UdpCheckSettings = Pick<UdpHealthCheckConfig, "payloadHex" | "expect">;

export class UdpHealthChecker implements HealthChecker {
  private readonly payload: Buffer;
  private readonly expect: RegExp | undefined;

  constructor(settings: UdpCheckSettings, private readonly localAddress?: string) {
    this.payload = Buffer.from(settings.payloadHex, "hex");
    this.expect = settings.expect === undefined ? undefined : new RegExp(settings.expect);
  }

  check(target: HealthTarget, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult> {
    const where = `${target.ip}:${target.port}`;
    const expect = this.expect;
    return boundedCheck(
      timeoutMs,
      signal,
      (finish) => {
        const socket = createSocket("udp4");
        socket.on("error", (error: NodeJS.ErrnoException) => {
          const { outcome, reason } = socketErrorOutcome(error, "port unreachable");
          finish(outcome, `udp ${reason} from ${where}`);
        });
        socket.on("message", (reply) => {
          if (expect === undefined) finish("passed", `udp reply from ${where}`);
          else if (expect.test(reply.toString("latin1"))) finish("passed", `udp reply from ${where} matches`);
          else finish("failed", `udp reply from ${where} does not match ${expect.source}`);
        });
        const send = () =>
          socket.connect(target.port, target.ip, () => {
            socket.send(this.payload, (error) => {
              if (error) socket.emit("error", error);
            });
          });
        if (this.localAddress === undefined) send();
        else socket.bind({ address: this.localAddress }, send);
        return () => {
          socket.removeAllListeners();
          socket.on("error", () => {});
          socket.close();
        };
      },
      () =>
        expect === undefined
          ? { outcome: "passed", reason: `udp: no ICMP error from ${where} within ${timeoutMs} ms` }
          : { outcome: "timeout", reason: `udp: no reply from ${where} within ${timeoutMs} ms` },
    );
  }
}
