// `natlb service …`, `natlb real …`, `natlb reload`: run-time changes of the running daemon over its
// control socket (what ipvsadm -A/-D/-a/-e/-d are for kernel IPVS). They change the running daemon only;
// the config file stays as it is.
import { Command, InvalidArgumentError } from "commander";
import { addClientOptions, askDaemon, printResult, withExamples, type ClientOptions } from "./cliSupport";

export interface ServiceAddress {
  vip: string;
  port: number;
  protocol?: "tcp" | "udp";
}

export interface RealAddress {
  ip: string;
  port?: number;
}

/** VIP:PORT or VIP:PORT/udp */
export function parseServiceAddress(text: string): ServiceAddress {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})(?:\/(tcp|udp))?$/.exec(text);
  if (!match) throw new InvalidArgumentError("expected VIP:PORT or VIP:PORT/udp, like 198.18.0.100:80");
  return { vip: match[1]!, port: Number(match[2]), ...(match[3] ? { protocol: match[3] as "tcp" | "udp" } : {}) };
}

/** IP or IP:PORT */
export function parseRealAddress(text: string): RealAddress {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(text);
  if (!match) throw new InvalidArgumentError("expected IP or IP:PORT, like 198.18.1.11:8080");
  return { ip: match[1]!, ...(match[2] ? { port: Number(match[2]) } : {}) };
}

function weight(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isInteger(value) || value < 0 || value > 65535) {
    throw new InvalidArgumentError("expected a weight 0..65535");
  }
  return value;
}

function serviceName(s: ServiceAddress): string {
  return `${s.vip}:${s.port}${s.protocol === "udp" ? "/udp" : ""}`;
}

function realName(r: RealAddress): string {
  return r.port === undefined ? r.ip : `${r.ip}:${r.port}`;
}

/**
 * What a change command prints: with --json the daemon's answer ({"ok":true}) plus what was asked
 * (`action` and its arguments), so a script's log says what changed; otherwise one sentence.
 */
async function change(options: ClientOptions, route: string, body: Record<string, unknown> | undefined, action: string, sentence: string): Promise<void> {
  const answer = await askDaemon(options, route, body);
  const answerFields = typeof answer === "object" && answer !== null && !Array.isArray(answer) ? answer : { answer };
  printResult(options.json, { ok: true, ...answerFields, action, ...(body ?? {}) }, () => `natlb: ${sentence}`);
}

export function addAdminCommands(program: Command): void {
  const service = withExamples(
    program
      .command("service")
      .description("add or remove a virtual service of the running daemon (the config file stays as it is)"),
    "natlb service add 198.18.0.101:53/udp --scheduler rr",
    "natlb service remove 198.18.0.101:53/udp",
  );
  withExamples(
    addClientOptions(
      service
        .command("add")
        .description("add a virtual service without reals; add them with `natlb real add`")
        .argument("<vip:port[/udp]>", "the virtual service (TCP unless /udp)", parseServiceAddress)
        .option("--scheduler <name>", "rr, wrr, random, wrandom, sh or mh", "wrr"),
    ),
    "natlb service add 198.18.0.101:80 --scheduler mh",
  ).action((address: ServiceAddress, options: ClientOptions & { scheduler: string }) =>
    change(
      options,
      "POST /services",
      { ...address, scheduler: options.scheduler, reals: [] },
      "service add",
      `service ${serviceName(address)} added (scheduler ${options.scheduler}, no reals yet)`,
    ),
  );
  withExamples(
    addClientOptions(
      service
        .command("remove")
        .description("remove a virtual service; its connections end")
        .argument("<vip:port[/udp]>", "the virtual service", parseServiceAddress),
    ),
    "natlb service remove 198.18.0.101:80",
  ).action((address: ServiceAddress, options: ClientOptions) =>
    change(options, "DELETE /services", { ...address }, "service remove", `service ${serviceName(address)} removed`),
  );

  const real = withExamples(
    program.command("real").description("add, reweight or remove a real server of a running service (the config file stays as it is)"),
    "natlb real add 198.18.0.100:80 198.18.1.13:8080 --weight 2",
    "natlb real weight 198.18.0.100:80 198.18.1.11 0",
  );
  withExamples(
    addClientOptions(
      real
        .command("add")
        .description("add a real server to a service; it gets new connections at once")
        .argument("<vip:port[/udp]>", "the virtual service", parseServiceAddress)
        .argument("<ip[:port]>", "the real server (port defaults to the service port)", parseRealAddress)
        .option("-w, --weight <n>", "weight 0..65535", weight, 1),
    ),
    "natlb real add 198.18.0.100:80 198.18.1.13:8080 --weight 2",
  ).action((address: ServiceAddress, server: RealAddress, options: ClientOptions & { weight: number }) =>
    change(
      options,
      "POST /reals",
      { service: address, real: { ...server, weight: options.weight } },
      "real add",
      `real ${realName(server)} added to ${serviceName(address)} (weight ${options.weight})`,
    ),
  );
  withExamples(
    addClientOptions(
      real
        .command("weight")
        .description("change a real server's weight; 0 drains it (its connections go on, no new ones)")
        .argument("<vip:port[/udp]>", "the virtual service", parseServiceAddress)
        .argument("<ip[:port]>", "the real server", parseRealAddress)
        .argument("<weight>", "0..65535; 0 drains it: no new connections", weight),
    ),
    "natlb real weight 198.18.0.100:80 198.18.1.11 0",
  ).action((address: ServiceAddress, server: RealAddress, value: number, options: ClientOptions) =>
    change(
      options,
      "PUT /reals",
      { service: address, real: server, weight: value },
      "real weight",
      `real ${realName(server)} of ${serviceName(address)} now has weight ${value}${value === 0 ? " (draining)" : ""}`,
    ),
  );
  withExamples(
    addClientOptions(
      real
        .command("remove")
        .description("remove a real server from a service; its connections go on until they end")
        .argument("<vip:port[/udp]>", "the virtual service", parseServiceAddress)
        .argument("<ip[:port]>", "the real server; its connections go on until they end", parseRealAddress),
    ),
    "natlb real remove 198.18.0.100:80 198.18.1.12",
  ).action((address: ServiceAddress, server: RealAddress, options: ClientOptions) =>
    change(
      options,
      "DELETE /reals",
      { service: address, real: server },
      "real remove",
      `real ${realName(server)} removed from ${serviceName(address)}`,
    ),
  );

  withExamples(
    addClientOptions(
      program
        .command("reload")
        .description(
          "make the daemon re-read its own config file and apply it (like SIGHUP, but reports errors); --config only finds the socket",
        ),
    ),
    "natlb reload --config /etc/natlb/natlb.json",
  ).action((options: ClientOptions) => change(options, "POST /reload", undefined, "reload", "config reloaded"));
}
