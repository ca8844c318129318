// The lab's address plan. Only 198.18.0.0/15 (RFC 2544 benchmarking range) is ever used.

/** Every lab address, spoofed flood sources included, lies inside this range. */
export const LAB_RANGE = '198.18.0.0/15';

/** Client-side subnet: client, gateway eth0 and the VIPs. */
export const CLIENT_SUBNET = '198.18.0.0/24';
/** Backend-side subnet: gateway eth1 and the real servers. */
export const BACKEND_SUBNET = '198.18.1.0/24';
export const PREFIX_LEN = 24;

export const CLIENT_IP = '198.18.0.2';
export const GATEWAY_CLIENT_IP = '198.18.0.1';
export const GATEWAY_BACKEND_IP = '198.18.1.1';
/** The one-armed gateway's address on the backend LAN in the direct-routing topology (the router has .1). */
export const DR_GATEWAY_IP = '198.18.1.2';
/** The two-armed gateway's own address on the backend LAN in the full-NAT topology (its LAN router has .1). */
export const FULLNAT_GATEWAY_IP = '198.18.1.2';
/** The full-NAT topology's pool addresses (natlb's local addresses), also on the gateway's eth1. */
export const FULLNAT_POOL_IPS: readonly string[] = ['198.18.1.3', '198.18.1.4'];
/** Unused addresses in the client subnet; the balancer answers ARP for them, the lab never configures them. */
export const VIP = '198.18.0.100';
export const VIP2 = '198.18.0.101';

export const MAX_REALS = 8;

/**
 * The ECMP lab's VIPs (lab/ecmpTopology.ts): outside the client's subnet, so the client reaches them
 * through its default route, the router, which has a route to them only while an instance announces it.
 */
export const ECMP_VIP = '198.18.3.100';
export const ECMP_VIP2 = '198.18.3.101';
/** The ECMP lab's instances on the LAN: 198.18.1.(1 + index), index 1-based (the router has .1). */
export function ecmpInstanceIp(index: number): string {
  if (!Number.isInteger(index) || index < 1 || index > 3) throw new RangeError(`instance index must be 1..3, got ${index}`);
  return `198.18.1.${1 + index}`;
}

/** The flood host's own link to the gateway (createLab's `floodHost`): gateway eth2 and the flood host. */
export const FLOOD_SUBNET = '198.18.2.0/24';
export const GATEWAY_FLOOD_IP = '198.18.2.1';
export const FLOOD_HOST_IP = '198.18.2.2';
/**
 * Spoofed flood sources. The gateway routes this range to the flood host, so every reply to a
 * spoofed source goes back into the lab, to the flood host, which drops it.
 */
export const SPOOF_RANGE = '198.19.0.0/16';

/** The rogue host on the backend LAN (createLab's `backendRogue`), for tests where it spoofs another host. */
export const BACKEND_ROGUE_IP = '198.18.1.99';

/** Address of real server `index` (1-based): 198.18.1.(10 + index). */
export function realIp(index: number): string {
  if (!Number.isInteger(index) || index < 1 || index > MAX_REALS) {
    throw new RangeError(`real index must be an integer in 1..${MAX_REALS}, got ${index}`);
  }
  return `198.18.1.${10 + index}`;
}

/**
 * The direct-routing topology's optional client-side arm of the balancer (createLab's `balancerArm`):
 * a link of its own from the router (eth2) to the gateway (eth0), over which the router sends the VIPs.
 */
export const BALANCER_ARM_SUBNET = '198.18.3.0/24';
export const BALANCER_ARM_ROUTER_IP = '198.18.3.1';
export const BALANCER_ARM_GATEWAY_IP = '198.18.3.2';

/**
 * The HA pair (haPairTopology.ts): each gateway's own addresses on the client and backend LANs. The
 * reals' default route is GATEWAY_BACKEND_IP, held by whichever gateway keepalived makes master.
 */
export const PAIR_GATEWAY_CLIENT_IPS: readonly [string, string] = ['198.18.0.3', '198.18.0.4'];
export const PAIR_GATEWAY_BACKEND_IPS: readonly [string, string] = ['198.18.1.3', '198.18.1.4'];
