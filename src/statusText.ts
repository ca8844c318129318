// The text `natlb status` and `natlb conns` print (their --json prints the daemon's answer as it is).
// The status text is a list of sections, each a function of the status giving zero or more lines, so
// a new line is one more entry in STATUS_SECTIONS.
import type { ChangeOrigin, NatlbEvent } from "./events";
import type { BalancerStatus } from "./balancer";
import type { Timeouts } from "./config";
import type { Connection } from "./flows/flowMap";

/** One part of the status text: the lines it has to say, or none. */
export type StatusSection = (status: BalancerStatus) => string[];

/** A link that is not up, loudly (docs/operations.md: an interface goes down); nothing when up, or from an older daemon. */
function linkNote(link: BalancerStatus["interfaces"][number]["link"]): string {
  return link === undefined ? "" : `, link ${link.toUpperCase()}: nothing forwarded through it`;
}

/** An active/backup pair's role (absent from a daemon older than the CLI). */
const haSection: StatusSection = (status) => {
  const ha = status.ha;
  if (ha === undefined) return [];
  const silent = ha.role === "master" ? "answers ARP for the VIPs" : `silent for the VIPs (${status.counters.arpSilentNotMaster ?? 0} ARP request(s) left unanswered), forwards what reaches it`;
  return [`ha: ${ha.role.toUpperCase()} since ${ha.since} (${ha.reason}; ${ha.transitions} transition(s)); ${silent}`];
};

const summarySection: StatusSection = (status) => [
  `natlb: ${status.services.length} service(s); flows ${status.flows.live}/${status.flows.capacity}; interfaces ${status.interfaces
    .map((i) => `${i.name}(${i.role}, ${i.receivePath}${i.xdp ? ` ${i.xdp.mode}, ${i.xdp.receiveQueues} queue(s)` : ""}${linkNote(i.link)})`)
    .join(" ")}`,
];

/** Which path moves the bytes: the kernel fast path for established TCP flows, or user space only (and why). */
const forwardingPathSection: StatusSection = (status) => {
  const fastPath = status.kernelFastPath;
  const setting = `kernelFastPath ${JSON.stringify(fastPath.setting)}`;
  // A daemon older than the CLI has no workerThreads in its status: say nothing of them then.
  const threads = status.workerThreads as BalancerStatus["workerThreads"] | undefined;
  const workers = threads === undefined ? "" :
    `; user space: ${threads.running === "one" ? "one worker thread" : "a worker thread per interface"} (workerThreads ${JSON.stringify(threads.setting)})`;
  if (fastPath.enabled) {
    const scheduling = fastPath.scheduling as BalancerStatus["kernelFastPath"]["scheduling"] | undefined;
    const newConnections = scheduling === undefined ? "" :
      !scheduling.setting ? "; new connections scheduled in user space (kernelScheduling false)" :
      `; new connections scheduled in the kernel for ${scheduling.services} service(s)${scheduling.active ? "" : " (paused: backup, or half-open connections piling up)"}, ` +
        `${status.counters.kernelScheduledFlows ?? 0} so far`;
    return [
      `forwarding: kernel fast path for established TCP (${setting}), user space for the rest; ` +
        `kernel fast path: ${fastPath.flows} flow(s), ${status.counters.kernelForwardedPackets} segment(s) forwarded${newConnections}${workers}`,
    ];
  }
  return [`forwarding: user space only (${setting}${fastPath.unavailable !== undefined ? `; unavailable: ${fastPath.unavailable}` : ""})${workers}`];
};

/** A real's own forwarding, why it gets no new connections when that says more than its state (its
 * health reason, or its limit), and its slow start and drain, when it has one. */
function realNote(r: BalancerStatus["services"][number]["reals"][number]): string {
  const notes = [
    ...(r.forwarding !== undefined ? [`forwarding ${r.forwarding}`] : []),
    ...(!r.up && r.health ? [r.health.reason] : []),
    ...(r.overloaded === true ? [`FULL: maxConns ${r.maxConns}, takes new connections below ${r.minConnsToResume ?? `3/4 of ${r.maxConns}`}`] : []),
    ...(r.slowStart ? [`slow start: weight ${r.slowStart.effectiveWeight} until ${r.slowStart.endsAt}`] : []),
    ...(r.drain ? [`draining${r.drain.deadline ? ` until ${r.drain.deadline}` : ""}, then ${r.drain.then}`] : []),
  ];
  return notes.length > 0 ? `  (${notes.join("; ")})` : "";
}

/** `tcpEstablished 900 s, ...` in the config's order. */
function timeoutsText(timeouts: Timeouts): string {
  return Object.entries(timeouts).map(([state, seconds]) => `${state} ${seconds} s`).join(", ");
}

/** The ipvsadm -Ln look: one line per service (and its timeouts when it has its own), one per real under it, then the fallback real. */
const servicesSection: StatusSection = (status) => {
  const lines = ["Prot LocalAddress:Port Scheduler", "  -> RemoteAddress:Port      Weight  State  ActiveConn  InActConn"];
  const connections = (c: { activeConns: number; inactiveConns: number }) => `${String(c.activeConns).padStart(10)}  ${String(c.inactiveConns).padStart(9)}`;
  for (const s of status.services) {
    const flags = s.schedulerFlags && s.schedulerFlags.length > 0 ? ` (${s.schedulerFlags.join(",")})` : "";
    const persistent = s.templates === undefined ? "" : ` persistent (${s.templates} template(s))`;
    const pickUp = s.midStreamPickUp ? ` mid-stream pick-up${s.mhSeed !== undefined ? ` (seed ${s.mhSeed})` : ""}` : s.mhSeed !== undefined ? ` seed ${s.mhSeed}` : "";
    // The pool of a "nat" or "dr" service serves its "fullnat" reals only (their own forwarding).
    const pool = s.fullnat ? `from ${s.fullnat.localAddresses.join(",")} ports ${s.fullnat.localPorts.first}-${s.fullnat.localPorts.last}` : "";
    const direct = s.forwarding === "dr" ? ` direct-routing${pool ? ` (fullnat reals ${pool})` : ""}` : s.forwarding === "fullnat" ? ` fullnat ${pool}` : pool ? ` (fullnat reals ${pool})` : "";
    lines.push(`${s.protocol.toUpperCase().padEnd(4)} ${`${s.vip}:${s.port}`.padEnd(21)} ${s.scheduler}${flags}${pickUp}${persistent}${direct}`);
    if (s.timeouts) lines.push(`  timeouts (not all the global ones): ${timeoutsText(s.timeouts)}`);
    for (const r of s.reals) {
      lines.push(`  -> ${`${r.ip}:${r.port}`.padEnd(22)} ${String(r.weight).padStart(6)}  ${(r.up ? "up" : "DOWN").padEnd(5)}  ${connections(r)}${realNote(r)}`);
    }
    const f = s.fallback;
    if (f) {
      const use = f.inUse ? "fallback IN USE: no real can take new connections" : "fallback, idle while a real can take new connections";
      lines.push(`  -> ${`${f.ip}:${f.port}`.padEnd(22)} ${"-".padStart(6)}  ${"-".padEnd(5)}  ${connections(f)}  (${use})`);
    }
  }
  return lines;
};

const framesSection: StatusSection = (status) => {
  const c = status.counters;
  const drops = Object.entries(c)
    .filter(([name, value]) => (name.startsWith("drop") || name === "ringDrops") && value > 0)
    .map(([name, value]) => `${name.replace(/^drop/, "").replace(/^./, (x) => x.toLowerCase())} ${value}`);
  const direct = c.toRealDirect > 0 ? `, ${c.toRealDirect} to reals by direct routing` : "";
  const pickedUp = c.midStreamPickUps > 0 ? `, ${c.midStreamPickUps} connection(s) picked up mid-stream` : "";
  return [`frames: ${c.toReal} to reals${direct}, ${c.toClient} to clients${pickedUp}; drops: ${drops.length ? drops.join(", ") : "none"}`];
};

/** Only with config bgp: what BIRD announces for this instance. */
const bgpSection: StatusSection = (status) => {
  const b = status.bgp;
  if (!b) return [];
  const announced = b.announced.length > 0 ? b.announced.join(", ") : "nothing";
  const pending = b.pending.length > 0 ? `; pending ${b.pending.join(", ")}` : "";
  const failing = b.lastError !== undefined ? `; last step failed: ${b.lastError}` : "";
  return [`bgp (BIRD ${b.birdSocket}): announcing ${announced}${pending}; ${b.announcements} announcement(s), ${b.withdrawals} withdrawal(s), ${b.failures} failure(s)${failing}`];
};

/** Only when the flood defences have anything to say. */
const floodDefencesSection: StatusSection = (status) => {
  const f = status.flows;
  const evicted = f.evicted.halfOpenTcpShare + f.evicted.halfOpenTcpRoom + f.evicted.udpShare + f.evicted.udpRoom;
  if (f.unassured.halfOpenTcp + f.unassured.udp + evicted + f.expiredUnderPressure === 0) return [];
  return [
    `flood defences: unassured ${f.unassured.halfOpenTcp} half-open TCP, ${f.unassured.udp} UDP; ` +
      `evicted ${evicted} (half-open TCP ${f.evicted.halfOpenTcpShare} for its share, ${f.evicted.halfOpenTcpRoom} for room; ` +
      `UDP ${f.evicted.udpShare} for its share, ${f.evicted.udpRoom} for room); expired under pressure ${f.expiredUnderPressure}`,
  ];
};

/** The sections of `natlb status`, in the order they print. */
/** The flow sync (config sync): its peers, what went and came, and every rejection or drop that happened. */
const syncSection: StatusSection = (status) => {
  const sync = status.sync;
  if (sync === undefined) return [];
  const c = sync.counters;
  const to = [...sync.peers, ...(sync.multicast ? [`${sync.multicast.group} on ${sync.multicast.interface}`] : [])].join(", ");
  const troubles = Object.entries(c)
    .filter(([name, value]) => value > 0 && (name.startsWith("rejected") || name.startsWith("dropped") || name === "sendErrors"))
    .map(([name, value]) => `${name} ${value}`);
  return [
    `sync: ${sync.listen} <-> ${to}; sent ${c.sentRecords ?? 0} record(s) in ${c.sentDatagrams ?? 0} datagram(s), ` +
      `received ${c.receivedDatagrams ?? 0}, applied ${(c.appliedInserted ?? 0) + (c.appliedUpdated ?? 0)} ` +
      `(${c.appliedInserted ?? 0} new); snapshots received ${c.snapshotsCompleted ?? 0}, served ${c.snapshotRequestsServed ?? 0}` +
      (troubles.length > 0 ? `; ${troubles.join(", ")}` : ""),
  ];
};

export const STATUS_SECTIONS: readonly StatusSection[] = [
  summarySection,
  haSection,
  forwardingPathSection,
  syncSection,
  servicesSection,
  framesSection,
  floodDefencesSection,
  bgpSection,
];

export function formatStatus(status: BalancerStatus, sections: readonly StatusSection[] = STATUS_SECTIONS): string {
  return sections.flatMap((section) => section(status)).join("\n");
}

/** `next`: the cursor of the next page, when the daemon said there is one. */
export function formatConnections(connections: readonly Connection[], next?: number): string {
  const lines = ["Pro State        Client                 Virtual                Real                   Idle(s)"];
  for (const c of connections) {
    lines.push(
      [
        c.protocol.toUpperCase().padEnd(3),
        (c.template ? "TEMPLATE" : c.state).padEnd(12),
        `${c.client.ip}:${c.client.port}`.padEnd(22),
        `${c.vip.ip}:${c.vip.port}`.padEnd(22),
        `${c.real.ip}:${c.real.port}`.padEnd(22),
        (c.idleMs / 1000).toFixed(1) + (c.template ? `  controls ${c.template.controlledFlows}, timeout ${c.template.timeoutS} s` : "") +
          (c.local ? `  from ${c.local.ip}:${c.local.port}` : "") + (c.synced ? "  synced" : "") +
          (c.pickedUp ? "  picked up" : "") +
          (c.kernelScheduled ? "  kernel-scheduled" : ""),
      ].join(" "),
    );
  }
  lines.push(
    next === undefined
      ? `${connections.length} connection(s)`
      : `${connections.length} connection(s) shown, more match: add --cursor ${next} for the next page`,
  );
  return lines.join("\n");
}

/** One event on one line: time, sequence number, type, and what happened. */
function originText(origin: ChangeOrigin): string {
  return origin.via === "control socket" ? `control socket (uid ${origin.peer.uid}, pid ${origin.peer.pid})` : origin.via;
}

export function formatEvent(event: NatlbEvent): string {
  const head = `${event.at} #${event.seq} ${event.type}`;
  switch (event.type) {
    case "health":
      return `${head} ${event.service} ${event.real} ${event.up ? "up" : "DOWN"}: ${event.reason}`;
    case "change":
      return `${head} by ${originText(event.origin)}: ${JSON.stringify(event.change)}`;
    case "flowMapPressure":
      return `${head} ${event.level}: ${event.live} of ${event.capacity} flows`;
    case "bgp":
      return `${head} ${event.vip} ${event.announced ? "announced" : "WITHDRAWN"} through BIRD`;
    case "dropSpike":
      return `${head} ${event.reason}: ${event.perSecond}/s (usually ${event.usualPerSecond}/s)`;
    case "drainFinished":
      return `${head} ${event.service} ${event.real}: ${event.deadlineHit ? `deadline hit with ${event.connectionsLeft} connection(s) left` : "no connections left"} after ${(event.waitedMs / 1000).toFixed(1)} s; then ${event.then}: ${event.done}`;
    case "haRole":
      return `${head} ${event.previous} -> ${event.role} (${event.reason}) by ${originText(event.origin)}${event.flowsOffloaded !== undefined ? `; ${event.flowsOffloaded} flow(s) to the kernel fast path` : ""}`;
    case "lagged":
      return `${head}: this watcher missed ${event.missed} events`;
  }
}
