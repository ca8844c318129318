// Which connections a listing wants (`natlb conns`, GET /conns, Balancer.connections): filters by
// service, real, client and state, and a page of them. Parsed once from text (query parameters, CLI
// options) into numbers the flow map compares with its raw fields, so a page costs no object per
// skipped flow.
import { isIPv4, parseIPv4, prefixMask } from "../addresses";
import { ApiError } from "../errors";
import type { FlowStateName } from "./flowMap";

/** What a listing may ask for; every field optional. Addresses and ports as text, as an operator writes them. */
export interface ConnectionQuery {
  /** `vip:port` or `vip:port/tcp|udp`. */
  service?: string;
  /** `ip` or `ip:port`. */
  real?: string;
  /** `ip`, `ip/prefix` or `ip:port`. */
  client?: string;
  /** A flow state, e.g. `ESTABLISHED` (any case). */
  state?: string;
  /** List persistence templates too (like ipvsadm -Lc); they are no connections, so left out by default. */
  templates?: boolean;
  /** At most this many connections (1..MAX_CONNECTION_PAGE, default DEFAULT_CONNECTION_PAGE). */
  limit?: number;
  /** Where to go on: the `next` of the previous page. */
  cursor?: number;
}

/** One page of a listing: `more` says whether matches remain; then `next` is the cursor for them. */
export interface ConnectionPage<C> {
  connections: C[];
  more: boolean;
  next?: number;
}

export const DEFAULT_CONNECTION_PAGE = 100;
export const MAX_CONNECTION_PAGE = 10_000;

export const FLOW_STATE_NAMES: readonly FlowStateName[] = ["NONE", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "TIME_WAIT", "CLOSE", "UDP"];

/** A ConnectionQuery's filters as the flow map compares them (undefined: any). */
export interface FlowFilter {
  protocol?: number;
  vip?: number;
  vport?: number;
  realIp?: number;
  realPort?: number;
  clientNetwork?: number;
  clientMask?: number;
  clientPort?: number;
  state?: number;
  /** Persistence templates pass too. */
  templates?: boolean;
}

const PROTOCOLS = { tcp: 6, udp: 17 } as const;

function bad(what: string, text: string, expected: string): ApiError {
  return new ApiError(`${what}: ${JSON.stringify(text)} is not ${expected}`);
}

/** Parses one part of a filter; a bad part is reported with the whole filter text. */
function partsOf(what: string, whole: string, expected: string) {
  return {
    address(text: string): number {
      if (!isIPv4(text)) throw bad(what, whole, expected);
      return parseIPv4(text);
    },
    port(text: string): number {
      const value = Number(text);
      if (!/^\d+$/.test(text) || value < 1 || value > 65535) throw bad(what, whole, expected);
      return value;
    },
  };
}

/** Turns a query's text filters into a FlowFilter; ApiError (400) naming the bad one otherwise. */
export function flowFilterOf(query: ConnectionQuery): FlowFilter {
  const filter: FlowFilter = {};
  if (query.service !== undefined) {
    const expected = "a service: VIP:PORT or VIP:PORT/tcp|udp, like 198.18.0.100:80/tcp";
    const match = /^([^:/]+):([^:/]+)(?:\/([a-z]+))?$/i.exec(query.service);
    if (!match) throw bad("service", query.service, expected);
    const part = partsOf("service", query.service, expected);
    filter.vip = part.address(match[1]!);
    filter.vport = part.port(match[2]!);
    if (match[3] !== undefined) {
      const protocol = PROTOCOLS[match[3].toLowerCase() as keyof typeof PROTOCOLS];
      if (protocol === undefined) throw bad("service", query.service, expected);
      filter.protocol = protocol;
    }
  }
  if (query.real !== undefined) {
    const expected = "a real server: IP or IP:PORT, like 198.18.1.11:8080";
    const [ip, realPort, ...rest] = query.real.split(":");
    if (rest.length > 0) throw bad("real", query.real, expected);
    const part = partsOf("real", query.real, expected);
    filter.realIp = part.address(ip!);
    if (realPort !== undefined) filter.realPort = part.port(realPort);
  }
  if (query.client !== undefined) {
    const expected = "a client: IP, IP/PREFIX or IP:PORT, like 198.19.0.0/16";
    const text = query.client;
    const part = partsOf("client", text, expected);
    if (text.includes("/")) {
      const [ip, length, ...rest] = text.split("/");
      if (rest.length > 0 || !/^\d{1,2}$/.test(length!) || Number(length) > 32) throw bad("client", text, expected);
      filter.clientMask = prefixMask(Number(length));
      filter.clientNetwork = (part.address(ip!) & filter.clientMask) >>> 0;
    } else {
      const [ip, clientPort, ...rest] = text.split(":");
      if (rest.length > 0) throw bad("client", text, expected);
      filter.clientMask = 0xffffffff;
      filter.clientNetwork = part.address(ip!);
      if (clientPort !== undefined) filter.clientPort = part.port(clientPort);
    }
  }
  if (query.templates === true) filter.templates = true;
  if (query.state !== undefined) {
    const index = FLOW_STATE_NAMES.indexOf(query.state.toUpperCase() as FlowStateName);
    if (index < 0) throw bad("state", query.state, `a flow state: one of ${FLOW_STATE_NAMES.join(", ")}`);
    filter.state = index;
  }
  return filter;
}

/** The page size a query asks for, checked. */
export function pageLimitOf(query: ConnectionQuery): number {
  const limit = query.limit ?? DEFAULT_CONNECTION_PAGE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_CONNECTION_PAGE) {
    throw new ApiError(`limit must be an integer 1..${MAX_CONNECTION_PAGE}, got ${String(limit)}`);
  }
  return limit;
}

/** Where a query starts, checked. */
export function cursorOf(query: ConnectionQuery): number {
  const cursor = query.cursor ?? 0;
  if (!Number.isInteger(cursor) || cursor < 0) {
    throw new ApiError(`cursor must be the "next" of a previous page (an integer >= 0), got ${String(cursor)}`);
  }
  return cursor;
}

const QUERY_PARAMETERS = ["service", "real", "client", "state", "templates", "limit", "cursor"] as const;

/** A ConnectionQuery from URL query parameters (GET /conns); ApiError (400) for unknown or malformed ones. */
export function connectionQueryFromParams(params: URLSearchParams): ConnectionQuery {
  const query: ConnectionQuery = {};
  for (const name of new Set(params.keys())) {
    if (!(QUERY_PARAMETERS as readonly string[]).includes(name)) {
      throw new ApiError(`unknown query parameter ${JSON.stringify(name)}: GET /conns takes ${QUERY_PARAMETERS.join(", ")}`);
    }
    if (params.getAll(name).length > 1) throw new ApiError(`query parameter ${name} given more than once`);
  }
  const integer = (name: "limit" | "cursor"): number | undefined => {
    const text = params.get(name);
    if (text === null) return undefined;
    if (!/^\d{1,15}$/.test(text)) throw new ApiError(`query parameter ${name} must be a non-negative integer, got ${JSON.stringify(text)}`);
    return Number(text);
  };
  for (const name of ["service", "real", "client", "state"] as const) {
    const text = params.get(name);
    if (text !== null) query[name] = text;
  }
  const templates = params.get("templates");
  if (templates !== null) {
    if (templates !== "true" && templates !== "false") throw new ApiError(`query parameter templates must be true or false, got ${JSON.stringify(templates)}`);
    query.templates = templates === "true";
  }
  const limit = integer("limit");
  const cursor = integer("cursor");
  if (limit !== undefined) query.limit = limit;
  if (cursor !== undefined) query.cursor = cursor;
  // Checked here so a bad query is a 400 before any work.
  flowFilterOf(query);
  pageLimitOf(query);
  cursorOf(query);
  return query;
}

/** The query string of a ConnectionQuery (the CLI's request), without the leading "?" ("" when empty). */
export function connectionQueryString(query: ConnectionQuery): string {
  const params = new URLSearchParams();
  for (const name of QUERY_PARAMETERS) {
    const value = query[name];
    if (value !== undefined) params.set(name, String(value));
  }
  return params.toString();
}
