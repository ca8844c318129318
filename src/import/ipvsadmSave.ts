// `ipvsadm-save -n` (ipvsadm -S -n) output into a natlb configuration. Each line is an ipvsadm
// command: -A adds a virtual service, -a a real server to one.
//
//   -A -t 198.18.0.100:80 -s wlc -p 300 -M 255.255.255.255
//   -a -t 198.18.0.100:80 -r 198.18.1.11:8080 -m -w 1

import { isIPv4 } from "../addresses";
import { ConfigError } from "../errors";
import {
  fitPortsToForwarding, forwardingFromLvs, limitsFromIpvs, persistenceFromIpvs, schedulerFlagsFromIpvs, schedulerFromIpvs,
  type ImportNote, type ImportResult, type ImportedService, type LvsMethod,
} from "./importResult";

/** Options that take a value, so that the value is not read as the next option. */
const WITH_VALUE = new Set(["-t", "-u", "-f", "--sctp-service", "-s", "-p", "-M", "-b", "-r", "-w", "-x", "-y", "--pe", "--tun-type", "--tun-port", "--tun-nocsum", "--tun-csum", "--tun-remcsum"]);
/** A real's forwarding method by its flag; without one, ipvsadm gateways (direct routing). */
function lvsMethodOf(options: Map<string, string>): LvsMethod {
  if (options.has("-m")) return "NAT";
  if (options.has("-i")) return "TUN";
  return "DR";
}

function parseEndpoint(text: string, where: string): { ip: string; port: number } {
  const colon = text.lastIndexOf(":");
  const ip = text.slice(0, colon);
  const port = Number(text.slice(colon + 1));
  if (colon < 0 || !isIPv4(ip) || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(where, `expected an IPv4 address and port like 198.18.0.100:80, got ${JSON.stringify(text)}: save with \`ipvsadm-save -n\` (numeric)`);
  }
  return { ip, port };
}

/** The options of one line: flag -> value ("" for flags without one). */
function optionsOf(words: string[], where: string): Map<string, string> {
  const options = new Map<string, string>();
  for (let i = 1; i < words.length; i++) {
    const word = words[i]!;
    if (!word.startsWith("-")) throw new ConfigError(where, `unexpected ${JSON.stringify(word)}: each line must be one ipvsadm command`);
    const value = WITH_VALUE.has(word) ? words[++i] : "";
    if (value === undefined) throw new ConfigError(where, `${word} needs a value`);
    options.set(word, value);
  }
  return options;
}

export function importIpvsadmSave(text: string): ImportResult {
  const services = new Map<string, ImportedService>();
  const notes: ImportNote[] = [];
  const lines = text.split("\n");
  lines.forEach((raw, index) => {
    const where = `line ${index + 1}`;
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const words = line.split(/\s+/);
    const command = words[0]!;
    if (command !== "-A" && command !== "-a") {
      notes.push({ where, note: `"${command}" is not a service (-A) or real server (-a) line: skipped` });
      return;
    }
    const options = optionsOf(words, where);
    if (options.has("-f")) {
      notes.push({ where, note: "a firewall-mark service (-f) has no natlb equivalent: skipped; natlb services are VIP:port" });
      return;
    }
    if (options.has("--sctp-service")) {
      notes.push({ where, note: "an SCTP service has no natlb equivalent: skipped" });
      return;
    }
    const protocol = options.has("-u") ? "udp" : "tcp";
    const address = options.get("-u") ?? options.get("-t");
    if (address === undefined) throw new ConfigError(where, "expected -t or -u with the service's address:port");
    const vip = parseEndpoint(address, where);
    const key = `${vip.ip}:${vip.port}/${protocol}`;

    if (command === "-A") {
      const service: ImportedService = {
        vip: vip.ip, port: vip.port, protocol, scheduler: schedulerFromIpvs(options.get("-s") ?? "wlc", where, notes), reals: [],
      };
      services.set(key, service);
      if (options.has("-p")) {
        const timeout = options.get("-p") === "" ? "300" : options.get("-p")!;
        const persistence = persistenceFromIpvs(timeout, options.get("-M"), { timeout: "-p", netmask: "-M" }, where, notes);
        if (persistence) service.persistence = persistence;
      }
      if (options.has("-b")) {
        const flags = schedulerFlagsFromIpvs(service.scheduler, options.get("-b")!.split(",").filter((f) => f !== ""), where, notes);
        if (flags.length > 0) service.schedulerFlags = flags;
      }
      if (options.has("--pe")) notes.push({ where, note: `persistence engine (--pe ${options.get("--pe")}) has no natlb equivalent: not imported` });
      return;
    }

    const service = services.get(key);
    if (service === undefined) throw new ConfigError(where, `real server for ${key}, which no earlier -A line adds`);
    const realText = options.get("-r");
    if (realText === undefined) throw new ConfigError(where, "expected -r with the real server's address:port");
    const real = parseEndpoint(realText, where);
    const weight = Number(options.get("-w") ?? "1");
    if (!Number.isInteger(weight) || weight < 0 || weight > 65535) throw new ConfigError(where, `weight must be 0..65535, got ${options.get("-w")}`);
    // ipvsadm sets the method per real: the first real's becomes the service's, a later real's that
    // differs is that real's own forwarding.
    const forwarding = forwardingFromLvs(lvsMethodOf(options), where, notes);
    if (service.reals.length === 0 && forwarding === "dr") service.forwarding = forwarding;
    const own = forwarding !== (service.forwarding ?? "nat") ? { forwarding } : {};
    service.reals.push({ ip: real.ip, port: real.port, weight, ...limitsFromIpvs(options.get("-x"), options.get("-y"), { upper: "-x", lower: "-y" }, where, notes), ...own });
  });
  for (const [key, service] of services) fitPortsToForwarding(service, `service ${key}`, notes);
  return { config: { services: [...services.values()] }, notes };
}
