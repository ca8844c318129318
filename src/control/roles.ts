// The control socket's roles, and the one table of which route needs which. A peer holds admin when
// it is root or the daemon's own user, or is in control.adminGroup; read when it is in
// control.readGroup (admin includes read). Everything not listed as read needs admin, so a new route
// is an admin route until someone decides otherwise here.
import type { PeerCredentials } from "../native";
import { describePeer } from "./peerCredentials";
import { CONTROL_ROUTES, type RouteKey } from "./protocol";
import type { ResolvedGroup } from "./systemGroups";

export type Role = "read" | "admin";

/** The routes the read role may use: what shows the daemon's state and changes nothing. */
const READ_ROUTES: ReadonlySet<string> = new Set<RouteKey>([CONTROL_ROUTES.status, CONTROL_ROUTES.conns, CONTROL_ROUTES.stats, CONTROL_ROUTES.health, CONTROL_ROUTES.metrics, CONTROL_ROUTES.events]);

/** The config field that names each role's group. */
export const ROLE_GROUP_FIELDS: Readonly<Record<Role, string>> = Object.freeze({ read: "control.readGroup", admin: "control.adminGroup" });

/** The role a route key (`POST /reals`) needs. */
export function roleNeeded(route: string): Role {
  return READ_ROUTES.has(route) ? "read" : "admin";
}

/** The groups of the two roles, resolved at start, and the daemon's own uid. */
export interface AccessPolicy {
  readonly readGroup: ResolvedGroup | undefined;
  readonly adminGroup: ResolvedGroup | undefined;
  /** The daemon's user: it could change the daemon anyway (it owns the process), so it is admin. */
  readonly daemonUid: number;
}

/** Root and the daemon's user only: the policy when the config names no groups. */
export function ownerOnlyPolicy(): AccessPolicy {
  return { readGroup: undefined, adminGroup: undefined, daemonUid: process.geteuid?.() ?? 0 };
}

/** The group the socket file gets: the widest set of peers that may hold a role. */
export function socketGroupOf(policy: AccessPolicy): ResolvedGroup | undefined {
  return policy.readGroup ?? policy.adminGroup;
}

function inGroup(peer: PeerCredentials, group: ResolvedGroup | undefined): boolean {
  return group !== undefined && (peer.gid === group.gid || peer.groups.includes(group.gid));
}

/** The highest role a peer holds, or undefined for none. */
export function roleOf(peer: PeerCredentials, policy: AccessPolicy): Role | undefined {
  if (peer.uid === 0 || peer.uid === policy.daemonUid || inGroup(peer, policy.adminGroup)) return "admin";
  if (inGroup(peer, policy.readGroup)) return "read";
  return undefined;
}

export function grants(held: Role | undefined, needed: Role): boolean {
  return held === "admin" || (held === "read" && needed === "read");
}

function groupText(group: ResolvedGroup | undefined, role: Role): string {
  return group === undefined ? `${ROLE_GROUP_FIELDS[role]} (not set)` : `${ROLE_GROUP_FIELDS[role]} ("${group.name}", gid ${group.gid})`;
}

/** The 403 message: the role the route needs, who asked, and which config field to change. */
export function refusalMessage(route: string, peer: PeerCredentials, policy: AccessPolicy): string {
  const needed = roleNeeded(route);
  const held = roleOf(peer, policy);
  const group = needed === "read" ? policy.readGroup : policy.adminGroup;
  const field = ROLE_GROUP_FIELDS[needed];
  const who = `${describePeer(peer)} has ${held === undefined ? "no role" : `only the ${held} role`}`;
  const allowed =
    needed === "read"
      ? `root, natlb's user (uid ${policy.daemonUid}) and members of ${groupText(policy.readGroup, "read")} or ${groupText(policy.adminGroup, "admin")}`
      : `root, natlb's user (uid ${policy.daemonUid}) and members of ${groupText(policy.adminGroup, "admin")}`;
  const fix =
    group === undefined
      ? `set ${field} in natlb's config to a group of this user (read at the daemon's start)`
      : `add the user to group "${group.name}", or change ${field} in natlb's config`;
  return `${route} needs the ${needed} role, and ${who} (allowed: ${allowed}). To allow it: ${fix}`;
}
