// keepalived's notify arguments (keepalived.conf(5), "notify"): keepalived runs the configured command
// with TYPE NAME STATE PRIORITY appended, e.g. `INSTANCE VI_1 MASTER 100`. `natlb ha notify` turns
// them into the role this gateway takes.
import type { GatewayRole } from "../native";
import { NatlbError } from "../errors";

/**
 * keepalived's states and the role each gives: MASTER claims the VIPs; BACKUP stays silent; FAULT
 * (a tracked interface or script failed), STOP (keepalived stopping) and DELETED (the instance left
 * keepalived's configuration at a reload) mean keepalived no longer stands behind this gateway, so it
 * must not claim the VIPs either.
 */
const ROLE_OF_STATE: Readonly<Record<string, GatewayRole>> = Object.freeze({
  MASTER: "master",
  BACKUP: "backup",
  FAULT: "fault",
  STOP: "fault",
  DELETED: "fault",
});

export const NOTIFY_TYPES = ["INSTANCE", "GROUP"] as const;

export interface KeepalivedNotice {
  readonly type: (typeof NOTIFY_TYPES)[number];
  readonly name: string;
  readonly state: string;
  readonly priority: number | undefined;
  readonly role: GatewayRole;
}

/** TYPE NAME STATE [PRIORITY] as keepalived passes them; a clear error for anything else. */
export function parseKeepalivedNotify(args: readonly string[]): KeepalivedNotice {
  const usage = "expected keepalived's notify arguments TYPE NAME STATE [PRIORITY], like `INSTANCE VI_1 MASTER 100`";
  if (args.length < 3 || args.length > 4) throw new NatlbError("E_USAGE", `${args.length} argument(s): ${usage}`);
  const [type, name, state, priorityText] = args as [string, string, string, string | undefined];
  if (!(NOTIFY_TYPES as readonly string[]).includes(type)) throw new NatlbError("E_USAGE", `TYPE ${JSON.stringify(type)} is not INSTANCE or GROUP: ${usage}`);
  const role = ROLE_OF_STATE[state];
  if (role === undefined) {
    throw new NatlbError("E_USAGE", `STATE ${JSON.stringify(state)} is not one of ${Object.keys(ROLE_OF_STATE).join(", ")}: ${usage}`);
  }
  if (name.length === 0 || name.length > 128) throw new NatlbError("E_USAGE", `NAME must be 1..128 characters: ${usage}`);
  const priority = priorityText === undefined ? undefined : Number(priorityText);
  if (priority !== undefined && !(/^\d{1,3}$/.test(priorityText!) && priority <= 255)) {
    throw new NatlbError("E_USAGE", `PRIORITY ${JSON.stringify(priorityText)} is not 0..255: ${usage}`);
  }
  return { type: type as KeepalivedNotice["type"], name, state, priority, role };
}

/** What the event stream and the audit log say of a notice. */
export function noticeText(notice: KeepalivedNotice): string {
  return `keepalived notify ${notice.type} ${notice.name} ${notice.state}${notice.priority === undefined ? "" : ` ${notice.priority}`}`;
}

const FIFO_LINE = /^(INSTANCE|GROUP) "((?:[^"\\]|\\.)*)" ([A-Z_]+)(?: (\d{1,3}))?$/;

/**
 * One line of keepalived's vrrp_notify_fifo (keepalived.conf(5)): `INSTANCE "VI_1" MASTER 100`, the
 * notify arguments with the name quoted. Undefined for the lines that change no role
 * (MASTER_RX_LOWER_PRI, MASTER_PRIORITY, BACKUP_PRIORITY); a usage error for anything else.
 */
export function parseNotifyFifoLine(line: string): KeepalivedNotice | undefined {
  const match = FIFO_LINE.exec(line.trim());
  if (!match) throw new NatlbError("E_USAGE", `${JSON.stringify(line.slice(0, 200))} is not a keepalived notify fifo line like INSTANCE "VI_1" MASTER 100`);
  const [, type, name, state, priority] = match as unknown as [string, string, string, string, string | undefined];
  if (ROLE_OF_STATE[state] === undefined && /^(MASTER_RX_LOWER_PRI|MASTER_PRIORITY|BACKUP_PRIORITY)$/.test(state)) return undefined;
  return parseKeepalivedNotify([type, name.replace(/\\(.)/g, "$1"), state, ...(priority !== undefined ? [priority] : [])]);
}
