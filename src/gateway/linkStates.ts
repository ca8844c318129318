// The state of the links natlb runs on, as the control plane's periodic check sees them: an interface
// can go down and up (its receive rings see nothing meanwhile), or be deleted and created again (a new
// ifindex: the rings, the TC program and the nftables hooks of the old one are gone with it).
import type { NativeInterface } from "../native";
import type { LinkInfo } from "./iproute";

/**
 * up: there, same ifindex, administratively up with carrier. down: there, but not up or no carrier.
 * gone: no interface of that name. replaced: an interface of that name with another ifindex (deleted
 * and created again), up or not.
 */
export type LinkState = "up" | "down" | "gone" | "replaced";

export interface LinkReading {
  state: LinkState;
  /** For "replaced": whether the new one is up with carrier (natlb can start on it). */
  ready: boolean;
}

function isUp(link: LinkInfo): boolean {
  return link.flags.includes("UP") && link.flags.includes("LOWER_UP");
}

/** What `links` (ip -j link show) says of a managed interface. */
export function readLinkState(managed: NativeInterface, links: readonly LinkInfo[]): LinkReading {
  const link = links.find((l) => l.ifname === managed.name);
  if (link === undefined) return { state: "gone", ready: false };
  if (link.ifindex !== managed.ifindex) return { state: "replaced", ready: isUp(link) };
  return isUp(link) ? { state: "up", ready: true } : { state: "down", ready: false };
}
