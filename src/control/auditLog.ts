// Who changed the running daemon, and what: one log record per change through the control socket
// or a SIGHUP reload, applied or refused. The peer comes from the socket's credentials
// (peerCredentials.ts); a signal's sender is not knowable here: node hands its handlers no siginfo,
// so a SIGHUP record says so instead of guessing.
import { serviceKey, type Protocol } from "../config";
import type { ChangeOrigin, ChangeSummary } from "../events";
import type { Logger } from "../log";
import type { PeerCredentials } from "../native";

function by(origin: ChangeOrigin): Record<string, unknown> {
  if (origin.via === "api") return { via: "api" };
  if (origin.via === "control socket") {
    const { uid, gid, pid } = origin.peer;
    return { via: origin.via, uid, gid, pid };
  }
  // node's signal handlers get no siginfo: the sender's pid and uid are not knowable in the daemon.
  // Whoever can signal natlb is root or its own user (systemctl reload, kill -HUP).
  return { via: "SIGHUP", sender: "unknown (a signal does not say who sent it; root or natlb's user)" };
}

export class AuditLog {
  constructor(private readonly log: Logger) {}

  /** A change that took effect. */
  applied(origin: ChangeOrigin, route: string, change: ChangeSummary): void {
    this.log.info({ audit: "change", by: by(origin), route, change, result: "applied" }, `${route} applied`);
  }

  /** A change the daemon refused (bad value, unknown service, a reload of a bad file); nothing changed. */
  refused(origin: ChangeOrigin, route: string, change: ChangeSummary, error: unknown): void {
    // A socket client gets the error in its answer; for a signal this record is the only report.
    const level = origin.via === "SIGHUP" ? "error" : "warn";
    this.log[level](
      { audit: "change", by: by(origin), route, change, result: "refused", err: error },
      `${route} refused; the running configuration is unchanged`,
    );
  }

  /** A request its peer's role does not allow (403). */
  denied(peer: PeerCredentials, route: string, needed: string): void {
    this.log.warn({ audit: "denied", by: by({ via: "control socket", peer }), route, needed }, `${route} denied: it needs the ${needed} role`);
  }
}

/** `198.18.0.100:80/tcp` from a service reference whose protocol may be left out. */
export function serviceName(service: { readonly vip: string; readonly port: number; readonly protocol?: Protocol | undefined }): string {
  return serviceKey({ vip: service.vip, port: service.port, protocol: service.protocol ?? "tcp" });
}
