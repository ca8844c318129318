// keepalived.conf's `virtual_server` blocks into a natlb configuration: the service, its scheduler
// (lb_algo), its real servers and weights, and its checker (TCP_CHECK, HTTP_GET, SSL_GET,
// MISC_CHECK, UDP_CHECK). keepalived checks each real with its own checker; natlb has one check per
// service, so the reals' checkers must agree (else the first is used, with a note). VRRP stays with
// keepalived: a vrrp_instance makes natlb one gateway of a pair (`ha`) that follows keepalived's
// notices. The other non-LVS blocks are listed, not imported: keepalived keeps doing those beside natlb.

import { isIPv4 } from "../addresses";
import { CONFIG_LIMITS, type HaConfig, type Timeouts } from "../config";
import {
  fitPortsToForwarding, forwardingFromLvs, limitsFromIpvs, persistenceFromIpvs, schedulerFlagsFromIpvs, schedulerFromIpvs,
  type ImportNote, type ImportResult, type ImportedService,
} from "./importResult";
import { parseKeepalivedBlocks, type KeepalivedStatement } from "./keepalivedBlocks";

/** keepalived's delay_loop when a virtual server leaves it out, in seconds. */
const KEEPALIVED_DELAY_LOOP_S = 60;
/** keepalived's connect_timeout when a checker leaves it out, in seconds. */
const KEEPALIVED_CONNECT_TIMEOUT_S = 5;

const CHECKERS = new Map([["TCP_CHECK", "tcp"], ["HTTP_GET", "http"], ["SSL_GET", "https"], ["MISC_CHECK", "exec"], ["UDP_CHECK", "udp"]]);

const at = (s: KeepalivedStatement) => `line ${s.line}`;

/** global_defs' lvs_timeouts sets IPVS's global timeouts (ipvsadm --set): natlb's global `timeouts`. */
const LVS_TIMEOUTS = new Map<string, keyof Timeouts>([["tcp", "tcpEstablished"], ["tcpfin", "tcpFinWait"], ["udp", "udp"]]);

/** `lvs_timeouts tcp 7200 tcpfin 120 udp 300` as natlb timeouts; 0 (IPVS: unchanged) is left to natlb's default. */
function importLvsTimeouts(statement: KeepalivedStatement, notes: ImportNote[]): Partial<Timeouts> {
  const timeouts: { -readonly [K in keyof Timeouts]?: number } = {};
  for (let i = 0; i < statement.args.length; i += 2) {
    const name = statement.args[i]!;
    const text = statement.args[i + 1];
    const state = LVS_TIMEOUTS.get(name);
    const seconds = Number(text);
    if (state === undefined) {
      notes.push({ where: at(statement), note: `lvs_timeouts ${name} is not tcp, tcpfin or udp: not imported` });
    } else if (text === undefined || !Number.isInteger(seconds) || seconds < 0 || seconds > CONFIG_LIMITS.maxTimeoutSeconds) {
      notes.push({ where: at(statement), note: `lvs_timeouts ${name} ${text ?? ""} is not a number of seconds 0..${CONFIG_LIMITS.maxTimeoutSeconds}: not imported` });
    } else if (seconds > 0) {
      timeouts[state] = seconds;
    }
  }
  return timeouts;
}

/** keepalived's virtual_server keywords for IPVS's scheduler flags (ipvsadm -b). */
const KEEPALIVED_SCHEDULER_FLAGS = new Set(["sh-port", "sh-fallback", "mh-port", "mh-fallback", "flag-1", "flag-2", "flag-3"]);

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, Math.round(value)));
}

/** Splits misc_path's command line the way a shell would for plain words and double quotes. */
function commandWords(text: string): string[] {
  return [...text.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

/** require_reply's hex bytes as a regular expression over the reply read as latin1. */
function replyPrefixPattern(hex: string): string {
  const bytes = hex.match(/../g) ?? [];
  return `^${bytes.map((b) => `\\x${b.toLowerCase()}`).join("")}`;
}

interface ServiceContext {
  readonly intervalS: number;
  readonly host: string | undefined;
  readonly notes: ImportNote[];
}

/** A real's checker as a natlb healthCheck block (the file's form), or undefined. */
function checkOf(checker: KeepalivedStatement, realPort: number, context: ServiceContext): Record<string, unknown> | undefined {
  const type = CHECKERS.get(checker.keyword)!;
  const { notes } = context;
  const settings = new Map<string, KeepalivedStatement>();
  const urls: KeepalivedStatement[] = [];
  for (const s of checker.block ?? []) {
    if (s.keyword === "url") urls.push(s);
    else settings.set(s.keyword, s);
  }
  const number = (keyword: string): number | undefined => {
    const s = settings.get(keyword);
    const value = Number(s?.args[0]);
    return s === undefined || !Number.isFinite(value) ? undefined : value;
  };
  const intervalS = number("delay_loop") ?? context.intervalS;
  const timeoutS = type === "exec" ? (number("misc_timeout") ?? intervalS) : (number("connect_timeout") ?? KEEPALIVED_CONNECT_TIMEOUT_S);
  const check: Record<string, unknown> = {
    type,
    intervalMs: clamp(intervalS * 1000, 100, 3_600_000),
    timeoutMs: clamp(timeoutS * 1000, 10, 600_000),
    // keepalived puts a real back after one good check.
    rise: 1,
  };
  const retry = number("retry") ?? number("nb_get_retry");
  if (retry !== undefined) check.fall = clamp(retry + 1, 1, 100);
  const port = number("connect_port");
  if (port !== undefined && port !== realPort) check.port = port;
  for (const keyword of ["connect_ip", "bindto", "bind_port", "delay_before_retry", "warmup", "misc_dynamic", "user", "fwmark"]) {
    const s = settings.get(keyword);
    if (s) notes.push({ where: at(s), note: `${checker.keyword} ${keyword} has no natlb equivalent: not imported` });
  }

  switch (type) {
    case "http":
    case "https": {
      const url = urls[0];
      const fields = new Map((url?.block ?? []).map((s) => [s.keyword, s]));
      check.path = fields.get("path")?.args[0] ?? "/";
      const codes = fields.get("status_code")?.args;
      if (codes && codes.length > 0) check.expectStatus = codes.join(",");
      const regex = fields.get("regex")?.args[0];
      if (regex !== undefined) check.bodyMatch = regex;
      for (const keyword of ["digest", "regex_no_match"]) {
        const s = fields.get(keyword);
        if (s) notes.push({ where: at(s), note: `url ${keyword} has no natlb equivalent: not imported` });
      }
      const host = settings.get("virtualhost")?.args[0] ?? context.host;
      if (host !== undefined) check.host = host;
      if (urls.length > 1) notes.push({ where: at(urls[1]!), note: `${checker.keyword} has ${urls.length} urls; natlb checks one: the first (${String(check.path)})` });
      return check;
    }
    case "exec": {
      const path = settings.get("misc_path")?.args[0];
      const command = path === undefined ? [] : commandWords(path);
      if (command.length === 0 || !command[0]!.startsWith("/")) {
        notes.push({ where: at(checker), note: `MISC_CHECK needs misc_path with an absolute program for natlb (no shell, no PATH): check not imported` });
        return undefined;
      }
      check.command = command;
      return check;
    }
    case "udp": {
      const payload = settings.get("payload")?.args[0];
      if (payload !== undefined) check.payloadHex = payload;
      const reply = settings.get("require_reply");
      if (reply) check.expect = reply.args[0] === undefined ? "" : replyPrefixPattern(reply.args[0]);
      return check;
    }
    default:
      return check;
  }
}

function importRealServer(statement: KeepalivedStatement, service: ImportedService, context: ServiceContext): Record<string, unknown> | undefined | "none" {
  const [ip, portText] = statement.args;
  const port = Number(portText ?? service.port);
  if (ip === undefined || !isIPv4(ip) || !Number.isInteger(port) || port < 1 || port > 65535) {
    context.notes.push({ where: at(statement), note: `real_server ${statement.args.join(" ")} is not an IPv4 address and port: skipped` });
    return undefined;
  }
  let weight = 1;
  let check: Record<string, unknown> | undefined | "none" = "none";
  const thresholds = new Map<string, KeepalivedStatement>();
  for (const s of statement.block ?? []) {
    if (s.keyword === "uthreshold" || s.keyword === "lthreshold") {
      thresholds.set(s.keyword, s);
    } else if (s.keyword === "weight") {
      const w = Number(s.args[0]);
      if (Number.isInteger(w) && w >= 0 && w <= 65535) weight = w;
      else context.notes.push({ where: at(s), note: `weight ${s.args[0]} is not 0..65535: 1 is used` });
    } else if (CHECKERS.has(s.keyword)) {
      if (check !== "none") context.notes.push({ where: at(s), note: `a second checker (${s.keyword}) on ${ip}:${port}: natlb runs one check; the first is kept` });
      else check = checkOf(s, port, context);
    } else if (s.keyword.endsWith("_CHECK")) {
      context.notes.push({ where: at(s), note: `${s.keyword} has no natlb equivalent: not imported` });
    } else {
      context.notes.push({ where: at(s), note: `real_server ${s.keyword} has no natlb equivalent: not imported` });
    }
  }
  const limits = limitsFromIpvs(
    thresholds.get("uthreshold")?.args[0], thresholds.get("lthreshold")?.args[0], { upper: "uthreshold", lower: "lthreshold" },
    at(thresholds.get("uthreshold") ?? thresholds.get("lthreshold") ?? statement), context.notes,
  );
  service.reals.push({ ip, port, weight, ...limits });
  return check;
}

function importVirtualServer(statement: KeepalivedStatement, notes: ImportNote[]): ImportedService | undefined {
  const [ip, portText] = statement.args;
  if (ip === "fwmark" || ip === "group") {
    notes.push({ where: at(statement), note: `virtual_server ${ip} has no natlb equivalent: skipped; natlb services are VIP:port` });
    return undefined;
  }
  const port = Number(portText);
  if (ip === undefined || !isIPv4(ip) || !Number.isInteger(port) || port < 1 || port > 65535) {
    notes.push({ where: at(statement), note: `virtual_server ${statement.args.join(" ")} is not an IPv4 address and port: skipped` });
    return undefined;
  }
  const body = statement.block ?? [];
  const first = (keyword: string) => body.find((s) => s.keyword === keyword);
  // keepalived 2.2 takes a virtual_server without `protocol` as UDP (and warns): so does the import.
  const protocolStatement = first("protocol");
  if (protocolStatement === undefined) {
    notes.push({ where: at(statement), note: `virtual_server ${ip} ${port} has no protocol: imported as UDP, as keepalived defaults it; add "protocol TCP" if it is TCP` });
  }
  const protocol = (protocolStatement?.args[0] ?? "UDP").toUpperCase();
  if (protocol !== "TCP" && protocol !== "UDP") {
    notes.push({ where: at(first("protocol")!), note: `protocol ${protocol} has no natlb equivalent: virtual_server ${ip} ${port} skipped` });
    return undefined;
  }
  const algo = first("lb_algo") ?? first("lvs_sched");
  const service: ImportedService = {
    vip: ip, port, protocol: protocol === "UDP" ? "udp" : "tcp",
    scheduler: algo ? schedulerFromIpvs(algo.args[0] ?? "", at(algo), notes) : schedulerFromIpvs("wlc", at(statement), notes),
    reals: [],
  };
  const delay = Number(first("delay_loop")?.args[0]);
  const context: ServiceContext = {
    intervalS: Number.isFinite(delay) && delay > 0 ? delay : KEEPALIVED_DELAY_LOOP_S,
    host: first("virtualhost")?.args[0],
    notes,
  };
  const checks: Array<{ check: Record<string, unknown> | undefined | "none"; line: number }> = [];
  const handled = new Set(["protocol", "lb_algo", "lvs_sched", "delay_loop", "virtualhost", "real_server", "persistence_granularity"]);
  const flagNames: string[] = [];
  let flagsAt: string | undefined;
  for (const s of body) {
    if (s.keyword === "real_server") {
      checks.push({ check: importRealServer(s, service, context), line: s.line });
    } else if (KEEPALIVED_SCHEDULER_FLAGS.has(s.keyword)) {
      flagNames.push(s.keyword);
      flagsAt ??= at(s);
    } else if (s.keyword === "persistence_timeout") {
      // keepalived's default without a value: 6 minutes.
      const granularity = first("persistence_granularity")?.args[0];
      const persistence = persistenceFromIpvs(s.args[0] ?? "360", granularity, { timeout: "persistence_timeout", netmask: "persistence_granularity" }, at(s), notes);
      if (persistence) service.persistence = persistence;
    } else if (s.keyword === "sorry_server") {
      const [sorryIp, sorryPort] = s.args;
      const fallbackPort = Number(sorryPort ?? port);
      if (sorryIp === undefined || !isIPv4(sorryIp) || !Number.isInteger(fallbackPort) || fallbackPort < 1 || fallbackPort > 65535) {
        notes.push({ where: at(s), note: `sorry_server ${s.args.join(" ")} is not an IPv4 address and port: not imported` });
      } else {
        service.fallback = { ip: sorryIp, port: fallbackPort };
      }
    } else if (s.keyword === "lb_kind" || s.keyword === "lvs_method") {
      const method = (s.args[0] ?? "").toUpperCase();
      if (method === "NAT" || method === "DR" || method === "TUN") {
        const forwarding = forwardingFromLvs(method, at(s), notes);
        if (forwarding === "dr") service.forwarding = forwarding;
        else delete service.forwarding;
      } else {
        notes.push({ where: at(s), note: `${s.keyword} ${s.args[0] ?? ""} is not NAT, DR or TUN: imported as NAT` });
      }
    } else if (!handled.has(s.keyword)) {
      notes.push({ where: at(s), note: `virtual_server ${s.keyword}${s.args.length ? ` ${s.args.join(" ")}` : ""} has no natlb equivalent yet: not imported` });
    }
  }
  fitPortsToForwarding(service, at(first("lb_kind") ?? first("lvs_method") ?? statement), notes);
  if (flagNames.length > 0) {
    const flags = schedulerFlagsFromIpvs(service.scheduler, flagNames, flagsAt!, notes);
    if (flags.length > 0) service.schedulerFlags = flags;
  }
  const active = checks.filter((c): c is { check: Record<string, unknown>; line: number } => typeof c.check === "object");
  if (active.length > 0) {
    service.healthCheck = active[0]!.check;
    const differing = checks.filter((c) => JSON.stringify(c.check) !== JSON.stringify(active[0]!.check));
    if (differing.length > 0) {
      notes.push({
        where: `line ${differing[0]!.line}`,
        note: `the reals of virtual_server ${ip} ${port} are checked differently; natlb has one check per service: the first real's is used for all`,
      });
    }
  }
  return service;
}

/** IPVS's sync daemon (lvs_sync_daemon, in global_defs or, before keepalived 1.4, a vrrp_instance). */
function syncDaemonNote(statement: KeepalivedStatement): ImportNote {
  return {
    where: at(statement),
    note: `${statement.keyword}: natlb's flow sync takes the place of IPVS's sync daemon; set \`sync\` (listen, peers or a multicast group, and a keyFile: natlb's sync is authenticated, IPVS's is not)`,
  };
}

/** natlb's bounds on gratuitousArpRounds (src/config.ts). */
const GRATUITOUS_ARP_ROUNDS = { min: 1, max: 100 } as const;

/**
 * A vrrp_instance: keepalived keeps running VRRP, and natlb becomes one gateway of the pair (`ha`),
 * starting as backup whatever the instance's `state` says (keepalived tells natlb when it is master,
 * so two gateways starting together never both claim the VIPs). garp_master_repeat becomes the
 * number of gratuitous ARP rounds; the note says how to hand keepalived's notices to natlb.
 */
function importVrrpInstance(statement: KeepalivedStatement, notes: ImportNote[]): Partial<HaConfig> {
  const ha: { -readonly [K in keyof HaConfig]?: HaConfig[K] } = {};
  const name = statement.args[0] ?? "";
  for (const s of statement.block ?? []) {
    if (s.keyword.startsWith("lvs_sync_daemon")) notes.push(syncDaemonNote(s));
    if (s.keyword !== "garp_master_repeat") continue;
    const repeat = Number(s.args[0]);
    if (Number.isInteger(repeat) && repeat >= GRATUITOUS_ARP_ROUNDS.min && repeat <= GRATUITOUS_ARP_ROUNDS.max) {
      ha.gratuitousArpRounds = repeat;
    } else {
      notes.push({ where: at(s), note: `garp_master_repeat ${s.args[0] ?? ""} is not ${GRATUITOUS_ARP_ROUNDS.min}..${GRATUITOUS_ARP_ROUNDS.max}: natlb's default is used` });
    }
  }
  notes.push({
    where: at(statement),
    note:
      `vrrp_instance ${name} stays with keepalived (natlb does no VRRP); imported as \`ha\`: natlb starts as backup and follows keepalived's notices. ` +
      `Add to keepalived's global_defs: vrrp_notify_fifo /run/keepalived/natlb.fifo and vrrp_notify_fifo_script "/usr/bin/natlb ha notify-fifo --config <this natlb config>" ` +
      `(or notify "/usr/bin/natlb ha notify --config <this natlb config>" in the instance; the FIFO keeps the notices in order)`,
  });
  return ha;
}

export function importKeepalivedConf(text: string): ImportResult {
  const notes: ImportNote[] = [];
  const services: ImportedService[] = [];
  let timeouts: Partial<Timeouts> = {};
  let ha: Partial<HaConfig> | undefined;
  const skippedKinds = new Set<string>();
  for (const statement of parseKeepalivedBlocks(text)) {
    const lvsTimeouts = statement.keyword === "global_defs" ? (statement.block ?? []).filter((s) => s.keyword === "lvs_timeouts") : [];
    for (const s of (statement.block ?? []).filter((s) => s.keyword.startsWith("lvs_sync_daemon"))) notes.push(syncDaemonNote(s));
    for (const s of lvsTimeouts) timeouts = { ...timeouts, ...importLvsTimeouts(s, notes) };
    if (statement.keyword === "global_defs" && lvsTimeouts.length === (statement.block ?? []).length) {
      // Nothing in it but what was imported.
    } else if (statement.keyword === "virtual_server") {
      const service = importVirtualServer(statement, notes);
      if (service) services.push(service);
    } else if (statement.keyword === "vrrp_instance") {
      if (ha === undefined) ha = importVrrpInstance(statement, notes);
      else {
        notes.push({
          where: at(statement),
          note: `vrrp_instance ${statement.args[0] ?? ""}: natlb has one role for all its VIPs and follows every instance's notices; put the instances in one vrrp_sync_group so they change together`,
        });
      }
    } else if (statement.keyword === "include") {
      notes.push({ where: at(statement), note: `include ${statement.args.join(" ")} is not followed: import that file too` });
    } else if (!skippedKinds.has(statement.keyword)) {
      skippedKinds.add(statement.keyword);
      const vrrp = statement.keyword.startsWith("vrrp_");
      notes.push({
        where: at(statement),
        note: `${statement.keyword}${lvsTimeouts.length > 0 ? " (but its lvs_timeouts)" : ""} is not a load-balancing block: not imported${vrrp ? " (natlb does no VRRP: keep keepalived running for it)" : ""}`,
      });
    }
  }
  return {
    config: { services, ...(Object.keys(timeouts).length > 0 ? { timeouts } : {}), ...(ha !== undefined ? { ha } : {}) },
    notes,
  };
}
