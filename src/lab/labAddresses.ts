// The lab's address plan. Only 198.18.0.0/15 (RFC 2544 benchmarking range) is ever used.

/** Client-side subnet: client, gateway eth0 and the VIPs. */
export const CLIENT_SUBNET = '198.18.0.0/24';
/** Backend-side subnet: gateway eth1 and the real servers. */
export const BACKEND_SUBNET = '198.18.1.0/24';
export const PREFIX_LEN = 24;

export const CLIENT_IP = '198.18.0.2';
export const GATEWAY_CLIENT_IP = '198.18.0.1';
export const GATEWAY_BACKEND_IP = '198.18.1.1';
/** Unused addresses in the client subnet; the balancer answers ARP for them, the lab never configures them. */
export const VIP = '198.18.0.100';
export const VIP2 = '198.18.0.101';

export const MAX_REALS = 8;

/** Address of real server `index` (1-based): 198.18.1.(10 + index). */
export function realIp(index: number): string {
  if (!Number.isInteger(index) || index < 1 || index > MAX_REALS) {
    throw new RangeError(`real index must be an integer in 1..${MAX_REALS}, got ${index}`);
  }
  return `198.18.1.${10 + index}`;
}
