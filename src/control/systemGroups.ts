// Group names to gids, through NSS (`getent group`), so groups from LDAP or sssd work as well as
// /etc/group ones. Done once at start: the access check itself compares numbers.
import { execFile } from "node:child_process";
import { ConfigError } from "../errors";
import type { GroupRef } from "../config";

/** A configured group with its gid. */
export interface ResolvedGroup {
  /** As configured: a name, or the gid as text. */
  readonly name: string;
  readonly gid: number;
}

function getent(name: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    execFile("getent", ["group", name], { timeout: 10_000 }, (error, stdout) => {
      // Exit status 2: no such group.
      if (error && (error as { code?: unknown }).code === 2) return resolve(undefined);
      if (error) return reject(error);
      resolve(stdout);
    });
  });
}

/** Looks a configured group up; `field` (e.g. `control.readGroup`) names it in the error when it does not exist. */
export async function resolveGroup(group: GroupRef, field: string): Promise<ResolvedGroup> {
  if (typeof group === "number") return { name: String(group), gid: group };
  let line: string | undefined;
  try {
    line = await getent(group);
  } catch (error) {
    throw new ConfigError(field, `cannot look up group "${group}" (getent: ${(error as Error).message}): give its numeric gid instead`, { cause: error });
  }
  // name:password:gid:members
  const gid = line === undefined ? Number.NaN : Number(line.split("\n")[0]!.split(":")[2]);
  if (!Number.isInteger(gid)) {
    throw new ConfigError(field, `no group "${group}" on this system: create it (groupadd ${group}) or name an existing group`);
  }
  return { name: group, gid };
}
