// Who changed the running daemon, and what: one log record per change through the control socket
// or a SIGHUP reload, applied or refused. The peer comes from the socket's credentials
// (peerCredentials.ts); a signal's sender is not knowable here: node hands its handlers no siginfo,
// so a SIGHUP record says so instead of guessing.
import { realKey, serviceKey, type ConfigDiff, type Protocol } from "../config";
import type { Logger } from "../log";
import type { PeerCredentials } from "../native";

/** Where a change came from. */
export type ChangeOrigin = { readonly via: "control socket"; readonly peer: PeerCredentials } | { readonly via: "SIGHUP" };

export const SIGHUP_ORIGIN: ChangeOrigin = Object.freeze({ via: "SIGHUP" });

/** A short, log-friendly description of a change: which service, real, weight; or a reload's diff. */
export type ChangeSummary = Readonly<Record<string, unknown>>;

function by(origin: ChangeOrigin): Record<string, unknown> {
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

/** What a reload changed, by service and real: keys only, so the record stays short. */
export function summarizeDiff(diff: ConfigDiff): ChangeSummary {
  return {
    servicesAdded: diff.added.map(serviceKey),
    servicesRemoved: diff.removed.map(serviceKey),
    servicesChanged: diff.changed.map((c) => ({
      service: c.key,
      ...(c.fields.length > 0 ? { fields: c.fields } : {}),
      ...(c.reals.added.length > 0 ? { realsAdded: c.reals.added.map(realKey) } : {}),
      ...(c.reals.removed.length > 0 ? { realsRemoved: c.reals.removed.map(realKey) } : {}),
      ...(c.reals.updated.length > 0 ? { weights: c.reals.updated.map((u) => `${u.key} ${u.old.weight}->${u.next.weight}`) } : {}),
      ...(c.reals.reordered ? { realsReordered: true } : {}),
    })),
    servicesUnchanged: diff.unchanged.length,
    settingsChanged: diff.settings,
  };
}
