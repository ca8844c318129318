// Typed loader for the C++ data plane (native/addon.cc). The addon comes from a local build — cmake-js
// on `npm ci` (build-cmake/) or node-gyp (`npm run build:gyp`, build/) — or from the package's prebuilt
// copy (prebuilds/, made by `npm run build:prebuilds`). A local build wins: a developer's fresh build
// must not lose to a prebuild that predates their change (scripts/install.js builds one only when the
// prebuild does not load).
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { KernelFastPathSetting, WorkerLayout, WorkerThreadsSetting } from "./config";
import { NatlbError } from "./errors";
import type { PickMode } from "./schedulers/types";
import type { TrafficCountName, TrafficCounts } from "./stats/trafficCounts";

export type Protocol = "tcp" | "udp";
export type ChecksumKind = "complete" | "partial";

export interface NativeInterface {
  name: string;
  ifindex: number;
  mac: string;
  role: "client" | "backend";
  addresses: { ip: string; prefixLength: number }[];
  receivePath: "af_packet" | "af_xdp";
}

export interface NativeService {
  vip: string;
  port: number;
  protocol: Protocol;
  /** Direct routing (config forwarding "dr"): new flows go to their real with only the MAC changed. */
  directRouting?: boolean;
  /**
   * Full NAT (config forwarding "fullnat"): new flows come from these local addresses and ports. With
   * forRealsOnly the service's own mode is not full NAT: only reals with their own "fullnat" use the pool.
   */
  fullNat?: { localAddresses: string[]; firstPort: number; lastPort: number; forRealsOnly?: boolean };
  mode: PickMode;
  /** Indexes into `reals`, computed by a scheduling policy (src/schedulers). */
  slots: Uint16Array;
  /** The least-connection modes: each slot's weight. */
  weights?: Uint16Array;
  /** Mode "hash": the client port is hashed with the client address (schedulerFlags sh-port, mh-port). */
  hashPort?: boolean;
  /** Mode "hash": a full real's clients walk on to the next slots' reals (sh-fallback, mh-fallback). */
  hashFallback?: boolean;
  /** Mode "hash": a TCP segment without SYN of an unknown flow gets a flow to the hashed real (config midStreamPickUp). */
  midStreamPickUp?: boolean;
  /** Connection limits (config maxConns, minConnsToResume); absent or 0: none. */
  reals: { ip: string; port: number; id: number; maxConns?: number; minConnsToResume?: number; forwarding?: NativeForwarding }[];
  /** Takes new connections when no real can (config fallback); no slot points at it. */
  fallback?: { ip: string; port: number; id: number };
  /** The service's own idle timeouts; a state left out (or all of them) takes the global value. */
  timeouts?: NativeTimeouts;
  /** ipvsadm -p/-M: `keepingRealIds` are the reals that keep their persistent clients (up, drained or not). */
  persistence?: { timeoutS: number; netmask: string; keepingRealIds: number[] };
}

/**
 * A real's own forwarding (config reals[].forwarding) where it differs from its service's, whose mode is
 * "dr" with directRouting, else "fullnat" with fullNat (not forRealsOnly), else "nat".
 */
export type NativeForwarding = "nat" | "dr" | "fullnat";

/** The TCP states a direct-routing flow goes through (IPVS's input-only table, reduced). */
export type InputOnlyTcpState = "SYN_RECV" | "ESTABLISHED" | "FIN_WAIT" | "TIME_WAIT" | "CLOSE";

export interface NativeRoute {
  prefix: string;
  prefixLength: number;
  ifindex: number;
  gateway?: string;
}

export interface NativeNeighbour {
  ip: string;
  mac: string;
  ifindex: number;
}

export interface NativeTimeouts {
  tcpSynRecv?: number;
  tcpEstablished?: number;
  tcpFinWait?: number;
  tcpTimeWait?: number;
  tcpClose?: number;
  udp?: number;
}

export interface NativeFloodProtection {
  halfOpenSharePermille: number;
  udpSharePermille: number;
  pressureAtPermille: number;
  pressureTimeoutSeconds: number;
}

export interface NativeDeadReal {
  vip: string;
  port: number;
  protocol: Protocol;
  realIp: string;
  realPort: number;
  reset: boolean;
}

/** A gateway's part in an active/backup pair (config `ha`); without one natlb is a master. */
export const GATEWAY_ROLES = ["master", "backup", "fault"] as const;
export type GatewayRole = (typeof GATEWAY_ROLES)[number];

export const COUNTER_NAMES = [
  "rxFrames", "rxBytes", "rxSteeredFrames", "txFrames", "txBytes", "txCoalescedSegments", "toReal", "toClient", "fragmentsForwarded", "newFlows",
  "arpRepliesSent", "arpRequestsSent", "arpRepliesLearned", "gratuitousArpSent", "icmpEchoReplies", "icmpErrorsToReal", "icmpErrorsToClient",
  "tcpUntracked", "icmpFragmentationNeededSent", "icmpTimeExceededSent", "icmpErrorsNotSent", "heldForNeighbour",
  "ignored", "arpIgnored", "dropTruncated", "dropMalformed",
  "dropFragment", "dropTtlExpired", "dropTooBig", "dropNoService", "dropNoReal", "dropRealsFull", "dropNoFlow", "dropOutOfWindow", "dropFlowTableFull",
  "dropNoRoute", "dropNoNeighbour", "dropTxError", "dropVlan", "ringDrops",
  "kernelForwardedPackets", "kernelForwardedBytes", "flowsOffloaded", "offloadRefused", "replyClaimSignals", "replyClaimSignalErrors",
  "deadRealFlowsEnded", "tcpResetsSent", "ringErrors", "toRealDirect", "dropNotOnLink", "dropFullnatPortsExhausted", "midStreamPickUps",
  "arpSilentNotMaster", "vipFramesNotMaster", "tcpResetsWithoutSequence",
  "kernelScheduledFlows", "kernelScheduledRefused", "kernelEventRingFull",
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];
export type EngineCounters = Record<CounterName, number>;

/** The flow sync's options as the engine takes them (native/sync_values.cc). */
export interface NativeSyncOptions {
  listen: { ip: string; port: number };
  peers: { ip: string; port: number }[];
  multicast?: { group: string; interface: string };
  key: Uint8Array;
  refreshSeconds?: number;
  maxClockSkewSeconds?: number;
}

/** The flow sync's counters (native/sync/sync_counters.h; names from syncMessage.counterNames). */
export type SyncCounters = Record<string, number>;

/** One flow as the sync sends it (native/sync/sync_message.h). */
export interface SyncFlowRecord {
  /** syncMessage.recordKinds: a flow (the default) or a persistence template (clientIp its network, netmask its mask). */
  kind?: number;
  protocol: number;
  state: number;
  flags: number;
  clientIp: string;
  clientPort: number;
  vip: string;
  vport: number;
  realIp: string;
  realPort: number;
  localIp?: string;
  localPort?: number;
  netmask?: string;
}

export interface SyncMessageHeader {
  type: number;
  senderId: number;
  sequence: number;
  timestampMs: number;
}

export type SyncDecodeResult =
  | { error: "none"; header: SyncMessageHeader; records: (SyncFlowRecord & { valid: boolean })[] }
  | { error: "truncated" | "notSync" | "wrongVersion" | "badMac" | "unknownType" };

export interface NativeEngine {
  start(): void;
  stop(): void;
  /**
   * While stopped: the same interfaces (names, roles) as they are now, e.g. one deleted and created again
   * (new ifindex and MAC). Flows and counters stay.
   */
  replaceInterfaces(interfaces: NativeInterface[]): void;
  isRunning(): boolean;
  /** Every service: a new snapshot (VIPs announced, receive filters rebuilt, removed services' flows withdrawn). */
  setServices(services: NativeService[]): void;
  /** These services only (each already in the data plane); the others are shared with the new snapshot. */
  replaceServices(services: NativeService[]): void;
  /** The snapshot the workers use: 1 + calls to setServices/replaceServices so far. */
  servicesGeneration(): number;
  /** The ids of the reals over their connection limit now (maxConns, with IPVS's hysteresis). */
  overloadedRealIds(): number[];
  setRoutes(routes: NativeRoute[]): void;
  learnNeighbours(neighbours: NativeNeighbour[]): void;
  /** The gateway's own IPv4 addresses: frames to them are the kernel's (the XDP program passes them). */
  setLocalAddresses(ips: string[]): void;
  setTimeouts(timeouts: NativeTimeouts): void;
  /** How the flow map gives way to floods (native/flow/flow_table.h): shares in thousandths of its capacity. */
  setFloodProtection(defences: NativeFloodProtection): void;
  /** Every live flow claims its replies anew (the kernel lost its list of claimed replies). */
  renewReplyClaims(): void;
  /** Ends the flows of reals that went down or were removed (config deadRealFlows), resets to both ends when asked. */
  endFlowsOf(reals: NativeDeadReal[]): void;
  counters(): EngineCounters;
  /**
   * The pair's role (native/engine/gateway_role.h), read by the workers at their next batch. Becoming
   * master announces every VIP `rounds` times, `intervalMs` apart.
   */
  setGatewayRole(role: GatewayRole, announcement: { rounds: number; intervalMs: number }): void;
  gatewayRole(): GatewayRole;
  /** Each real's traffic by real id (native/engine/real_stats.h): workers and kernel fast path summed. */
  realTraffic(realIds: readonly number[]): TrafficCounts[];
  neighbours(): NativeNeighbour[];
  /** The AF_XDP interfaces while running: XDP mode and one AF_XDP socket per receive queue. */
  xdpStates(): { name: string; mode: "native" | "generic"; receiveQueues: number }[];
  /** Flows the kernel fast path forwards now (0 without it). */
  kernelFastPathFlows(): number;
  /** Whether the kernel fast path runs; with "auto", why it could not start (the loader's error). */
  kernelFastPathState(): { active: boolean; unavailable?: string; schedulingServices: number; scheduling: boolean };
  /** Whether the kernel fast path may schedule new connections itself (config kernelScheduling). */
  setKernelScheduling(allowed: boolean): void;
  /** The running workers' layout (config workerThreads, "auto" resolved at start). */
  workerThreads(): WorkerLayout;
  /** Starts the flow sync (replacing a running one); throws when its socket cannot be bound. */
  startSync(options: NativeSyncOptions): void;
  stopSync(): void;
  /** The flow sync's counters; null when none runs. */
  syncCounters(): SyncCounters | null;
  /**
   * Hands every established TCP flow user space forwards (synced ones included) to the kernel fast path
   * in one pass: for an instance that takes over. How many went (0 without the kernel fast path).
   */
  offloadEstablishedFlows(): number;
}

export interface FlowLayout {
  magic: number;
  version: number;
  headerBytes: number;
  entryBytes: number;
  header: Record<
    "magic" | "version" | "capacity" | "bucketCount" | "bumpAllocated" | "liveCount" | "clockMs" | "inserted"
    | "expired" | "fullDrops" | "hashSeed" | "halfOpenFlows" | "unassuredUdpFlows" | "evictedHalfOpenQuota"
    | "evictedUdpQuota" | "evictedHalfOpenRoom" | "evictedUdpRoom" | "expiredEarly",
    number
  >;
  entry: Record<
    "status" | "protocol" | "state" | "realId" | "clientIp" | "vip" | "realIp" | "clientPort" | "vport"
    | "realPort" | "flags" | "lastSeenMs" | "packetsIn" | "bytesIn" | "packetsOut" | "bytesOut" | "createdMs"
    | "kernelPacketsIn" | "kernelBytesIn" | "kernelPacketsOut" | "kernelBytesOut" | "timeoutProfile" | "controlledFlows" | "templateSerial" | "templateTimeoutS"
    | "localIp" | "localPort",
    number
  >;
  /** Flag bits of an entry's `flags` field. */
  flags: {
    template: number;
    fullNat: number;
    /** Its handshake was not seen here, so TCP tracking starts mid-stream: synced from a peer, or picked up (native/flow/flow_layout.h). */
    midStreamStart: number;
    /** Picked up mid-stream by this instance (service midStreamPickUp). */
    pickedUp: number;
    /** Scheduled by the kernel fast path itself: its SYN never reached user space. */
    kernelScheduled: number;
  };
  states: string[];
  /** Per-real connection counts (native/flow/flow_layout.h), indexed by real id; fields are byte offsets within a real's slot. */
  realCounters: { offset: number; bytesPerReal: number; realIdCount: number; active: number; inactive: number; templates: number };
  minCapacity: number;
  maxCapacity: number;
}

export type RewriteResult = { ok: true } | { ok: false; reason: string };
export type ParseResult =
  | { ok: true; protocol: number; src: string; dst: string; sport: number; dport: number; ttl: number;
      l3Offset: number; l4Offset: number; l4Length: number }
  | { ok: false; reason: string };

export type CoalesceResult =
  | { ok: true; frame: Uint8Array; gsoType: number; gsoSize: number; headerLength: number; checksumStart: number;
      checksumOffset: number; needsChecksum: boolean }
  | { ok: false; reason: string };

/** One side of a TCP connection as natlb tracks it (native/flow/tcp_window.h). */
export interface TcpSide {
  sequenceEnd: number;
  windowBytes: number;
  /** The shift its SYN offered; 255 when none. */
  windowScale: number;
  seen: boolean;
  /** Before it was seen: the acknowledgement of the bare ACK it sent (a TIME_WAIT answering a SYN). */
  strayAcknowledgement?: number;
}

export interface TcpSegmentFields {
  sequence: number;
  acknowledgement: number;
  window: number;
  flags: number;
  payloadLength: number;
  /** The SYN's window-scale option; 255 when none. */
  windowScale: number;
}

/** A unix socket peer's credentials (native/io/peer_credentials.h). */
export interface PeerCredentials {
  /** 0 when the peer's process is not visible in this pid namespace. */
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups. */
  readonly groups: readonly number[];
}

/** A flow map driven without an engine, for the unit tests of its defences (native/test_surface.cc). */
export interface FlowTableForTests {
  /** The new (or existing) flow's ref, 0 when the map refused it. */
  insert(
    flow: { protocol: Protocol; clientIp: string; clientPort: number; vip: string; vport: number; realIp: string; realPort: number; realId?: number },
    nowMs: number,
    /** { timeoutProfile }: the flow expires by that profile's timeouts; { templateRef }: a persistence template (bindTemplate) the new flow is created through. */
    options?: { timeoutProfile?: number; templateRef?: number },
  ): number;
  /**
   * A full-NAT flow (native/flow/local_ports.h): its local address and port from the pool, or why none.
   * `start`: the worker's random value (its low 32 bits pick the first address); the port is the next in turn.
   */
  insertFullNat(
    flow: { protocol: Protocol; clientIp: string; clientPort: number; vip: string; vport: number; realIp: string; realPort: number },
    nowMs: number,
    pool: { localAddresses: string[]; firstPort: number; lastPort: number },
    start: number,
  ): { ref: number; localIp?: string; localPort?: number; refused?: "full" | "localPortsExhausted" };
  /** The flow whose replies real -> ip:port are (the reply index), 0: none. */
  findReverse(reply: { protocol: Protocol; realIp: string; realPort: number; ip: string; port: number }): number;
  /**
   * A persistence template: the live one for this client (masked), or a new one holding the real; a
   * live one whose serial is `staleSerial` is rebound to the real first. 0 when the map refused it.
   */
  bindTemplate(
    template: { protocol: Protocol; clientIp: string; netmask: string; vip: string; vport: number; realIp: string; realPort: number; realId: number },
    timeoutS: number,
    nowMs: number,
    staleSerial?: number,
  ): number;
  /** The ref of the live template controlling a flow, 0 when none. */
  templateOf(ref: number): number;
  assure(ref: number): void;
  /** A TCP state change as a worker makes it: `state` indexes FlowLayout.states (1 SYN_RECV .. 5 CLOSE). */
  raiseState(ref: number, state: number): void;
  /** `nowMs`: the engine's clock as its sweep publishes it (a template's timeout runs from its last flow's end). */
  remove(ref: number, nowMs?: number): void;
  /**
   * One sweep over the whole map; returns the flows removed. With timeoutSeconds, the global profile
   * (0) gets it for every state first.
   */
  sweep(nowMs: number, timeoutSeconds?: number): number;
  /** A timeout profile's values: profile 0 the global one (states left out: the defaults), the others a service's (left out: the global value). */
  setTimeoutProfile(profile: number, timeouts: NativeTimeouts): void;
  setFloodProtection(defences: NativeFloodProtection): void;
  enterBatch(): void;
  leaveBatch(): void;
  /** Hands the flow to a scripted kernel fast path (with no counts yet). */
  offload(ref: number): void;
  /** What the scripted kernel has forwarded of the flow so far (read back by sweeps and removals). */
  setKernelCounts(ref: number, counts: { packetsIn: number; bytesIn: number; packetsOut: number; bytesOut: number }): void;
  /** Takes every offloaded flow back from the kernel, as the engine's stop() does; returns how many. */
  withdrawOffloaded(): number;
  /** What the read-backs credited to the real (connections stay 0: the kernel creates none). */
  kernelTrafficOf(realId: number): TrafficCounts;
}

/** The engine's per-real counting without an engine (native/engine/real_stats.h), for tests. */
export interface RealStatsForTests {
  /** A worker's block; returns its index. */
  addWorker(): number;
  /** As the worker counts (one writer). */
  count(worker: number, realId: number, stat: TrafficCountName, value: number): void;
  /** As a read-back of the kernel fast path's counts credits the real. */
  countKernel(realId: number, stat: TrafficCountName, value: number): void;
  /** Every worker stops (as the engine's stop()): their counts stay in the totals. */
  retireWorkers(): void;
  read(realId: number): TrafficCounts;
}

/** What a new connection gets (native/engine/service_table.h, PickOutcome). */
export type PickOutcome = "real" | "fallback" | "noReal" | "realsFull";

/** A service as the data plane builds it, picking with given loads (native/test_surface.cc). */
export interface ServiceForTests {
  /** `loads`: one per real, the fallback last; `real`: the chosen index into them, -1 when none. */
  pick(loads: { active: number; inactive: number }[], client: { ip: string; port: number }, random: number): { outcome: PickOutcome; real: number };
  /** Each real's overload flag as it stands. */
  overloaded(): boolean[];
  /** A new connection's real as a worker schedules it (the client's persistence template in `flows` first), loads 0. */
  schedule(flows: FlowTableForTests, client: { protocol: Protocol; ip: string; port: number }, nowMs: number): { real: string | null; templateRef: number };
  /** What the kernel fast path gets to schedule this service's new connections itself; null: user space schedules them. */
  kernelService(): { pick: "cursor" | "random"; reals: { ip: string; port: number; id: number }[]; slots: string[] } | null;
}

export interface NativeAddon {
  flowLayout(): FlowLayout;
  flowTableBytes(capacity: number): number;
  /** Which frames natlb owns and how the kernel learns it (native/flow/reply_claims.h). */
  replyClaims(): { claimMark: number; renewMark: number; releaseMark: number; lifetimeSeconds: number };
  initializeFlowTable(memory: Uint8Array, capacity: number): void;
  monotonicMs(): number;
  /** Ids of the BPF programs at the tcx ingress of an interface of the caller's network namespace. */
  tcxIngressPrograms(ifname: string): number[];
  /**
   * Who is at the other end of a connected unix socket (SO_PEERCRED and SO_PEERGROUPS, as the kernel
   * recorded them at connect). Throws when `fd` is not a connected unix socket.
   */
  peerCredentials(fd: number): PeerCredentials;
  /** The flow sync's pure message code (native/sync/sync_message.h), for tests and spoofing in e2e tests. */
  syncMessage: {
    encode(header: SyncMessageHeader, records: SyncFlowRecord[], key: Uint8Array): Uint8Array;
    decode(datagram: Uint8Array, key: Uint8Array): SyncDecodeResult;
    counterNames: string[];
    version: number;
    maxRecordsPerDatagram: number;
    maxDatagramBytes: number;
    minKeyBytes: number;
    types: { flows: number; snapshot: number; snapshotEnd: number; snapshotRequest: number };
    recordKinds: { flow: number; template: number };
  };
  FlowTableForTests: new (flowTable: Uint8Array) => FlowTableForTests;
  RealStatsForTests: new () => RealStatsForTests;
  ServiceForTests: new (service: NativeService) => ServiceForTests;
  Engine: new (options: {
    flowTable: Uint8Array; interfaces: NativeInterface[]; coalesceTcp?: boolean; kernelFastPath?: KernelFastPathSetting; workerThreads?: WorkerThreadsSetting;
  }) => NativeEngine;
  packet: {
    parse(frame: Uint8Array): ParseResult;
    /** How the AF_XDP path reads a frame's L4 checksum field: a complete checksum or a partial seed. */
    checksumStateOf(
      frame: Uint8Array,
    ): { ok: true; checksum: ChecksumKind; start?: number; offset?: number } | { ok: false; reason: string };
    rewriteDestination(frame: Uint8Array, to: { ip: string; port: number }, checksum: ChecksumKind): RewriteResult;
    rewriteSource(frame: Uint8Array, from: { ip: string; port: number }, checksum: ChecksumKind): RewriteResult;
    /** The transmit path's merge of MTU TCP segments into one GSO super-frame (for tests). */
    coalesceSegments(frames: Uint8Array[], checksum: ChecksumKind): CoalesceResult;
    /** The workers' translation of an ICMP error that quotes a NAT flow's packet (for tests). */
    translateIcmpError(
      frame: Uint8Array,
      translation: { outerSource?: string; outerDestination?: string; side: "source" | "destination"; ip: string; port: number },
    ): RewriteResult;
    /** The workers' TCP tracking (native/flow/tcp_window.h), for tests. */
    /** midStreamStart: the flow's handshake was not seen here (synced from a peer, or picked up mid-stream). */
    judgeTcpSegment(
      sender: TcpSide, receiver: TcpSide, segment: TcpSegmentFields, options?: { midStreamStart?: boolean },
    ): "track" | "passOnly" | "outOfWindow";
    afterTcpSegment(sender: TcpSide, receiver: TcpSide, segment: TcpSegmentFields): TcpSide;
    afterUntrackedTcpSegment(sender: TcpSide, segment: TcpSegmentFields): TcpSide;
    /** A direct-routing flow's sides after the client's segment; the real's sequence end is the client's latest acknowledgement. */
    clientOnlyTcpSegment(client: TcpSide, real: TcpSide, segment: TcpSegmentFields): { client: TcpSide; real: TcpSide };
    readTcpHeader(frame: Uint8Array): ({ ok: true } & TcpSegmentFields) | { ok: false; reason: string };
    /** The ICMP errors natlb sends as a router (native/packet/icmp_error.h); null when none is due. */
    icmpError(frame: Uint8Array, spec: { type: number; code: number; nextHopMtu: number; source: string }): Uint8Array | null;
    /** The resets natlb sends to the ends of a dead real's connections (native/packet/tcp_reset.h). */
    tcpReset(spec: { sourceIp: string; sourcePort: number; destinationIp: string; destinationPort: number; sequence: number }): Uint8Array;
    /** A reply claim's control frame (native/packet/claim_signal.h). */
    claimSignal(mac: string, tuple: { protocol: Protocol; realIp: string; realPort: number; clientIp: string; clientPort: number }): Uint8Array;
    /** The least-connection family's choice (native/engine/service_table.h): an index into `reals`, or -1. */
    pickLeastLoaded(mode: "lc" | "wlc" | "sed" | "nq", reals: { active: number; inactive: number; weight: number }[]): number;
    /** A direct-routing flow's TCP state after a client segment with `tcpFlags` (native/flow/tcp_state.h). */
    inputOnlyTcpState(state: InputOnlyTcpState, tcpFlags: number): InputOnlyTcpState;
  };
}

/** The package's root: this file runs from dist/src/. */
const PACKAGE_ROOT = join(__dirname, "..", "..");

/** The addon's places, defined once for the loader and the install scripts (scripts/addonLocations.js). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const ADDON_LOCATIONS = require(join(PACKAGE_ROOT, "scripts", "addonLocations.js")) as {
  LOCAL_BUILDS: readonly string[];
  PREBUILT_ADDON: string;
};

/** The prebuilt addon's place in the package, prebuildify-style. */
export const PREBUILT_ADDON: string = ADDON_LOCATIONS.PREBUILT_ADDON;

/** Where the addon may be, in the order they are tried: local builds first, then the prebuild (on linux-x64). */
export function nativeAddonCandidates(root: string = PACKAGE_ROOT): string[] {
  const localBuilds = ADDON_LOCATIONS.LOCAL_BUILDS.map((path) => join(root, path));
  const prebuildFits = process.platform === "linux" && process.arch === "x64";
  return prebuildFits ? [...localBuilds, join(root, PREBUILT_ADDON)] : localBuilds;
}

/** The addon file loadNative() loads, or undefined when there is none. */
export function nativeAddonPath(root: string = PACKAGE_ROOT): string | undefined {
  return nativeAddonCandidates(root).find((path) => existsSync(path));
}

let loaded: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (loaded) return loaded;
  const found = nativeAddonPath();
  if (!found) {
    throw new NatlbError(
      "E_NO_ADDON",
      `the native addon is not built (looked for ${nativeAddonCandidates().join(", ")}): ` +
        "in a checkout run `npm ci` or `npm run build`; in an installed package run `npm rebuild natlb` " +
        "(it needs cmake, g++, make, clang and libbpf-dev)",
    );
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = require(found) as NativeAddon;
  } catch (error) {
    throw new NatlbError(
      "E_ADDON_LOAD",
      `the native addon ${found} does not load here (${(error as Error).message}): ` +
        "run `npm rebuild natlb` to compile it for this machine (it needs cmake, g++, make, clang and libbpf-dev)",
      { cause: error },
    );
  }
  return loaded;
}
