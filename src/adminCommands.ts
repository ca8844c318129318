// `natlb service …`, `natlb real …`, `natlb reload`: run-time changes of the running daemon over its
// control socket (what ipvsadm -A/-D/-a/-e/-d are for kernel IPVS). They change the running daemon only;
// the config file stays as it is.
import { Command, InvalidArgumentError } from "commander";
import { DEFAULT_CONTROL_TIMEOUT_MS, defaultSocketPath, requestControl } from "./control";

interface ServiceAddress {
  vip: string;
  port: number;
  protocol?: "tcp" | "udp";
}

/** VIP:PORT or VIP:PORT/udp */
export function parseServiceAddress(text: string): ServiceAddress {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})(?:\/(tcp|udp))?$/.exec(text);
  if (!match) throw new InvalidArgumentError("expected VIP:PORT or VIP:PORT/udp, like 198.18.0.100:80");
  return { vip: match[1]!, port: Number(match[2]), ...(match[3] ? { protocol: match[3] as "tcp" | "udp" } : {}) };
}

/** IP or IP:PORT */
export function parseRealAddress(text: string): { ip: string; port?: number } {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(text);
  if (!match) throw new InvalidArgumentError("expected IP or IP:PORT, like 198.18.1.11:8080");
  return { ip: match[1]!, ...(match[2] ? { port: Number(match[2]) } : {}) };
}

function weight(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new InvalidArgumentError("expected a weight 0..65535");
  return value;
}

async function send(socket: string | undefined, route: string, body?: unknown): Promise<void> {
  await requestControl(socket ?? defaultSocketPath(), route, DEFAULT_CONTROL_TIMEOUT_MS, body === undefined ? {} : { body });
  console.log("natlb: done");
}

export function addAdminCommands(program: Command): void {
  const socketOption = ["-s, --socket <path>", "control socket of the daemon"] as const;

  const service = program.command("service").description("add or remove a virtual service of the running daemon");
  service
    .command("add")
    .argument("<vip:port[/udp]>", "the virtual service", parseServiceAddress)
    .option("--scheduler <name>", "rr, wrr, random, wrandom, sh or mh", "wrr")
    .option(...socketOption)
    .action((address: ServiceAddress, options: { scheduler: string; socket?: string }) =>
      send(options.socket, "POST /services", { ...address, scheduler: options.scheduler, reals: [] }),
    );
  service
    .command("remove")
    .argument("<vip:port[/udp]>", "the virtual service", parseServiceAddress)
    .option(...socketOption)
    .action((address: ServiceAddress, options: { socket?: string }) => send(options.socket, "DELETE /services", address));

  const real = program.command("real").description("add, reweight or remove a real server of a running service");
  real
    .command("add")
    .argument("<vip:port[/udp]>", "the virtual service", parseServiceAddress)
    .argument("<ip[:port]>", "the real server (port defaults to the service port)", parseRealAddress)
    .option("-w, --weight <n>", "weight 0..65535", weight, 1)
    .option(...socketOption)
    .action((address: ServiceAddress, server: { ip: string; port?: number }, options: { weight: number; socket?: string }) =>
      send(options.socket, "POST /reals", { service: address, real: { ...server, weight: options.weight } }),
    );
  real
    .command("weight")
    .argument("<vip:port[/udp]>", "the virtual service", parseServiceAddress)
    .argument("<ip[:port]>", "the real server", parseRealAddress)
    .argument("<weight>", "0..65535; 0 drains it: no new connections", weight)
    .option(...socketOption)
    .action((address: ServiceAddress, server: { ip: string; port?: number }, value: number, options: { socket?: string }) =>
      send(options.socket, "PUT /reals", { service: address, real: server, weight: value }),
    );
  real
    .command("remove")
    .argument("<vip:port[/udp]>", "the virtual service", parseServiceAddress)
    .argument("<ip[:port]>", "the real server; its connections go on until they end", parseRealAddress)
    .option(...socketOption)
    .action((address: ServiceAddress, server: { ip: string; port?: number }, options: { socket?: string }) =>
      send(options.socket, "DELETE /reals", { service: address, real: server }),
    );

  program
    .command("reload")
    .description("re-read the daemon's config file and apply it (like SIGHUP, but reports errors)")
    .option(...socketOption)
    .action((options: { socket?: string }) => send(options.socket, "POST /reload"));
}
