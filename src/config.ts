// The configuration file: schema (zod 4), semantic checks, defaults, and the diff used on reload.
// Every problem is reported as `config: <field path>: <what is wrong, what to write instead>`.

import { readFile } from "node:fs/promises";
import { z } from "zod";
import { isContiguousNetmask, isIPv4, nonUnicastReason, parseIPv4 } from "./addresses";
import { ConfigError, type ConfigIssue } from "./errors";
import { SCHEDULER_FLAGS, schedulerOfFlag, type SchedulerFlag } from "./schedulers/flags";
import { SCHEDULER_NAMES, type SchedulerName } from "./schedulers/types";
import type { BgpConfig } from "./bgp/vipAnnouncer";

// ---------------------------------------------------------------------------------------------
// Resolved types: what the rest of natlb sees, every default filled in.

export type Protocol = "tcp" | "udp";

export interface RealConfig {
  readonly ip: string;
  /** Defaults to the service port. */
  readonly port: number;
  /** 0..65535, default 1; 0 = drained (keeps its connections, gets no new ones). */
  readonly weight: number;
  /** This real's own slow start, seconds (overrides the service's slowStartS). */
  readonly slowStartS?: number;
  /** IPVS's upper threshold (-x): at this many connections (active + inactive) the real takes no new ones; absent: no limit. */
  readonly maxConns?: number;
  /** IPVS's lower threshold (-y): a full real takes new connections again below it; absent: below 3/4 of maxConns. */
  readonly minConnsToResume?: number;
  /** This real's own forwarding, when it differs from its service's (realForwarding reads both). */
  readonly forwarding?: ForwardingMode;
}

/** keepalived's sorry_server: takes new connections when no real can (all down, drained or full). */
export interface FallbackRealConfig {
  readonly ip: string;
  readonly port: number;
}

/** Timing and thresholds every active health check has. */
export interface HealthCheckTiming {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Consecutive successes that bring a down real up. */
  readonly rise: number;
  /** Consecutive failures that take an up real down. */
  readonly fall: number;
  /** Port to probe instead of the real's own port, when set. */
  readonly port: number | undefined;
  /** Keeps a flapping real down for a growing time; undefined: off. */
  readonly flapDamping: FlapDampingConfig | undefined;
}

/**
 * A real that changes state `flaps` times within `windowS` seconds stays down for `holdDownS`
 * seconds, doubling each time it happens again, up to `maxHoldDownS`.
 */
export interface FlapDampingConfig {
  readonly flaps: number;
  readonly windowS: number;
  readonly holdDownS: number;
  readonly maxHoldDownS: number;
}

/** Up when a TCP handshake with the real completes (no data is sent). */
export interface TcpHealthCheckConfig extends HealthCheckTiming {
  readonly type: "tcp";
}

/** Up when a GET of `path` answers with a status in `expectStatus` (and a body matching `bodyMatch`). */
export interface HttpHealthCheckConfig extends HealthCheckTiming {
  readonly type: "http" | "https";
  readonly path: string;
  /** Host header (and TLS server name); default: the real's address. */
  readonly host: string | undefined;
  /** Status codes that count as up, e.g. "200-399" or "200,204" (statusRanges reads them). */
  readonly expectStatus: string;
  /** A regular expression the first 64 KiB of the body must match; undefined: any body. */
  readonly bodyMatch: string | undefined;
  /** https: check the real's certificate against the system's CAs (default false: reals often use their own). */
  readonly verifyTls: boolean;
}

/**
 * Sends `payload` to the real. Without `expect`, up unless the real answers with an ICMP error
 * within the timeout (keepalived's UDP_CHECK); with `expect`, up only when a reply matching it comes.
 */
export interface UdpHealthCheckConfig extends HealthCheckTiming {
  readonly type: "udp";
  /** The datagram, as hex digits (a text payload in the file is converted). */
  readonly payloadHex: string;
  /** A regular expression the reply (read as latin1) must match; undefined: no reply needed. */
  readonly expect: string | undefined;
}

/** Runs `command` (no shell); exit status 0 is up. NATLB_REAL_IP, NATLB_REAL_PORT and NATLB_SERVICE are in its environment. */
export interface ExecHealthCheckConfig extends HealthCheckTiming {
  readonly type: "exec";
  readonly command: ReadonlyArray<string>;
}

export interface NoHealthCheckConfig {
  readonly type: "none";
}

export type ActiveHealthCheckConfig = TcpHealthCheckConfig | HttpHealthCheckConfig | UdpHealthCheckConfig | ExecHealthCheckConfig;

/** Absent in the file means `{ type: "none" }`: reals count as up, as in plain IPVS. */
export type HealthCheckConfig = ActiveHealthCheckConfig | NoHealthCheckConfig;

/** The values of `healthCheck.type`, as the schema checks them. */
export const HEALTH_CHECK_TYPES = ["tcp", "http", "https", "udp", "exec", "none"] as const;

/**
 * What happens to the flows of a real that goes down (health check) or is removed (IPVS's
 * expire_nodest_conn): "keep" lets them go on until they end, like a drained real; "drop" ends them,
 * so a UDP client's next datagram goes to a live real and a TCP connection's next segment is dropped;
 * "reset" also sends a reset to both ends of each TCP connection, so clients fail fast and retry.
 * A real set to weight 0 is drained, not dead: its flows are always kept.
 */
export const DEAD_REAL_FLOWS = ["keep", "drop", "reset"] as const;
export type DeadRealFlows = (typeof DEAD_REAL_FLOWS)[number];

/**
 * Persistence, like `ipvsadm -p TIMEOUT -M NETMASK`: a client (every client of a network with a
 * netmask shorter than /32) sticks to one real across connections and UDP flows, until no connection of
 * it has lived for `timeoutS` (docs/operations.md, "Persistence").
 */
export interface PersistenceConfig {
  readonly timeoutS: number;
  readonly netmask: string;
}

/**
 * How a service's frames reach its reals (docs/operations.md, "Direct routing" and "Full NAT"): "nat"
 * rewrites the destination to the real (LVS-NAT: the replies must come back through natlb); "dr" changes
 * only the destination MAC (LVS-DR: the real holds the VIP itself and answers the client directly);
 * "fullnat" rewrites the source too, to one of natlb's local addresses (DPVS's FNAT: the real answers
 * that address by plain routing).
 */
export const FORWARDING_MODES = ["nat", "dr", "fullnat"] as const;
export type ForwardingMode = (typeof FORWARDING_MODES)[number];

/** How frames reach `real`: its own forwarding, or its service's. */
export function realForwarding(service: { readonly forwarding: ForwardingMode }, real: { readonly forwarding?: ForwardingMode }): ForwardingMode {
  return real.forwarding ?? service.forwarding;
}

/** The forwarding modes a service's reals and fallback real use, each once. */
export function forwardingModesOf(service: { readonly forwarding: ForwardingMode; readonly reals: ReadonlyArray<{ readonly forwarding?: ForwardingMode }> }): Set<ForwardingMode> {
  return new Set([service.forwarding, ...service.reals.map((r) => realForwarding(service, r))]);
}

/** The ports a full-NAT local address offers towards each real, by default: below Linux's ephemeral range. */
export const DEFAULT_LOCAL_PORTS = { first: 1024, last: 32767 } as const;

/**
 * A "fullnat" service's source pool (DPVS's local addresses, "laddr"): the addresses of natlb's own the
 * reals see as the client, and the ports each offers per real (ip, port, protocol).
 */
export interface FullNatConfig {
  readonly localAddresses: ReadonlyArray<string>;
  readonly localPorts: { readonly first: number; readonly last: number };
}

export interface ServiceConfig {
  readonly vip: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly forwarding: ForwardingMode;
  /** Only with forwarding "fullnat": the local addresses and ports new flows come from. */
  readonly fullnat?: FullNatConfig;
  readonly scheduler: SchedulerName;
  /** ipvsadm -b: sh-port / sh-fallback with sh, mh-port / mh-fallback with mh. */
  readonly schedulerFlags: ReadonlyArray<SchedulerFlag>;
  /** mh only: the seed of the Maglev table, shared by the instances behind ECMP (absent: 0). */
  readonly mhSeed?: number;
  /** mh only: a TCP segment without SYN of an unknown flow is picked up (absent: on when bgp is configured; see midStreamPickUpOf). */
  readonly midStreamPickUp?: boolean;
  readonly reals: ReadonlyArray<RealConfig>;
  /** Not health checked (as keepalived's sorry_server); undefined: none, new connections are dropped. */
  readonly fallback: FallbackRealConfig | undefined;
  readonly healthCheck: HealthCheckConfig;
  /** Default: "keep" for TCP services, "drop" for UDP ones (a UDP client has no connection to lose). */
  readonly deadRealFlows: DeadRealFlows;
  /** Seconds over which a real that comes up or is added ramps to its full weight (absent: no ramp). */
  readonly slowStartS?: number;
  /** The service's own idle timeouts; left out (all or some): the global `timeouts`. */
  readonly timeouts?: ServiceTimeouts;
  /** Left out: none, every new connection is scheduled afresh. */
  readonly persistence?: PersistenceConfig;
}

export interface InterfacesConfig {
  /** Interfaces where client traffic to the VIPs arrives. */
  readonly client: ReadonlyArray<string>;
  /** Interfaces that lead to the real servers. */
  readonly backend: ReadonlyArray<string>;
}

/**
 * How an interface receives the frames natlb owns: "af_packet" (rings beside the kernel's stack; needs
 * CAP_NET_RAW only) or "af_xdp" (an XDP program steers them to AF_XDP sockets before the stack; needs
 * CAP_BPF and CAP_NET_ADMIN too, and on a veth it turns the peer's TSO off: for MTU-sized traffic).
 */
export const RECEIVE_PATHS = ["af_packet", "af_xdp"] as const;
export type ReceivePath = (typeof RECEIVE_PATHS)[number];

export interface ReceivePathConfig {
  /** For every interface not named in `interfaces`. */
  readonly default: ReceivePath;
  readonly interfaces: Readonly<Record<string, ReceivePath>>;
}

/** Idle timeouts per connection state, in seconds (defaults are IPVS's). */
export interface Timeouts {
  readonly tcpEstablished: number;
  readonly tcpSynRecv: number;
  readonly tcpFinWait: number;
  readonly tcpTimeWait: number;
  readonly tcpClose: number;
  readonly udp: number;
}

/**
 * How the flow map gives way to floods. Flows that have not proven themselves (TCP before its handshake
 * completes, UDP before the real replied and the client talked on for 2 s) are "unassured": each class
 * may hold at most its share of the map (a new one evicts an older one of its class), a nearly full map
 * evicts them to make room, and above `pressureAt` of the map in use they expire after
 * `pressureTimeout` seconds idle. Established connections are never evicted.
 */
export interface FloodProtection {
  /** Share of the flow map that TCP connections still in their handshake may hold (0.05..1). */
  readonly halfOpenShare: number;
  /** Share of the flow map that unassured UDP flows may hold (0.05..1). */
  readonly unassuredUdpShare: number;
  /** Share of the flow map in use from which unassured flows get the short timeout (0..1). */
  readonly pressureAt: number;
  /** The short idle timeout of unassured flows under pressure, seconds. */
  readonly pressureTimeout: number;
}

/** A service's own timeouts: each state it names overrides the global one, the others follow it. */
export type ServiceTimeouts = Partial<Timeouts>;

/** The timeouts a service's flows follow: its own where it has them, the global ones elsewhere. */
export function effectiveTimeouts(service: ServiceConfig, global: Timeouts): Timeouts {
  return { ...global, ...service.timeouts };
}

/** Whether any of the service's own timeouts is not the global one. */
export function differsFromGlobal(service: ServiceConfig, global: Timeouts): boolean {
  return Object.entries(service.timeouts ?? {}).some(([state, seconds]) => global[state as keyof Timeouts] !== seconds);
}

export const DEFAULT_FLOOD_PROTECTION: FloodProtection = Object.freeze({
  halfOpenShare: 0.5,
  unassuredUdpShare: 0.5,
  pressureAt: 0.5,
  pressureTimeout: 5,
});

/** A group by name (looked up at start, NSS included) or by numeric gid. */
export type GroupRef = string | number;

/**
 * The control socket's two roles: read (status, conns, health, metrics) and admin (every change).
 * root and the daemon's own user are always admin. The socket file's group is readGroup (else
 * adminGroup), so the file permissions admit exactly the peers that may hold a role.
 */
export interface ControlAccessConfig {
  /** Members may use the read routes; undefined: only admins may. */
  readonly readGroup: GroupRef | undefined;
  /** Members may use every route; undefined: only root and the daemon's user may. */
  readonly adminGroup: GroupRef | undefined;
}

export interface MetricsConfig {
  /** IPv4 address and port of the HTTP listener. */
  readonly listen: string;
  /** A listen address outside 127.0.0.0/8 is refused unless this is true. */
  readonly allowNonLoopback: boolean;
}

/** The default UDP port of the flow sync (config sync.listen without a port). */
export const DEFAULT_SYNC_PORT = 8848;

/** An IPv4 address and UDP port. */
export interface SyncEndpoint {
  readonly ip: string;
  readonly port: number;
}

/**
 * The flow sync (README "Flow sync"): this instance streams its flow creations and state changes to its
 * peers and applies theirs, authenticated with the shared key in keyFile.
 */
export interface SyncConfig {
  /** Where this instance receives the peers' datagrams (and sends from). */
  readonly listen: SyncEndpoint;
  /** Peers by unicast address (their listen addresses). */
  readonly peers: ReadonlyArray<SyncEndpoint>;
  /** And/or a multicast group on one interface (datagrams go to the group at the listen port). */
  readonly multicast: { readonly group: string; readonly interface: string } | undefined;
  /** A file holding the shared key (>= 32 bytes; not readable by others). */
  readonly keyFile: string;
  /** Established flows with traffic are sent again this often (seconds), so the peers' copies live on. */
  readonly refreshS: number;
}

export interface NatlbConfig {
  readonly services: ReadonlyArray<ServiceConfig>;
  /** Undefined: derive the interfaces from the routes to the VIPs' clients and the reals. */
  readonly interfaces: InterfacesConfig | undefined;
  readonly flowCapacity: number;
  readonly timeouts: Timeouts;
  readonly floodProtection: FloodProtection;
  /** Control socket path; undefined: the per-network-namespace default (see defaultSocketPath). */
  readonly socket: string | undefined;
  /** Who may use the control socket, by role (src/control/roles.ts). */
  readonly control: ControlAccessConfig;
  /** Prometheus metrics over HTTP on this address; undefined: no HTTP listener (GET /metrics on the control socket still answers). */
  readonly metrics: MetricsConfig | undefined;
  readonly receivePath: ReceivePathConfig;
  readonly kernelFastPath: KernelFastPathSetting;
  /** With the kernel fast path: whether it schedules new connections itself, for the services that allow it. */
  readonly kernelScheduling: boolean;
  readonly workerThreads: WorkerThreadsSetting;
  /** Announce the served VIPs through BIRD (scale-out behind ECMP); undefined: no announcement. */
  readonly bgp: BgpConfig | undefined;
  /** The flow sync with peers; undefined: none. */
  readonly sync: SyncConfig | undefined;
  /** An active/backup pair with keepalived (src/ha); undefined: a lone gateway, always master. */
  readonly ha: HaConfig | undefined;
}

/** The roles keepalived's notify script (or `natlb ha`) can give a gateway of a pair. */
export const HA_INITIAL_ROLES = ["master", "backup"] as const;

export interface HaConfig {
  /** The role until keepalived (`natlb ha notify`) or `natlb ha` says otherwise. */
  readonly initialRole: (typeof HA_INITIAL_ROLES)[number];
  /** Gratuitous ARP rounds for every VIP when this gateway becomes master, and the pause between them. */
  readonly gratuitousArpRounds: number;
  readonly gratuitousArpIntervalMs: number;
}

/**
 * Whether established TCP flows are forwarded by the kernel (a TC program natlb attaches at tcx
 * ingress, Linux 6.6+, CAP_BPF and CAP_NET_ADMIN) instead of being copied through user space.
 * "auto" (the default): on when the capabilities and the kernel allow it, else user space with one
 * log line saying why; true: natlb refuses to start without it; false: user space only (natlb then
 * needs CAP_NET_RAW only).
 */
export type KernelFastPathSetting = "auto" | boolean;

/**
 * How many threads move the frames user space handles. "one": one for every interface (a reply that
 * arrives while natlb's send is still in the kernel is handled without waking another thread: fastest
 * for connection set-up and tear-down); "perInterface": one per interface (the two directions of a
 * user-space bulk transfer in parallel); "auto" (the default): "one" while the kernel fast path runs,
 * "perInterface" when user space carries every byte.
 */
export type WorkerThreadsSetting = (typeof WORKER_THREADS_SETTINGS)[number];
/** The values of `workerThreads`, as the schema checks them. */
export const WORKER_THREADS_SETTINGS = ["auto", "one", "perInterface"] as const;
/** What a running natlb has: "auto" resolved at start. */
export type WorkerLayout = Exclude<WorkerThreadsSetting, "auto">;

export const DEFAULT_TIMEOUTS: Timeouts = Object.freeze({
  tcpEstablished: 900,
  tcpSynRecv: 60,
  tcpFinWait: 120,
  tcpTimeWait: 120,
  tcpClose: 10,
  udp: 300,
});

export const CONFIG_LIMITS = Object.freeze({
  maxServices: 1024,
  maxRealsPerService: 256,
  minFlowCapacity: 16,  // the data plane's minimum; small maps are for tests and tiny gateways
  maxFlowCapacity: 16777216,
  defaultFlowCapacity: 262144,
  /** Timeouts in ms must fit a signed 32-bit integer (setTimeout, native timers). */
  maxTimeoutSeconds: 2147483,
  /** Slow start beyond an hour is a misconfiguration, not a ramp. */
  maxSlowStartS: 3600,
  /** Different sets of service timeouts (the data plane's timeout profiles, native/flow/timeout_profiles.h). */
  maxServiceTimeoutSets: 255,
  /** Flow sync peers (each gets every datagram). */
  maxSyncPeers: 16,
  /** A month, as the data plane takes it (native/addon.cc). */
  maxPersistenceTimeoutSeconds: 2678400,
  /** maxConns and minConnsToResume: the data plane counts a real's connections in 32 bits. */
  maxConnsLimit: 4294967295,
});

// ---------------------------------------------------------------------------------------------
// Schema helpers: each field knows what it expects, so messages read "expected X, got Y".

function show(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return JSON.stringify(value);
  return String(value);
}

/** Message for a field expecting `expected`; a missing value is reported as missing. */
function expecting(expected: string): (issue: { input?: unknown }) => string {
  return (issue) =>
    issue.input === undefined ? `missing: expected ${expected}` : `expected ${expected}, got ${show(issue.input)}`;
}

function intIn(min: number, max: number) {
  const error = expecting(`an integer ${min}..${max}`);
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

const port = () => intIn(1, 65535);

function ipv4(role: string) {
  const error = expecting(`an IPv4 address like 198.18.0.100 for the ${role}`);
  return z
    .string({ error })
    .superRefine((s, ctx) => {
      if (!isIPv4(s)) {
        ctx.addIssue({ code: "custom", message: error({ input: s }) });
        return;
      }
      const why = nonUnicastReason(s);
      if (why !== undefined) ctx.addIssue({ code: "custom", message: `${s} ${why}: use a unicast address` });
    });
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: expecting(`one of ${values.map((v) => JSON.stringify(v)).join(", ")}`) });
}

/** Linux interface names: 1..15 bytes (IFNAMSIZ - 1), no slash, colon or whitespace. */
const interfaceName = z
  .string({ error: expecting("an interface name like \"eth0\"") })
  .regex(/^[^/:\s]{1,15}$/, { error: expecting("an interface name of 1..15 characters without '/', ':' or spaces") })
  .refine((s) => s !== "." && s !== "..", { error: expecting("an interface name") });

/** A group name as groupadd allows it, or a numeric gid. */
function groupRef(role: string) {
  const error = expecting(`the ${role} role's group: a group name like "natlb-${role}" or a numeric gid`);
  return z.union(
    [
      z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/, { error }),
      z.number({ error }).int({ error }).min(0, { error }).max(0xfffffffe, { error }),
    ],
    { error },
  );
}

/** 127.0.0.0/8. */
function isLoopback(ip: string): boolean {
  return ip.split(".")[0] === "127";
}

/** `minimum` 0: the list may be empty (no backend interface: one-armed direct routing). */
function interfaceList(side: string, minimum: 0 | 1) {
  return z
    .array(interfaceName, { error: expecting(`a list of ${side} interface names like ["eth0"]`) })
    .min(minimum, { error: `list at least one ${side} interface, or leave out "interfaces" to derive them from routes` })
    .refine((names) => new Set(names).size === names.length, { error: "lists an interface twice: remove the duplicate" });
}

/** Slow start's length, seconds: 0 (none) up to an hour. */
function absolutePath(what: string, example: string) {
  return z
    .string({ error: expecting(`an absolute path like "${example}" (${what})`) })
    .refine((p) => p.startsWith("/") && !p.includes("\0"), { error: expecting(`an absolute path like "${example}" (${what})`) });
}

function slowStartSeconds() {
  return intIn(0, CONFIG_LIMITS.maxSlowStartS);
}

/** One real server as the config and the control socket's POST /reals take it. */
export const realSchema = z.strictObject({
  ip: ipv4("real server").meta({
    description: "The real server's address (RIP). It must be unicast and must not be a VIP of any service.",
    examples: ["198.18.1.11"],
  }),
  port: port().optional().describe("The real server's port (rport). Default: the service port."),
  weight: intIn(0, 65535)
    .default(1)
    .describe("Relative share of new connections. 0 drains the real: it keeps its connections and gets no new ones."),
  slowStartS: slowStartSeconds().optional().describe("This real's own slow start, seconds; overrides the service's slowStartS (0: none)."),
  maxConns: intIn(1, CONFIG_LIMITS.maxConnsLimit)
    .optional()
    .describe(
      "Connection limit (ipvsadm -x, keepalived uthreshold): once the real has this many connections (active + inactive, as ipvsadm counts them) it gets no new ones until they fall below minConnsToResume. Left out: no limit.",
    ),
  minConnsToResume: intIn(1, CONFIG_LIMITS.maxConnsLimit)
    .optional()
    .describe(
      "With maxConns (ipvsadm -y, keepalived lthreshold): a real that reached maxConns takes new connections again once it has fewer than this many. At most maxConns. Left out: fewer than 3/4 of maxConns.",
    ),
  forwarding: oneOf(FORWARDING_MODES)
    .optional()
    .describe(
      'This real\'s own forwarding mode, overriding its service\'s "forwarding" (same rules: a "dr" real on a link natlb works on and on the service port; a "fullnat" real needs the service\'s "fullnat" source pool). Left out: the service\'s.',
    ),
}).superRefine((r, ctx) => {
  if (r.minConnsToResume === undefined) return;
  if (r.maxConns === undefined) {
    ctx.addIssue({ code: "custom", path: ["minConnsToResume"], message: "minConnsToResume needs maxConns: set maxConns too, or remove minConnsToResume" });
  } else if (r.minConnsToResume > r.maxConns) {
    ctx.addIssue({
      code: "custom",
      path: ["minConnsToResume"],
      message: `${r.minConnsToResume} is more than maxConns ${r.maxConns}: a full real resumes below minConnsToResume, so it must be at most maxConns`,
    });
  }
});

/** The fallback real (keepalived's sorry_server), as the config takes it. */
const fallbackRealSchema = z.strictObject(
  {
    ip: ipv4("fallback real").meta({ description: "The fallback real's address. It must be unicast and must not be a VIP of any service.", examples: ["198.18.1.30"] }),
    port: port().optional().describe("The fallback real's port. Default: the service port."),
  },
  { error: expecting('an object like { "ip": "198.18.1.30", "port": 8080 }') },
);

/** Fields that only some check types take, and which. */
const TYPE_FIELDS = {
  path: ["http", "https"], host: ["http", "https"], expectStatus: ["http", "https"], bodyMatch: ["http", "https"],
  verifyTls: ["http", "https"], payload: ["udp"], payloadHex: ["udp"], expect: ["udp"], command: ["exec"],
} as const satisfies Record<string, ReadonlyArray<(typeof HEALTH_CHECK_TYPES)[number]>>;

function regex(what: string) {
  return z.string({ error: expecting(`${what} as a regular expression string`) }).superRefine((text, ctx) => {
    try {
      new RegExp(text);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: `not a valid regular expression (${(error as Error).message}): fix or escape it` });
    }
  });
}

/** "200-399,404" -> [[200, 399], [404, 404]]; undefined when the text is not such a list. */
export function statusRanges(text: string): Array<[number, number]> | undefined {
  const ranges: Array<[number, number]> = [];
  for (const part of text.split(",")) {
    const m = /^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$/.exec(part);
    const low = Number(m?.[1]);
    const high = Number(m?.[2] ?? m?.[1]);
    if (!m || low < 100 || high > 599 || low > high) return undefined;
    ranges.push([low, high]);
  }
  return ranges;
}

const statusRangesText = z
  .string({ error: expecting('status codes like "200-399" or "200,204,301-302"') })
  .refine((text) => statusRanges(text) !== undefined, {
    error: (iss) => `expected status codes 100..599 like "200-399" or "200,204", got ${show(iss.input)}`,
  });

const flapDampingSchema = z
  .strictObject(
    {
      flaps: intIn(2, 100).default(4).describe("State changes within windowS that count as flapping."),
      windowS: intIn(1, 86_400).default(60).describe("Seconds over which state changes are counted."),
      holdDownS: intIn(1, 86_400).default(30).describe("Seconds a flapping real stays down the first time; doubled each time it flaps again."),
      maxHoldDownS: intIn(1, 86_400).default(600).describe("The longest hold-down."),
    },
    { error: expecting('an object like { "flaps": 4, "windowS": 60, "holdDownS": 30 }') },
  )
  .refine((f) => f.maxHoldDownS >= f.holdDownS, { path: ["maxHoldDownS"], error: "must be at least holdDownS" });

const healthCheckSchema = z
  .strictObject(
    {
      type: oneOf(HEALTH_CHECK_TYPES)
        .optional()
        .describe(
          '"tcp" opens a connection to the real and closes it once the handshake completes (no data is sent); "http"/"https" GET `path` and check the status; "udp" sends `payload` and checks for an ICMP error or the `expect`ed reply; "exec" runs `command`; "none" turns checking off. Default: "tcp" for TCP services, "udp" for UDP services.',
        ),
      intervalMs: intIn(100, 3_600_000).default(1000).describe("Milliseconds between two checks of one real."),
      timeoutMs: intIn(10, 600_000).default(500).describe("Milliseconds a check may take before it counts as failed."),
      rise: intIn(1, 100).default(2).describe("Consecutive successes that bring a down real up."),
      fall: intIn(1, 100).default(2).describe("Consecutive failures that take an up real down."),
      port: port().optional().describe("Port to probe instead of the real's own port."),
      flapDamping: flapDampingSchema.optional().describe("Keep a real that keeps changing state down, for a time that doubles each time (off when left out)."),
      path: z
        .string({ error: expecting('a path like "/healthz"') })
        .regex(/^\/[\x21-\x7e]*$/, { error: 'expected a path starting with "/" (no spaces or control characters)' })
        .optional()
        .describe('http/https: the path to GET. Default "/".'),
      host: z
        .string({ error: expecting("a host name") })
        .regex(/^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$/, { error: "expected a host name like \"www.example.com\"" })
        .optional()
        .describe("http/https: the Host header and TLS server name. Default: the real's address."),
      expectStatus: statusRangesText.optional().describe('http/https: status codes that count as up. Default "200-399".'),
      bodyMatch: regex("bodyMatch").optional().describe("http/https: a regular expression the first 64 KiB of the body must match."),
      verifyTls: z.boolean({ error: expecting("true or false") }).optional().describe("https: check the real's certificate (default false)."),
      payload: z.string({ error: expecting("text to send") }).max(1400).optional().describe("udp: the datagram to send, as text. Default: empty."),
      payloadHex: z
        .string({ error: expecting("hex digits") })
        .regex(/^([0-9a-fA-F]{2}){0,1400}$/, { error: "expected an even number of hex digits (at most 1400 bytes)" })
        .optional()
        .describe("udp: the datagram to send, as hex (instead of payload)."),
      expect: regex("expect").optional().describe("udp: a regular expression the reply must match; set, a reply is required."),
      command: z
        .array(z.string({ error: expecting("a string") }).min(1), { error: expecting('a command as a list like ["/usr/local/bin/check", "--quick"]') })
        .min(1, { error: "expected at least the program to run" })
        .refine((argv) => argv[0]!.startsWith("/"), { error: "the program must be an absolute path: natlb runs it without a shell or PATH" })
        .optional()
        .describe("exec: the program (absolute path) and its arguments; run without a shell. Exit status 0 means up."),
    },
    { error: expecting('an object like { "type": "tcp", "intervalMs": 1000 }') },
  )
  .superRefine((hc, ctx) => {
    for (const [field, types] of Object.entries(TYPE_FIELDS)) {
      if (hc[field as keyof typeof hc] === undefined) continue;
      if (hc.type === undefined || !(types as ReadonlyArray<string>).includes(hc.type)) {
        ctx.addIssue({
          code: "custom",
          path: [field],
          message: `${field} belongs to ${types.map((t) => `"${t}"`).join(" and ")} checks: set "type" to ${types.map((t) => `"${t}"`).join(" or ")}, or remove it`,
        });
      }
    }
    // false is the resolved default of every http check, so only a true is out of place there.
    if (hc.type === "http" && hc.verifyTls === true) {
      ctx.addIssue({ code: "custom", path: ["verifyTls"], message: 'verifyTls checks certificates: set "type" to "https", or remove it' });
    }
    if (hc.type === "exec" && hc.command === undefined) ctx.addIssue({ code: "custom", path: ["command"], message: 'missing: an exec check needs "command"' });
    if (hc.payload !== undefined && hc.payloadHex !== undefined) {
      ctx.addIssue({ code: "custom", path: ["payloadHex"], message: "give payload or payloadHex, not both" });
    }
  });

type ParsedHealthCheck = z.output<typeof healthCheckSchema>;


const netmask = z
  .string({ error: expecting("a netmask like 255.255.255.0") })
  .superRefine((s, ctx) => {
    if (!isIPv4(s)) ctx.addIssue({ code: "custom", message: `expected a netmask like 255.255.255.0, got ${show(s)}` });
    else if (!isContiguousNetmask(parseIPv4(s))) {
      ctx.addIssue({ code: "custom", message: `${s} is not a contiguous netmask: use leading ones then zeros, like 255.255.255.0 (a /24)` });
    }
  });

const persistenceSchema = z.strictObject(
  {
    timeoutS: intIn(1, CONFIG_LIMITS.maxPersistenceTimeoutSeconds).describe(
      "How long a client stays bound to its real once it has no live connection (ipvsadm -p), seconds. While a connection of it lives (offloaded to the kernel fast path or not), its binding lives too.",
    ),
    netmask: netmask
      .default("255.255.255.255")
      .describe("Which clients share a binding (ipvsadm -M): the client address masked with it. 255.255.255.0: every client of a /24 goes to the same real."),
  },
  { error: expecting('a persistence object like { "timeoutS": 300, "netmask": "255.255.255.255" }') },
);

const fullNatSchema = z
  .strictObject(
    {
      localAddresses: z
        .array(ipv4("full-NAT local address"), { error: expecting('a list of natlb\'s own addresses like ["198.18.1.2"]') })
        .min(1, { error: 'names no address: list at least one of natlb\'s own addresses on the reals\' side, like ["198.18.1.2"]' })
        .max(64, { error: "more than 64 local addresses: 64 x the port range is plenty per real" })
        .refine((a) => new Set(a).size === a.length, { error: "lists an address twice: remove the duplicate" })
        .describe(
          "natlb's own addresses the reals see as the client (DPVS's local addresses). Each must be an address of an interface natlb works on (the kernel answers ARP for it), reachable from the reals; natlb picks one per new flow, the next one when the first has no free port towards the real.",
        ),
      localPorts: z
        .strictObject(
          {
            first: intIn(1, 65535).describe("The lowest port."),
            last: intIn(1, 65535).describe("The highest port."),
          },
          { error: expecting('a port range like { "first": 1024, "last": 32767 }') },
        )
        .refine((r) => r.first <= r.last, { error: '"first" is above "last": swap them' })
        .optional()
        .describe(
          `The ports each local address offers towards each real (ip, port, protocol): that many flows at once per real and local address; a new flow that finds none free is dropped (counted as dropFullnatPortsExhausted). Default ${DEFAULT_LOCAL_PORTS.first}..${DEFAULT_LOCAL_PORTS.last}: below Linux's ephemeral range, so natlb's own connections (health checks) from the same address never take a port a flow has.`,
        ),
    },
    { error: expecting('a full-NAT pool like { "localAddresses": ["198.18.1.2"] }') },
  )
  .describe('With "forwarding": "fullnat" (required there, refused otherwise): the source pool, DPVS\'s local addresses.');

/** The service's check with its defaults: a check without a type follows the service's protocol. */
function resolveHealthCheck(hc: ParsedHealthCheck | undefined, protocol: Protocol): HealthCheckConfig {
  if (hc === undefined) return { type: "none" };
  const type = hc.type ?? protocol;
  if (type === "none") return { type: "none" };
  const timing: HealthCheckTiming = {
    intervalMs: hc.intervalMs, timeoutMs: hc.timeoutMs, rise: hc.rise, fall: hc.fall, port: hc.port, flapDamping: hc.flapDamping,
  };
  switch (type) {
    case "tcp":
      return { type, ...timing };
    case "http":
    case "https":
      return {
        type, ...timing, path: hc.path ?? "/", host: hc.host, expectStatus: hc.expectStatus ?? "200-399", bodyMatch: hc.bodyMatch,
        verifyTls: hc.verifyTls ?? false,
      };
    case "udp":
      return {
        type, ...timing, expect: hc.expect,
        payloadHex: (hc.payloadHex ?? Buffer.from(hc.payload ?? "", "utf8").toString("hex")).toLowerCase(),
      };
    case "exec":
      return { type, ...timing, command: hc.command! };
  }
}

const timeoutSeconds = intIn(1, CONFIG_LIMITS.maxTimeoutSeconds);

/** What each timeout is, for the global `timeouts` and a service's own. */
const TIMEOUT_DESCRIPTIONS: Readonly<Record<keyof Timeouts, string>> = {
  tcpEstablished: "Idle timeout of an established TCP connection, seconds.",
  tcpSynRecv: "Idle timeout of a TCP connection in its handshake, seconds.",
  tcpFinWait: "Idle timeout after the first FIN, seconds.",
  tcpTimeWait: "How long a closed TCP connection's flow stays in TIME_WAIT, seconds.",
  tcpClose: "How long a reset TCP connection's flow stays, seconds.",
  udp: "Idle timeout of a UDP flow, seconds.",
};

const timeoutsSchema = z
  .strictObject(
    {
      tcpEstablished: timeoutSeconds.default(DEFAULT_TIMEOUTS.tcpEstablished).describe(TIMEOUT_DESCRIPTIONS.tcpEstablished),
      tcpSynRecv: timeoutSeconds.default(DEFAULT_TIMEOUTS.tcpSynRecv).describe(TIMEOUT_DESCRIPTIONS.tcpSynRecv),
      tcpFinWait: timeoutSeconds.default(DEFAULT_TIMEOUTS.tcpFinWait).describe(TIMEOUT_DESCRIPTIONS.tcpFinWait),
      tcpTimeWait: timeoutSeconds.default(DEFAULT_TIMEOUTS.tcpTimeWait).describe(TIMEOUT_DESCRIPTIONS.tcpTimeWait),
      tcpClose: timeoutSeconds.default(DEFAULT_TIMEOUTS.tcpClose).describe(TIMEOUT_DESCRIPTIONS.tcpClose),
      udp: timeoutSeconds.default(DEFAULT_TIMEOUTS.udp).describe(TIMEOUT_DESCRIPTIONS.udp),
    },
    { error: expecting('an object of timeouts in seconds like { "tcpEstablished": 900 }') },
  )
  .prefault({})
  .describe("Idle timeouts per connection state, in seconds (the defaults are IPVS's).");

const inherited = " Left out: the global timeouts' value.";
const serviceTimeoutsSchema = z
  .strictObject(
    {
      tcpEstablished: timeoutSeconds.optional().describe(TIMEOUT_DESCRIPTIONS.tcpEstablished + inherited),
      tcpSynRecv: timeoutSeconds.optional().describe(TIMEOUT_DESCRIPTIONS.tcpSynRecv + inherited),
      tcpFinWait: timeoutSeconds.optional().describe(TIMEOUT_DESCRIPTIONS.tcpFinWait + inherited),
      tcpTimeWait: timeoutSeconds.optional().describe(TIMEOUT_DESCRIPTIONS.tcpTimeWait + inherited),
      tcpClose: timeoutSeconds.optional().describe(TIMEOUT_DESCRIPTIONS.tcpClose + inherited),
      udp: timeoutSeconds.optional().describe(TIMEOUT_DESCRIPTIONS.udp + inherited),
    },
    { error: expecting('an object of timeouts in seconds like { "udp": 30 }') },
  )
  .describe(
    "This service's own idle timeouts, overriding the global timeouts for its flows (from their creation; a change applies to the flows it has). A state left out follows the global value, also when that changes.",
  );

/** The service's own timeouts, only those it names; nothing when it names none. */
function ownTimeouts(parsed: z.output<typeof serviceTimeoutsSchema> | undefined): { timeouts?: ServiceTimeouts } {
  if (parsed === undefined) return {};
  const named = Object.fromEntries(Object.entries(parsed).filter(([, seconds]) => seconds !== undefined)) as ServiceTimeouts;
  return Object.keys(named).length > 0 ? { timeouts: named } : {};
}

/** One service as the config and the control socket's POST /services take it. */
export const serviceSchema = z
  .strictObject(
    {
      vip: ipv4("virtual IP").meta({
        description:
          "The virtual IP (VIP) clients connect to. It must not be an address of the gateway: natlb answers ARP for it itself, and the kernel set-up adds a blackhole route for it.",
        examples: ["198.18.0.100"],
      }),
      port: port().describe("The service port on the VIP (vport)."),
      protocol: oneOf(["tcp", "udp"] as const).default("tcp").describe("The service's transport protocol."),
      forwarding: oneOf(FORWARDING_MODES)
        .default("nat")
        .describe(
          'How frames reach the reals: "nat" (LVS-NAT) rewrites the destination to the real, and the replies must be routed back through natlb; "dr" (direct routing, LVS-DR) changes only the destination MAC, so the real, which holds the VIP on a non-ARPing interface, answers the client directly. A "dr" real must be on a link natlb works on (a directly connected subnet of one of its interfaces), and its port must be the service port. Established "dr" flows go to the kernel fast path too, which then changes only the MACs. "fullnat" (DPVS\'s FNAT) rewrites the source too, to a local address and port of natlb\'s ("fullnat"), so the reals answer natlb by plain routing and need no route through it; Established "fullnat" flows go to the kernel fast path too, which rewrites both endpoints.',
        ),
      fullnat: fullNatSchema.optional(),
      scheduler: oneOf(SCHEDULER_NAMES)
        .default("wrr")
        .describe(
          "How a new connection picks its real: rr (round robin), wrr (smooth weighted round robin), random, wrandom (weighted random), sh (hash of the client address), mh (Maglev hash of the client address, M = 65537: few clients move when a real goes); IPVS's least-connection family, from each real's live connections (A active, I inactive) and weight W: lc (fewest 256A+I), wlc (fewest (256A+I)/W), sed (fewest (A+1)/W), nq (an idle real first, else as sed).",
        ),
      schedulerFlags: z
        .array(oneOf(SCHEDULER_FLAGS), { error: expecting('a list of scheduler flags like ["mh-port"]') })
        .refine((flags) => new Set(flags).size === flags.length, { error: "lists a flag twice: remove the duplicate" })
        .default([])
        .describe(
          'Flags of the hash schedulers, like ipvsadm -b: "sh-port" / "mh-port" hash the client port with the client address, so one client\'s connections spread over the reals; "sh-fallback" / "mh-fallback" send the clients of a real that is full (maxConns) to the next real of the table, where without the flag they go to the fallback real or are dropped. sh-* flags need scheduler "sh", mh-* flags "mh".',
        ),
      mhSeed: intIn(0, 0xffffffff)
        .optional()
        .describe(
          'Scheduler "mh" only: the seed of the Maglev table. Instances behind ECMP that share it (and the reals, weights and health) send every new connection to the same real. Left out: 0.',
        ),
      midStreamPickUp: z
        .boolean({ error: expecting("true or false") })
        .optional()
        .describe(
          'Scheduler "mh" only, not with "fullnat": a TCP segment without SYN whose connection natlb does not know (it began on another instance behind ECMP, which went away or came back) gets a flow to the real the hash picks, instead of being dropped (dropNoFlow). Such a flow is counted (midStreamPickUps), stays unassured until the client still sends 2 s later (evicted first under a flood), and its TCP tracking starts mid-stream. Left out: on for TCP "mh" services when bgp is configured, off otherwise (UDP needs none: any datagram starts a flow).',
        ),
      reals: z
        .array(realSchema, { error: expecting('a list of real servers like [{ "ip": "198.18.1.11" }]') })
        .max(CONFIG_LIMITS.maxRealsPerService, {
          error: (iss) =>
            `${Array.isArray(iss.input) ? iss.input.length : "too many"} real servers: at most ${CONFIG_LIMITS.maxRealsPerService} per service; split them over several VIPs`,
        })
        .describe("The real servers behind the VIP. A connection keeps its real for its whole life."),
      fallback: fallbackRealSchema
        .optional()
        .describe(
          "A fallback real (keepalived's sorry_server): it takes new connections when every real is down, drained (weight 0) or full (maxConns). It is not health checked. Left out: such connections are dropped (counted as dropNoReal, or dropRealsFull when the reals are full).",
        ),
      healthCheck: healthCheckSchema
        .optional()
        .describe("Active health check of the reals (keepalived's checkers). Left out: none, and the reals count as up, as in plain IPVS."),
      deadRealFlows: oneOf(DEAD_REAL_FLOWS)
        .optional()
        .describe(
          'What happens to the flows of a real that goes down or is removed (IPVS\'s expire_nodest_conn): "keep" lets them go on until they end; "drop" ends them (a UDP client\'s next datagram goes to a live real); "reset" ends them and resets both ends of each TCP connection, so clients fail fast and retry. Default: "keep" for TCP services, "drop" for UDP ones. A real at weight 0 is drained, not dead: its flows always go on.',
        ),
      slowStartS: slowStartSeconds()
        .optional()
        .describe(
          "Slow start, seconds: a real that comes up (health check), is added, or gets a weight again after 0 ramps from a small share of its weight to all of it over this time, in steps (10, or one a second when shorter), rebuilding only this service's table. Works with every scheduler (rr, random and lc ramp as their weighted forms wrr, wrandom and wlc while a ramp runs). Left out or 0: none.",
        ),
      timeouts: serviceTimeoutsSchema.optional(),
      persistence: persistenceSchema
        .optional()
        .describe(
          "Persistence, like ipvsadm -p TIMEOUT -M NETMASK: a client sticks to one real across connections and UDP flows. A real that goes down or leaves the service loses its persistent clients (their next connection is scheduled afresh); a drained real (weight 0) keeps them until their binding times out, as IPVS does by default. Left out: none.",
        ),
    },
    { error: expecting('a service object like { "vip": "198.18.0.100", "port": 80, "reals": [...] }') },
  )
  .superRefine((s, ctx) => {
    // A real's own "forwarding" overrides the service's: the rules below hold for each real's mode.
    const modes = forwardingModesOf(s);
    if (modes.has("fullnat")) {
      if (s.fullnat === undefined) {
        const where = s.forwarding === "fullnat" ? `a "fullnat" service` : `a service with a "fullnat" real (reals[${s.reals.findIndex((r) => r.forwarding === "fullnat")}])`;
        ctx.addIssue({
          code: "custom",
          path: ["fullnat"],
          message: `missing: ${where} needs its source pool, like "fullnat": { "localAddresses": ["198.18.1.2"] } (addresses of natlb's own on the reals' side)`,
        });
      }
    } else if (s.fullnat !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["fullnat"],
        message: `a source pool is only for "forwarding": "fullnat" (this service's is "${s.forwarding}", and no real's): remove "fullnat" or set "forwarding": "fullnat"`,
      });
    }
    // The frame reaches a "dr" real unchanged: it can only be for the port the client sent it to.
    s.reals.forEach((r, j) => {
      if (realForwarding(s, r) === "dr" && r.port !== undefined && r.port !== s.port) {
        ctx.addIssue({
          code: "custom",
          path: ["reals", j, "port"],
          message: `a "dr" real receives the client's frame unchanged, on the service port ${s.port}: remove "port" or set it to ${s.port} (or use "forwarding": "nat")`,
        });
      }
    });
    if (s.forwarding === "dr") {
      if (s.fallback?.port !== undefined && s.fallback.port !== s.port) {
        ctx.addIssue({
          code: "custom",
          path: ["fallback", "port"],
          message: `a "dr" fallback real receives the client's frame unchanged, on the service port ${s.port}: remove "port" or set it to ${s.port}`,
        });
      }
    }
    if (s.scheduler !== "mh") {
      for (const field of ["mhSeed", "midStreamPickUp"] as const) {
        if (s[field] !== undefined && (field !== "midStreamPickUp" || s[field] === true)) {
          ctx.addIssue({
            code: "custom",
            path: [field],
            message: `"${field}" needs scheduler "mh" (only a consistent hash finds the real another instance chose), and this service's scheduler is "${s.scheduler}": set "scheduler": "mh", or remove "${field}"`,
          });
        }
      }
    }
    if (s.midStreamPickUp === true && (s.forwarding === "fullnat" || s.reals.some((r) => r.forwarding === "fullnat"))) {
      ctx.addIssue({
        code: "custom",
        path: ["midStreamPickUp"],
        message: `a "fullnat" connection cannot move between instances: its real knows it by the first instance's local address and port. Remove "midStreamPickUp", or the "fullnat" forwarding (of the service or of its reals)`,
      });
    }
    s.schedulerFlags.forEach((flag, i) => {
      const owner = schedulerOfFlag(flag);
      if (owner !== s.scheduler) {
        ctx.addIssue({
          code: "custom",
          path: ["schedulerFlags", i],
          message: `"${flag}" is a flag of scheduler "${owner}", and this service's scheduler is "${s.scheduler}": set "scheduler": "${owner}", or remove the flag`,
        });
      }
    });
  })
  .transform(
    (s): ServiceConfig => ({
      vip: s.vip,
      port: s.port,
      protocol: s.protocol,
      forwarding: s.forwarding,
      ...(s.fullnat && forwardingModesOf(s).has("fullnat")
        ? { fullnat: { localAddresses: s.fullnat.localAddresses, localPorts: s.fullnat.localPorts ?? { ...DEFAULT_LOCAL_PORTS } } }
        : {}),
      scheduler: s.scheduler,
      schedulerFlags: s.schedulerFlags,
      ...(s.mhSeed !== undefined ? { mhSeed: s.mhSeed } : {}),
      ...(s.midStreamPickUp !== undefined ? { midStreamPickUp: s.midStreamPickUp } : {}),
      reals: s.reals.map((r) => ({
        ip: r.ip, port: r.port ?? s.port, weight: r.weight,
        ...(r.slowStartS !== undefined ? { slowStartS: r.slowStartS } : {}),
        ...(r.maxConns !== undefined ? { maxConns: r.maxConns } : {}),
        ...(r.minConnsToResume !== undefined ? { minConnsToResume: r.minConnsToResume } : {}),
        // Kept only where it differs from the service's, so a real that repeats it is the same real.
        ...(r.forwarding !== undefined && r.forwarding !== s.forwarding ? { forwarding: r.forwarding } : {}),
      })),
      fallback: s.fallback && { ip: s.fallback.ip, port: s.fallback.port ?? s.port },
      healthCheck: resolveHealthCheck(s.healthCheck, s.protocol),
      deadRealFlows: s.deadRealFlows ?? (s.protocol === "udp" ? "drop" : "keep"),
      ...(s.slowStartS ? { slowStartS: s.slowStartS } : {}),
      ...ownTimeouts(s.timeouts),
      ...(s.persistence ? { persistence: { timeoutS: s.persistence.timeoutS, netmask: s.persistence.netmask } } : {}),
    }),
  );


function shareIn(min: number, max: number) {
  const error = expecting(`a share of the flow map ${min}..${max}, like 0.5`);
  return z.number({ error }).min(min, { error }).max(max, { error });
}

/** "ADDR:PORT" or "ADDR" (the sync's default port). */
function syncEndpoint(role: string, defaultPort: number | undefined) {
  const example = defaultPort === undefined ? '"198.18.1.2:8848"' : '"198.18.1.1:8848" (or "198.18.1.1" for port 8848)';
  const error = expecting(`an IPv4 address and UDP port like ${example} for the ${role}`);
  return z.string({ error }).transform((text, ctx): SyncEndpoint => {
    const match = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(text);
    const ip = match?.[1];
    const port = match?.[2] !== undefined ? Number(match[2]) : defaultPort;
    if (ip === undefined || !isIPv4(ip) || port === undefined || port < 1 || port > 65535) {
      ctx.addIssue({ code: "custom", message: error({ input: text }) });
      return z.NEVER;
    }
    const why = nonUnicastReason(ip);
    if (why !== undefined && !(defaultPort !== undefined && ip === "0.0.0.0")) {
      ctx.addIssue({ code: "custom", message: `${ip} ${why}: use a unicast address` });
      return z.NEVER;
    }
    return { ip, port };
  });
}

const syncSchema = z
  .strictObject(
    {
      listen: syncEndpoint("sync listen address", DEFAULT_SYNC_PORT).meta({
        description: `This instance's address for the sync (the peers send to it, and it sends from it), "ADDR:PORT"; port ${DEFAULT_SYNC_PORT} when left out. A port below 1024 needs CAP_NET_BIND_SERVICE.`,
        examples: ["198.18.1.1:8848"],
      }),
      peers: z
        .array(syncEndpoint("sync peer", DEFAULT_SYNC_PORT), { error: expecting('a list like ["198.18.1.2:8848"]') })
        .max(CONFIG_LIMITS.maxSyncPeers, { error: `at most ${CONFIG_LIMITS.maxSyncPeers} peers` })
        .optional()
        .describe("The peers' listen addresses (unicast). Each gets every flow event and snapshot request."),
      multicast: z
        .strictObject(
          {
            group: z
              .string({ error: expecting("an IPv4 multicast group like 239.18.0.1") })
              .refine((g) => isIPv4(g) && Number(g.split(".")[0]) >= 224 && Number(g.split(".")[0]) <= 239, {
                error: expecting("an IPv4 multicast group (224.0.0.0/4) like 239.18.0.1"),
              })
              .describe("The multicast group; datagrams go to it at the listen port."),
            interface: interfaceName.describe("The interface the group is joined and sent on (the peers' LAN)."),
          },
          { error: expecting('an object like { "group": "239.18.0.1", "interface": "eth1" }') },
        )
        .optional()
        .describe("Send to and receive from a multicast group instead of (or besides) unicast peers."),
      keyFile: z
        .string({ error: expecting("the path of the shared key file") })
        .min(1, { error: expecting("the path of the shared key file") })
        .describe(
          "A file holding the key every peer shares (its bytes as they are; at least 32, e.g. `openssl rand -hex 32`). Every datagram carries an HMAC-SHA256 made with it. natlb refuses a file other users may read.",
        ),
      refreshS: intIn(1, 3600)
        .optional()
        .describe("Established flows with traffic are sent again this often, so the peers' copies do not time out (IPVS's sync_refresh_period). Default 30."),
    },
    { error: expecting('an object like { "listen": "198.18.1.1:8848", "peers": ["198.18.1.2:8848"], "keyFile": "/etc/natlb/sync.key" }') },
  )
  .superRefine((s, ctx) => {
    if ((s.peers ?? []).length === 0 && s.multicast === undefined) {
      ctx.addIssue({ code: "custom", path: ["peers"], message: "the sync needs peers, a multicast group, or both" });
    }
    if (s.multicast === undefined && s.listen.ip === "0.0.0.0") {
      ctx.addIssue({ code: "custom", path: ["listen"], message: "0.0.0.0 listens everywhere: give the address the peers send to" });
    }
  })
  .transform(
    (s): SyncConfig => ({
      listen: s.listen,
      peers: s.peers ?? [],
      multicast: s.multicast,
      keyFile: s.keyFile,
      refreshS: s.refreshS ?? 30,
    }),
  );

const floodProtectionSchema = z
  .strictObject(
    {
      halfOpenShare: shareIn(0.05, 1)
        .default(DEFAULT_FLOOD_PROTECTION.halfOpenShare)
        .describe("Share of the flow map that TCP connections still in their handshake may hold; a new one beyond it evicts an older one."),
      unassuredUdpShare: shareIn(0.05, 1)
        .default(DEFAULT_FLOOD_PROTECTION.unassuredUdpShare)
        .describe("Share of the flow map that unassured UDP flows (no reply yet, or younger than 2 s) may hold."),
      pressureAt: shareIn(0, 1)
        .default(DEFAULT_FLOOD_PROTECTION.pressureAt)
        .describe("Share of the flow map in use from which unassured flows expire after pressureTimeout instead of their state's timeout."),
      pressureTimeout: intIn(1, 3600)
        .default(DEFAULT_FLOOD_PROTECTION.pressureTimeout)
        .describe("The short idle timeout of unassured flows under pressure, seconds."),
    },
    { error: expecting('an object like { "halfOpenShare": 0.5, "pressureTimeout": 5 }') },
  )
  .prefault({})
  .describe("How the flow map gives way to floods. Established connections and assured UDP flows are never evicted.");

// "af_xdp" is short for { "default": "af_xdp" }.
const receivePathSchema = z.preprocess(
  (value) => (typeof value === "string" ? { default: value } : value),
  z.strictObject(
    {
      default: oneOf(RECEIVE_PATHS).default("af_packet").describe("The receive path of every interface not named in interfaces."),
      interfaces: z
        .record(z.string(), oneOf(RECEIVE_PATHS), {
          error: expecting('an object of interface names and paths like { "eth1": "af_xdp" }'),
        })
        // Keys checked here rather than by the record, so the message is about the name.
        .superRefine((paths, ctx) => {
          for (const name of Object.keys(paths)) {
            const check = interfaceName.safeParse(name);
            if (!check.success) ctx.addIssue({ code: "custom", path: [name], message: check.error.issues[0]!.message });
          }
        })
        .default({})
        .describe('Receive path per interface name, e.g. { "eth1": "af_xdp" }.'),
    },
    { error: expecting('"af_packet", "af_xdp", or an object like { "default": "af_packet", "interfaces": { "eth1": "af_xdp" } }') },
  ),
);

/** The file's schema. Exported for scripts/generate-docs.ts, which derives docs/config.md and the JSON Schema from it. */
export const configSchema = z
  .strictObject(
    {
      services: z
        .array(serviceSchema, { error: expecting("a list of services") })
        .max(CONFIG_LIMITS.maxServices, {
          error: (iss) =>
            `${Array.isArray(iss.input) ? iss.input.length : "too many"} services: at most ${CONFIG_LIMITS.maxServices}; run another natlb instance for the rest`,
        })
        .superRefine((services, ctx) => {
          const sets = new Set(services.flatMap((s) => (s.timeouts ? [JSON.stringify(Object.entries(s.timeouts).sort())] : [])));
          if (sets.size > CONFIG_LIMITS.maxServiceTimeoutSets) {
            ctx.addIssue({
              code: "custom",
              message: `${sets.size} different sets of service timeouts: at most ${CONFIG_LIMITS.maxServiceTimeoutSets}; give more services the same timeouts`,
            });
          }
        })
        .describe("The virtual services: a VIP, a port and a protocol each, with the real servers behind them."),
      interfaces: z
        .strictObject(
          {
            client: interfaceList("client", 1).describe("Interfaces where client traffic to the VIPs arrives."),
            backend: interfaceList("backend", 0).describe(
              'Interfaces that lead to the "nat" services\' real servers. "dr" reals may be on any interface natlb works on; with "dr" services only (one-armed: clients and reals on one interface), the list may be empty.',
            ),
          },
          { error: expecting('an object like { "client": ["eth0"], "backend": ["eth1"] }') },
        )
        .optional()
        .describe(
          "Which interfaces face clients and which lead to the real servers. Left out: derived from the routing table (an interface that carries a route to a real is a backend; every other up IPv4 interface faces clients).",
        ),
      flowCapacity: intIn(CONFIG_LIMITS.minFlowCapacity, CONFIG_LIMITS.maxFlowCapacity)
        .default(CONFIG_LIMITS.defaultFlowCapacity)
        .describe("How many flows the shared flow map holds; each entry takes 192 bytes (51 MiB at the default)."),
      timeouts: timeoutsSchema,
      floodProtection: floodProtectionSchema,
      socket: z
        .string({ error: expecting('an absolute socket path like "/run/natlb/natlb.sock"') })
        .refine((p) => p.startsWith("/"), { error: expecting("an absolute path starting with /") })
        // sun_path holds 108 bytes including the terminating NUL.
        .refine((p) => Buffer.byteLength(p) <= 107, { error: "socket path is longer than 107 bytes: use a shorter one" })
        .optional()
        .describe("Control socket path. Left out: /run/natlb/natlb-<network namespace inode>.sock, so balancers in two namespaces never clash."),
      control: z
        .strictObject(
          {
            readGroup: groupRef("read")
              .optional()
              .describe(
                "Members of this group (a name, or a numeric gid) may use the read routes of the control socket: status, conns, health, metrics. The socket file gets this group (mode 0660). Left out: only admins may read.",
              ),
            adminGroup: groupRef("admin")
              .optional()
              .describe(
                "Members of this group may also change the running daemon (services, reals, reload). root and the daemon's own user are always admins. The socket admits readGroup (when set): admins need to be in both groups.",
              ),
          },
          { error: expecting('an object like { "readGroup": "natlb-read", "adminGroup": "natlb-admin" }') },
        )
        .optional()
        .describe(
          "Who may use the control socket, by role (on top of the socket file's permissions). Left out: only root and the daemon's user. Takes effect at start.",
        ),
      metrics: z
        .strictObject(
          {
            listen: z
              .string({ error: expecting('an address like "127.0.0.1:9910"') })
              .regex(/^(\d{1,3}(\.\d{1,3}){3}):(\d{1,5})$/, { error: expecting('an IPv4 address and port like "127.0.0.1:9910"') })
              .refine((text) => isIPv4(text.split(":")[0]!) && Number(text.split(":")[1]) >= 1 && Number(text.split(":")[1]) <= 65535, {
                error: expecting('an IPv4 address and a port 1..65535 like "127.0.0.1:9910"'),
              })
              .meta({ description: "IPv4 address and port to serve the metrics on.", examples: ["127.0.0.1:9910"] }),
            allowNonLoopback: z
              .boolean({ error: expecting("true or false") })
              .default(false)
              .describe(
                "Serve the metrics on an address outside 127.0.0.0/8 (anyone who reaches it reads the services, reals and counters, without authentication). Default false: such an address is refused.",
              ),
          },
          { error: expecting('an object like { "listen": "127.0.0.1:9910" }') },
        )
        .superRefine((m, context) => {
          if (!m.allowNonLoopback && !isLoopback(m.listen.split(":")[0]!)) {
            context.addIssue({
              code: "custom",
              path: ["listen"],
              message: `${m.listen} is not a loopback address: the metrics have no authentication. Use 127.0.0.1, read GET /metrics on the control socket instead, or set metrics.allowNonLoopback to true`,
            });
          }
        })
        .optional()
        .describe(
          "Prometheus metrics over HTTP at /metrics, on loopback unless allowNonLoopback. Left out: no HTTP listener; the control socket answers GET /metrics (read role) either way. Takes effect at start.",
        ),
      receivePath: receivePathSchema
        .optional()
        .describe(
          'How interfaces receive the frames natlb owns: "af_packet" (rings beside the kernel\'s stack, CAP_NET_RAW only; best where 64 KB GSO frames arrive) or "af_xdp" (an XDP program steers them to AF_XDP sockets; needs CAP_BPF and CAP_NET_ADMIN; best for MTU-sized frames). A string sets every interface. Takes effect at start; a reload that changes it is refused.',
        ),
      kernelFastPath: z
        .union([z.literal("auto"), z.boolean()], { error: expecting('"auto", true or false') })
        .optional()
        .describe(
          'Whether established TCP connections are forwarded by the kernel fast path (a TC program at tcx ingress; Linux 6.6+, CAP_BPF and CAP_NET_ADMIN at start). "auto" (the default): on when the capabilities and the kernel allow it, else user space with one warning saying why; true: refuse to start without it; false: user space only (CAP_NET_RAW suffices). Takes effect at start; a reload that changes it is refused.',
        ),
      kernelScheduling: z
        .boolean({ error: expecting("true or false") })
        .optional()
        .describe(
          'With the kernel fast path: whether its TC program schedules new TCP connections itself, so that a short connection never crosses user space (true, the default). It does for a service with forwarding "nat", scheduler rr, wrr or random, no persistence, connection limits or fallback real, at most 64 reals and 256 slots; every other service\'s connections are scheduled in user space as with false, and handed to the kernel once established. Both paths pick from the same selection table and keep the one flow map. Changes on reload.',
        ),
      workerThreads: oneOf(WORKER_THREADS_SETTINGS)
        .optional()
        .describe(
          'How many threads move the frames user space handles. "one": one thread for every interface (a reply that arrives while natlb\'s send is still in the kernel is handled without waking another thread: fastest for connection set-up and tear-down); "perInterface": a thread per interface (the two directions of a user-space bulk transfer run in parallel); "auto" (the default): "one" while the kernel fast path runs, "perInterface" when user space carries every byte. Takes effect at start; a reload that changes it is refused.',
        ),
      bgp: z
        .strictObject(
          {
            birdSocket: absolutePath("BIRD's control socket", "/run/bird/bird.ctl")
              .default("/run/bird/bird.ctl")
              .describe("BIRD's control socket (bird -s), where natlb asks it to reconfigure. Default /run/bird/bird.ctl (Debian's)."),
            withdrawGraceMs: intIn(0, 30_000)
              .default(1000)
              .describe(
                "At stop: how long natlb goes on forwarding after BIRD has taken the withdrawal, while the router learns it and moves the flows to the other instances. Default 1000 ms; 0: stop at once.",
              ),
            routesFile: absolutePath("routes file", "/etc/bird/natlb-vips.conf").describe(
              'The file natlb writes, one `route VIP/32 blackhole;` per VIP it serves, for a BIRD `protocol static` that includes it (README, "Scale-out behind ECMP (BIRD)"). Its directory must be writable by natlb.',
            ),
          },
          { error: expecting('an object like { "routesFile": "/etc/bird/natlb-vips.conf" }') },
        )
        .optional()
        .describe(
          "Announce the VIPs through BIRD (BGP, for several instances behind a router's ECMP): a VIP is announced while natlb runs and one of its services has a real that is up (or a fallback real), and withdrawn when the last goes down and when natlb stops. Left out: nothing is announced. Takes effect at start; a reload that changes it is refused.",
        ),
      ha: z
        .strictObject(
          {
            initialRole: oneOf(HA_INITIAL_ROLES)
              .default("backup")
              .describe(
                'The role at start, until keepalived\'s notify script (`natlb ha notify`) or `natlb ha master|backup|fault` changes it. "backup" (the default): silent on the client side until keepalived makes this gateway master, so two gateways starting together never both claim the VIPs.',
              ),
            gratuitousArpRounds: intIn(1, 100)
              .default(3)
              .describe("When this gateway becomes master: how many times it announces every VIP with gratuitous ARP on the client side (keepalived's garp_master_repeat)."),
            gratuitousArpIntervalMs: intIn(10, 10_000).default(100).describe("Milliseconds between two rounds of those announcements."),
          },
          { error: expecting('an object like { "initialRole": "backup" }') },
        )
        .optional()
        .describe(
          "One gateway of an active/backup pair run by keepalived (README: High availability). The master answers ARP for the VIPs and announces them; a backup (or a gateway in fault) answers no ARP for them and announces nothing, but forwards the frames that still reach it. Left out: a lone gateway, always master.",
        ),
      sync: syncSchema
        .optional()
        .describe(
          "The flow sync with peers (README \"Flow sync\"): flow creations and state changes go to the peers, theirs are applied here, every datagram authenticated with the shared key. Left out: no sync. Takes effect at start; a reload that changes it is refused.",
        ),
    },
    { error: expecting("a JSON object with a \"services\" list") },
  )
  .transform(
    (c): NatlbConfig => ({
      services: c.services,
      interfaces: c.interfaces,
      flowCapacity: c.flowCapacity,
      timeouts: c.timeouts,
      floodProtection: c.floodProtection,
      socket: c.socket,
      control: { readGroup: c.control?.readGroup, adminGroup: c.control?.adminGroup },
      metrics: c.metrics,
      receivePath: c.receivePath ?? { default: "af_packet", interfaces: {} },
      kernelFastPath: c.kernelFastPath ?? "auto",
      kernelScheduling: c.kernelScheduling ?? true,
      workerThreads: c.workerThreads ?? "auto",
      bgp: c.bgp,
      ha: c.ha,
      sync: c.sync,
    }),
  );

// ---------------------------------------------------------------------------------------------
// Issue formatting.

/** `["services", 0, "reals", 1, "weight"]` -> `services[0].reals[1].weight`. */
export function formatFieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else if (key === "") out += '[""]';
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

function issuesFromZod(error: z.ZodError): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      // Report each unknown field at its own path: typos are the usual cause.
      for (const key of issue.keys) {
        issues.push({
          path: formatFieldPath([...issue.path, key]),
          problem: "unknown field: remove it or check its spelling (names are case-sensitive)",
        });
      }
    } else {
      issues.push({ path: formatFieldPath(issue.path), problem: issue.message });
    }
  }
  return issues;
}

// ---------------------------------------------------------------------------------------------
// Semantic checks the schema cannot express: uniqueness and address roles across services.

export function serviceKey(s: { readonly vip: string; readonly port: number; readonly protocol: Protocol }): string {
  return `${s.vip}:${s.port}/${s.protocol}`;
}

export function realKey(r: { readonly ip: string; readonly port: number }): string {
  return `${r.ip}:${r.port}`;
}

function semanticIssues(config: NatlbConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  config.interfaces?.backend.forEach((name, i) => {
    if (config.interfaces!.client.includes(name)) {
      issues.push({
        path: `interfaces.backend[${i}]`,
        problem: `"${name}" is also a client interface: an interface faces either clients or real servers; list it once`,
      });
    }
  });
  const services = new Map<string, number>();
  const vips = new Map<string, number>();
  config.services.forEach((s, i) => {
    if (!vips.has(s.vip)) vips.set(s.vip, i);
  });

  config.services.forEach((service, i) => {
    const key = serviceKey(service);
    const first = services.get(key);
    if (first !== undefined) {
      issues.push({
        path: `services[${i}]`,
        problem: `duplicate service ${key} (already services[${first}]): remove one or change its vip, port or protocol`,
      });
    } else {
      services.set(key, i);
    }

    const fallbackVip = service.fallback && vips.get(service.fallback.ip);
    if (fallbackVip !== undefined) {
      issues.push({
        path: `services[${i}].fallback.ip`,
        problem: `${service.fallback!.ip} is the virtual IP of services[${fallbackVip}]: the fallback real needs its own address`,
      });
    }
    const reals = new Map<string, number>();
    service.reals.forEach((real, j) => {
      const rk = realKey(real);
      const seen = reals.get(rk);
      if (seen !== undefined) {
        issues.push({
          path: `services[${i}].reals[${j}]`,
          problem: `duplicate real server ${rk} (already reals[${seen}]): remove one or change its port`,
        });
      } else {
        reals.set(rk, j);
      }
      const vipOwner = vips.get(real.ip);
      if (vipOwner !== undefined) {
        issues.push({
          path: `services[${i}].reals[${j}].ip`,
          problem: `${real.ip} is the virtual IP of services[${vipOwner}]: a real server needs its own address`,
        });
      }
    });
  });
  return issues;
}

// ---------------------------------------------------------------------------------------------
// Entry points.

/** Validates a parsed JSON value and returns the configuration with every default applied. */
export function parseConfig(value: unknown, file?: string): NatlbConfig {
  const result = configSchema.safeParse(value);
  const issues = result.success ? semanticIssues(result.data) : issuesFromZod(result.error);
  if (issues.length > 0 || !result.success) {
    const first = issues[0] ?? { path: "", problem: "invalid configuration" };
    throw new ConfigError(first.path, first.problem, { issues, ...(file === undefined ? {} : { file }) });
  }
  return result.data;
}

/** Line and column (1-based) of a character offset. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lines = before.split("\n");
  return { line: lines.length, column: lines[lines.length - 1]!.length + 1 };
}

/**
 * Where and why JSON text is invalid. V8's JSON.parse messages only sometimes carry a position,
 * so on the error path a small recursive-descent scan finds the first offending character.
 */
export function locateJsonError(text: string): { offset: number; problem: string } | undefined {
  let i = 0;
  const fail = (problem: string): never => {
    throw { offset: i, problem };
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const describe = () => (i >= text.length ? "end of file" : JSON.stringify(text[i]));
  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else fail(`unexpected ${describe()}`);
  };
  const string = () => {
    i++; // opening quote
    while (i < text.length && text[i] !== '"') {
      const ch = text.charCodeAt(i);
      if (ch < 0x20) fail("control character in a string (write \\n or \\t)");
      if (text[i] === "\\") {
        i++;
        if (text[i] === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail("bad \\u escape in a string");
          i += 5;
          continue;
        }
        if (!'"\\/bfnrt'.includes(text[i] ?? "")) fail("bad escape in a string");
      }
      i++;
    }
    if (i >= text.length) fail("unterminated string");
    i++;
  };
  const number = () => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i));
    if (!m || m[0] === "" || m[0] === "-") fail(`unexpected ${describe()}`);
    i += m![0].length;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') fail(`expected a "quoted" field name, found ${describe()}`);
        string();
        ws();
        if (text[i] !== ":") fail(`expected ':' after a field name, found ${describe()}`);
        i++;
        value();
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") return void i++;
        fail(`expected ',' or '}' in an object, found ${describe()}`);
      }
    }
    if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") return void i++;
        fail(`expected ',' or ']' in a list, found ${describe()}`);
      }
    }
    if (c === '"') return string();
    if (c === "t") return literal("true");
    if (c === "f") return literal("false");
    if (c === "n") return literal("null");
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return number();
    fail(`unexpected ${describe()}`);
  };
  try {
    value();
    ws();
    if (i < text.length) fail(`unexpected ${describe()} after the end of the document`);
    return undefined;
  } catch (thrown) {
    return thrown as { offset: number; problem: string };
  }
}

/** Parses JSON text; a syntax error becomes a ConfigError naming `file:line:column`. */
export function parseConfigText(text: string, file = "<config>"): NatlbConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const found = locateJsonError(text) ?? {
      offset: text.length,
      problem: error instanceof Error ? error.message : String(error),
    };
    const { line, column } = lineColumn(text, found.offset);
    throw new ConfigError("", `${file}:${line}:${column}: invalid JSON: ${found.problem}: fix it at line ${line}, column ${column}`, {
      cause: error,
    });
  }
  return parseConfig(value, file);
}

/** Reads and validates a JSON configuration file. */
export async function loadConfigFile(path: string): Promise<NatlbConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    const hint =
      code === "ENOENT"
        ? "check the path given to --config"
        : code === "EACCES"
          ? "make it readable by the user running natlb"
          : code === "EISDIR"
            ? "give the path of a JSON file, not a directory"
            : "check the file";
    throw new ConfigError("", `cannot read ${path} (${code}): ${hint}`, { cause: error });
  }
  // Editors on some systems write a byte-order mark, which JSON.parse rejects.
  return parseConfigText(text.startsWith("\uFEFF") ? text.slice(1) : text, path);
}

// ---------------------------------------------------------------------------------------------
// Diff for reload.

export interface RealUpdate {
  readonly key: string;
  readonly old: RealConfig;
  readonly next: RealConfig;
}

/** The service-level settings a change can tell apart (beyond its reals). */
export type ServiceField = "forwarding" | "fullnat" | "scheduler" | "schedulerFlags" | "mhSeed" | "midStreamPickUp" | "fallback" | "healthCheck" | "deadRealFlows" | "slowStartS" | "timeouts" | "persistence";

export interface ServiceChange {
  /** `vip:port/protocol` */
  readonly key: string;
  readonly old: ServiceConfig;
  readonly next: ServiceConfig;
  /** Service-level settings that differ. */
  readonly fields: ReadonlyArray<ServiceField>;
  readonly reals: {
    readonly added: ReadonlyArray<RealConfig>;
    readonly removed: ReadonlyArray<RealConfig>;
    /** Same ip:port, different weight or connection limits. */
    readonly updated: ReadonlyArray<RealUpdate>;
    /** The order of the reals changed (selection tables index into the list). */
    readonly reordered: boolean;
  };
}

export type GlobalSetting =
  | "interfaces" | "flowCapacity" | "timeouts" | "floodProtection" | "socket" | "control" | "metrics" | "receivePath" | "kernelFastPath" | "kernelScheduling" | "workerThreads" | "bgp" | "ha";

export interface ConfigDiff {
  readonly added: ReadonlyArray<ServiceConfig>;
  readonly removed: ReadonlyArray<ServiceConfig>;
  readonly changed: ReadonlyArray<ServiceChange>;
  /** Keys of services that are identical in both. */
  readonly unchanged: ReadonlyArray<string>;
  /** Top-level settings that differ (some, like flowCapacity, may need a data-plane restart). */
  readonly settings: ReadonlyArray<GlobalSetting>;
}

/** Whether two receivePath settings give every interface the same path (key order and spelling aside). */
export function sameReceivePaths(a: ReceivePathConfig, b: ReceivePathConfig): boolean {
  // Different defaults differ for any interface named in neither.
  if (a.default !== b.default) return false;
  for (const name of new Set([...Object.keys(a.interfaces), ...Object.keys(b.interfaces)])) {
    if ((a.interfaces[name] ?? a.default) !== (b.interfaces[name] ?? b.default)) return false;
  }
  return true;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The same timeouts, whatever the order they were written in. */
function sameTimeouts(a: ServiceTimeouts | undefined, b: ServiceTimeouts | undefined): boolean {
  const states = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})]) as Set<keyof Timeouts>;
  return [...states].every((state) => a?.[state] === b?.[state]);
}

function diffService(old: ServiceConfig, next: ServiceConfig): ServiceChange | undefined {
  const fields: ServiceField[] = [];
  if (old.forwarding !== next.forwarding) fields.push("forwarding");
  if (!sameJson(old.fullnat, next.fullnat)) fields.push("fullnat");
  if (old.scheduler !== next.scheduler) fields.push("scheduler");
  if (!sameJson(old.persistence, next.persistence)) fields.push("persistence");
  if (!sameJson(old.schedulerFlags, next.schedulerFlags)) fields.push("schedulerFlags");
  if (old.mhSeed !== next.mhSeed) fields.push("mhSeed");
  if (old.midStreamPickUp !== next.midStreamPickUp) fields.push("midStreamPickUp");
  if (!sameJson(old.fallback, next.fallback)) fields.push("fallback");
  if (!sameJson(old.healthCheck, next.healthCheck)) fields.push("healthCheck");
  if (old.deadRealFlows !== next.deadRealFlows) fields.push("deadRealFlows");
  if (old.slowStartS !== next.slowStartS) fields.push("slowStartS");
  if (!sameTimeouts(old.timeouts, next.timeouts)) fields.push("timeouts");

  const oldReals = new Map(old.reals.map((r) => [realKey(r), r]));
  const nextReals = new Map(next.reals.map((r) => [realKey(r), r]));
  const added = next.reals.filter((r) => !oldReals.has(realKey(r)));
  const removed = old.reals.filter((r) => !nextReals.has(realKey(r)));
  const updated: RealUpdate[] = [];
  for (const r of next.reals) {
    const before = oldReals.get(realKey(r));
    if (before !== undefined && !sameJson(before, r)) updated.push({ key: realKey(r), old: before, next: r });
  }
  // Order of reals matters too: table slots index into the list.
  const reordered = !sameJson(old.reals.map(realKey), next.reals.map(realKey));
  if (fields.length === 0 && added.length === 0 && removed.length === 0 && updated.length === 0 && !reordered) {
    return undefined;
  }
  return { key: serviceKey(next), old, next, fields, reals: { added, removed, updated, reordered } };
}

/** What a reload changes, services keyed by `vip:port/protocol` and reals by `ip:port`. */
export function diffConfig(old: NatlbConfig, next: NatlbConfig): ConfigDiff {
  const oldByKey = new Map(old.services.map((s) => [serviceKey(s), s]));
  const nextByKey = new Map(next.services.map((s) => [serviceKey(s), s]));
  const added = next.services.filter((s) => !oldByKey.has(serviceKey(s)));
  const removed = old.services.filter((s) => !nextByKey.has(serviceKey(s)));
  const changed: ServiceChange[] = [];
  const unchanged: string[] = [];
  for (const s of next.services) {
    const before = oldByKey.get(serviceKey(s));
    if (before === undefined) continue;
    const change = diffService(before, s);
    if (change) changed.push(change);
    else unchanged.push(serviceKey(s));
  }
  const settings: GlobalSetting[] = [];
  if (!sameJson(old.interfaces, next.interfaces)) settings.push("interfaces");
  if (old.flowCapacity !== next.flowCapacity) settings.push("flowCapacity");
  if (!sameJson(old.timeouts, next.timeouts)) settings.push("timeouts");
  if (!sameJson(old.floodProtection, next.floodProtection)) settings.push("floodProtection");
  if (old.socket !== next.socket) settings.push("socket");
  if (!sameJson(old.control, next.control)) settings.push("control");
  if (!sameJson(old.metrics, next.metrics)) settings.push("metrics");
  if (!sameReceivePaths(old.receivePath, next.receivePath)) settings.push("receivePath");
  if (old.kernelFastPath !== next.kernelFastPath) settings.push("kernelFastPath");
  if (old.kernelScheduling !== next.kernelScheduling) settings.push("kernelScheduling");
  if (old.workerThreads !== next.workerThreads) settings.push("workerThreads");
  if (!sameJson(old.bgp, next.bgp)) settings.push("bgp");
  if (!sameJson(old.ha, next.ha)) settings.push("ha");
  return { added, removed, changed, unchanged, settings };
}

/**
 * Whether a service picks up mid-stream segments: as set, or by default for TCP "mh" services when
 * natlb announces through BGP (config bgp). UDP needs none: any datagram starts a flow.
 */
export function midStreamPickUpOf(service: ServiceConfig, bgp: BgpConfig | undefined): boolean {
  const fullNat = service.forwarding === "fullnat" || service.reals.some((r) => r.forwarding === "fullnat");
  return service.midStreamPickUp ?? (bgp !== undefined && service.protocol === "tcp" && service.scheduler === "mh" && !fullNat);
}
