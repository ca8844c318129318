// The kernel's half of "which frames natlb owns" (native/flow/reply_claims.h is the definition): an
// nftables table that marks those frames "for another host" at ingress, so the kernel's own IP stack
// leaves them alone and natlb's receive rings take them, and that keeps the list of reply tuples natlb
// claims from natlb's own frames (by their SO_MARK), so the daemon needs no privilege to keep it.
//
//   client interfaces, ingress:  to a VIP                          -> natlb's
//   backend interfaces, ingress: a claimed reply (real -> client)  -> natlb's
//                                a later fragment of one           -> natlb's
//   backend interfaces, egress:  natlb's frame to a real (claim mark) adds its reply tuple;
//                                renew / release control frames refresh / remove one, then go no further
//
// Everything else (the reals' own traffic, direct connections to a real, the gateway's own) takes the
// kernel's normal path: forwarding, netfilter (FORWARD filtering, SNAT/MASQUERADE), conntrack.

export const OWNERSHIP_TABLE = { family: "netdev", name: "natlb" } as const;
export const VIP_SET = "vips";

/** The facts the addon defines (loadNative().replyClaims()). */
export interface ReplyClaimFacts {
  claimMark: number;
  renewMark: number;
  releaseMark: number;
  lifetimeSeconds: number;
}

export interface OwnershipPlan {
  vips: readonly string[];
  clientInterfaces: readonly string[];
  backendInterfaces: readonly string[];
  /** Reply tuples the kernel keeps at most (at least the flow map's capacity). */
  claimCapacity: number;
}

/** Later fragments of a claimed reply are recognised by (source, destination, IP id) this long. */
const FRAGMENT_SECONDS = 30;
const FRAGMENT_CAPACITY = 65536;
/** Before the filter hooks an operator's own netdev tables use by default (0). */
const PRIORITY = -300;

const hex = (mark: number) => `0x${mark.toString(16).padStart(8, "0")}`;
const devices = (names: readonly string[]) => `{ ${names.map((n) => JSON.stringify(n)).join(", ")} }`;

/** The whole table, for `nft -f` (in one transaction with a delete of the old one, it replaces it). */
export function ownershipRuleset(plan: OwnershipPlan, facts: ReplyClaimFacts): string {
  const { family, name } = OWNERSHIP_TABLE;
  // Every reply tuple as the backend side sees a reply: real ip . protocol . real port . client ip . client port.
  // Only a whole datagram or a first fragment has ports: nftables would read a later fragment's payload
  // as its transport header.
  const reply = "ip frag-off & 0x1fff == 0 ip saddr . ip protocol . th sport . ip daddr . th dport";
  // The same tuple read off natlb's own frame towards the real (client -> real).
  const request = "ip daddr . ip protocol . th dport . ip saddr . th sport";
  const hasPorts = "ip frag-off & 0x1fff == 0";
  const lines = [
    `table ${family} ${name} {`,
    `  set ${VIP_SET} { type ipv4_addr;${plan.vips.length > 0 ? ` elements = { ${plan.vips.join(", ")} };` : ""} }`,
    `  set replies { type ipv4_addr . inet_proto . inet_service . ipv4_addr . inet_service; size ${plan.claimCapacity}; flags dynamic,timeout; timeout ${facts.lifetimeSeconds}s; }`,
    `  set reply_fragments { typeof ip saddr . ip daddr . ip id; size ${FRAGMENT_CAPACITY}; flags dynamic,timeout; timeout ${FRAGMENT_SECONDS}s; }`,
  ];
  if (plan.clientInterfaces.length > 0) {
    lines.push(
      `  chain client_ingress { type filter hook ingress devices = ${devices(plan.clientInterfaces)} priority ${PRIORITY};`,
      `    ip daddr @${VIP_SET} meta pkttype set other`,
      `  }`,
    );
  }
  if (plan.backendInterfaces.length > 0) {
    lines.push(
      `  chain backend_ingress { type filter hook ingress devices = ${devices(plan.backendInterfaces)} priority ${PRIORITY};`,
      `    ip frag-off & 0x1fff != 0 ip saddr . ip daddr . ip id @reply_fragments meta pkttype set other accept`,
      // The more-fragments test first: a whole reply (nearly all of them) costs one set lookup, not two.
      `    ip frag-off & 0x2000 != 0 ${reply} @replies add @reply_fragments { ip saddr . ip daddr . ip id }`,
      `    ${reply} @replies meta pkttype set other`,
      `  }`,
      `  chain backend_egress { type filter hook egress devices = ${devices(plan.backendInterfaces)} priority ${PRIORITY};`,
      `    meta mark ${hex(facts.claimMark)} meta l4proto { tcp, udp } ${hasPorts} add @replies { ${request} }`,
      `    meta mark ${hex(facts.renewMark)} ${hasPorts} update @replies { ${request} } drop`,
      `    meta mark ${hex(facts.releaseMark)} ${hasPorts} delete @replies { ${request} } drop`,
      `  }`,
    );
  }
  lines.push(`}`);
  return `${lines.join("\n")}\n`;
}
