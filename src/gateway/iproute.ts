// Reads (and, for kernel set-up, changes) the gateway's network state through iproute2's JSON output.
// Everything runs in the caller's network namespace.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export class IpCommandError extends Error {
  constructor(readonly args: readonly string[], readonly stderr: string) {
    super(`ip ${args.join(" ")} failed: ${stderr.trim() || "no output"}`);
    this.name = "IpCommandError";
  }
}

export async function ip(args: readonly string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync("ip", [...args], { timeout: 10_000 });
    return stdout;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? String(error);
    throw new IpCommandError(args, stderr);
  }
}

async function ipJson<T>(args: readonly string[]): Promise<T[]> {
  const text = (await ip(["-j", ...args])).trim();
  return text === "" ? [] : (JSON.parse(text) as T[]);
}

export interface LinkInfo {
  ifindex: number;
  ifname: string;
  address?: string;
  flags: string[];
  mtu: number;
  link_type?: string;
  operstate?: string;
}

export interface AddressInfo {
  ifindex: number;
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
}

export interface RouteInfo {
  type?: string;
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
}

export interface NeighbourInfo {
  dst: string;
  dev: string;
  lladdr?: string;
  state?: string[];
}

export interface RuleInfo {
  priority: number;
  protocol?: string;
  [field: string]: unknown;
}

export const listLinks = () => ipJson<LinkInfo>(["link", "show"]);
export const listAddresses = () => ipJson<AddressInfo>(["-4", "addr", "show"]);
export const listRoutes = (args: readonly string[] = ["-4", "route", "show", "table", "main"]) => ipJson<RouteInfo>(args);
export const listNeighbours = () => ipJson<NeighbourInfo>(["-4", "neigh", "show"]);
export const listRules = () => ipJson<RuleInfo>(["-4", "rule", "show"]);

export async function routeGet(destination: string): Promise<RouteInfo | undefined> {
  const routes = await ipJson<RouteInfo>(["-4", "route", "get", destination]);
  return routes[0];
}
