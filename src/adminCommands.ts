// `natlb service …`, `natlb real …`, `natlb reload`, `natlb save`: run-time changes of the running
// daemon over its control socket (what ipvsadm -A/-E/-D/-a/-e/-d are for kernel IPVS), and the running
// configuration as a file (ipvsadm -S). They change the running daemon only; the config file stays as
// it is until `natlb save` output replaces it.
import { Command, InvalidArgumentError, Option } from "commander";
import { addClientOptions, askDaemon, printResult, withExamples, type ClientOptions } from "./cliSupport";
import { resolveSocketPath } from "./control/client";
import { streamControl } from "./control/streamClient";
import { DRAIN_THENS, type DrainResult, type DrainThen } from "./drain/drainOutcome";
import { ApiError } from "./errors";
import { EXIT_CODES } from "./exitCodes";
import { FORWARDING_MODES } from "./config";
import { SCHEDULER_NAMES } from "./schedulers/types";

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

/** "60s", "2m", "1h", "500ms" or plain seconds ("90") -> seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600 }[(match?.[2] ?? "s") as "ms" | "s" | "m" | "h"];
  const seconds = match ? Number(match[1]) * unit : Number.NaN;
  if (!(seconds > 0) || seconds > 2147483) throw new InvalidArgumentError('expected a duration like "60s", "5m", "1h" or "500ms"');
  return seconds;
}

/** --set's JSON: an object of service fields. */
function serviceFields(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidArgumentError(`expected a JSON object of service fields like '{"slowStartS":30}'`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InvalidArgumentError(`expected a JSON object of service fields like '{"slowStartS":30}'`);
  return value as Record<string, unknown>;
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
      .description("add, edit or remove a virtual service of the running daemon (the config file stays as it is; `natlb save` prints the running one)"),
    "natlb service add 198.18.0.101:53/udp --scheduler rr",
    "natlb service edit 198.18.0.101:53/udp --scheduler sh",
    "natlb service remove 198.18.0.101:53/udp",
  );
  withExamples(
    addClientOptions(
      service
        .command("add")
        .description("add a virtual service without reals; add them with `natlb real add`")
        .argument("<vip:port[/udp]>", "the virtual service (TCP unless /udp)", parseServiceAddress)
        .option("--scheduler <name>", SCHEDULER_NAMES.join(", "), "wrr")
        .option("--forwarding <mode>", `how frames reach the reals: ${FORWARDING_MODES.join(", ")} (nat; dr: direct routing; fullnat: source rewritten too); default nat`)
        .option("--local-address <ip...>", "fullnat: natlb's own addresses on the reals' side that the reals see as the client (DPVS's laddr)"),
    ),
    "natlb service add 198.18.0.101:80 --scheduler mh",
    "natlb service add 198.18.0.102:80 --forwarding dr",
    "natlb service add 198.18.0.103:80 --forwarding fullnat --local-address 198.18.1.2 198.18.1.3",
  ).action((address: ServiceAddress, options: ClientOptions & { scheduler: string; forwarding?: string; localAddress?: string[] }) =>
    change(
      options,
      "POST /services",
      {
        ...address,
        ...(options.forwarding !== undefined ? { forwarding: options.forwarding } : {}),
        ...(options.localAddress !== undefined ? { fullnat: { localAddresses: options.localAddress } } : {}),
        scheduler: options.scheduler,
        reals: [],
      },
      "service add",
      `service ${serviceName(address)} added (scheduler ${options.scheduler}${options.forwarding !== undefined ? `, forwarding ${options.forwarding}` : ""}${options.localAddress !== undefined ? ` from ${options.localAddress.join(", ")}` : ""}, no reals yet)`,
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
  withExamples(
    addClientOptions(
      service
        .command("edit")
        .description(
          "change a running service's scheduler, health check, slowStartS or any other service field of the config (like ipvsadm -E); its reals and their connections stay",
        )
        .argument("<vip:port[/udp]>", "the virtual service", parseServiceAddress)
        .option("--scheduler <name>", `the new scheduler (${SCHEDULER_NAMES.join(", ")})`)
        .option("--set <json>", "service fields to replace, as a JSON object (checked like the config file's service)", serviceFields),
    ),
    "natlb service edit 198.18.0.100:80 --scheduler sh",
    `natlb service edit 198.18.0.100:80 --set '{"slowStartS":30,"healthCheck":{"type":"http","path":"/healthz"}}'`,
  ).action((address: ServiceAddress, options: ClientOptions & { scheduler?: string; set?: Record<string, unknown> }) => {
    const set = { ...(options.set ?? {}), ...(options.scheduler !== undefined ? { scheduler: options.scheduler } : {}) };
    if (Object.keys(set).length === 0) throw new InvalidArgumentError("nothing to change: give --scheduler or --set");
    return change(options, "PUT /services", { service: address, set }, "service edit", `service ${serviceName(address)} now has ${Object.entries(set).map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(", ")}`);
  });

  const real = withExamples(
    program.command("real").description("add, reweight, drain or remove a real server of a running service (the config file stays as it is)"),
    "natlb real add 198.18.0.100:80 198.18.1.13:8080 --weight 2",
    "natlb real drain 198.18.0.100:80 198.18.1.11 --wait --then remove",
    "natlb real weight 198.18.0.100:80 198.18.1.11 0",
  );
  withExamples(
    addClientOptions(
      real
        .command("add")
        .description("add a real server to a service; it gets new connections at once")
        .argument("<vip:port[/udp]>", "the virtual service", parseServiceAddress)
        .argument("<ip[:port]>", "the real server (port defaults to the service port)", parseRealAddress)
        .option("-w, --weight <n>", "weight 0..65535", weight, 1)
        .option("--forwarding <mode>", `this real's own forwarding, overriding the service's: ${FORWARDING_MODES.join(", ")}`),
    ),
    "natlb real add 198.18.0.100:80 198.18.1.13:8080 --weight 2",
    "natlb real add 198.18.0.100:80 198.18.1.14 --forwarding dr",
  ).action((address: ServiceAddress, server: RealAddress, options: ClientOptions & { weight: number; forwarding?: string }) =>
    change(
      options,
      "POST /reals",
      { service: address, real: { ...server, weight: options.weight, ...(options.forwarding !== undefined ? { forwarding: options.forwarding } : {}) } },
      "real add",
      `real ${realName(server)} added to ${serviceName(address)} (weight ${options.weight}${options.forwarding !== undefined ? `, forwarding ${options.forwarding}` : ""})`,
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
      real
        .command("drain")
        .description(
          "drain a real server: weight 0 (no new connections; its connections go on), and when it has none left or the timeout comes, --then keep it at weight 0, remove it, or reset its last connections and remove it. With --wait, follows the drain and exits 0 once no connection is left, 1 when the timeout came first; without, the daemon finishes it (a drainFinished event tells)",
        )
        .argument("<vip:port[/udp]>", "the virtual service", parseServiceAddress)
        .argument("<ip[:port]>", "the real server", parseRealAddress)
        .option("--wait", "wait for the drain to end, printing the connections left on a terminal")
        .option("--timeout <duration>", 'how long the drain may take, e.g. "60s", "5m"', parseDuration, 60)
        .addOption(new Option("--then <what>", "at the end: keep it (weight 0), remove it, or reset its connections and remove it").choices(DRAIN_THENS).default("keep")),
    ),
    "natlb real drain 198.18.0.100:80 198.18.1.12 --wait --timeout 5m --then remove",
    "natlb real drain 198.18.0.100:80 198.18.1.12:8080 --then reset --timeout 30s   # returns at once",
  ).action(async (address: ServiceAddress, server: RealAddress, options: ClientOptions & { wait?: boolean; timeout: number; then: DrainThen }) => {
    const body = { service: address, real: server, timeoutS: options.timeout, then: options.then };
    if (!options.wait) {
      await change(options, "POST /reals/drain", body, "real drain", `real ${realName(server)} of ${serviceName(address)} is draining (weight 0); within ${options.timeout} s: then ${options.then}`);
      return;
    }
    await followDrain(options, { ...body, wait: true }, `${realName(server)} of ${serviceName(address)}`);
  });

  withExamples(
    addClientOptions(
      program
        .command("save")
        .description(
          "print the running configuration as a config file, with the changes made over the control socket since start (like ipvsadm -S); `natlb check-config` accepts it and `natlb run` reproduces it",
        ),
    ),
    "natlb save > /etc/natlb/natlb.json.new && natlb check-config /etc/natlb/natlb.json.new",
  ).action(async (options: ClientOptions) => {
    const config = await askDaemon(options, "GET /config");
    // The file itself, with or without --json: it is JSON.
    printResult(true, config, () => "");
  });

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

/**
 * A waiting drain: the daemon answers line by line. On a terminal, the connections left are shown as
 * they change (on stderr); at the end one sentence, or the result as JSON. Exit status 1 when the
 * deadline came with connections left.
 */
async function followDrain(options: ClientOptions, body: Record<string, unknown>, what: string): Promise<void> {
  const socket = await resolveSocketPath({ socket: options.socket, config: options.config });
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const live = process.stderr.isTTY && !options.json;
  let result: DrainResult | undefined;
  try {
    for await (const line of streamControl(socket, "/reals/drain", { method: "POST", body, signal: stop.signal })) {
      const item = line as { type: string; connectionsLeft?: number; error?: { code: string; message: string } } & Partial<DrainResult>;
      if (item.type === "progress" && live) process.stderr.write(`\rnatlb: draining ${what}: ${item.connectionsLeft} connection(s) left\u001b[K`);
      if (item.type === "error") throw new ApiError(item.error?.message ?? "the drain failed", { code: item.error?.code ?? "E_API", status: 409 });
      if (item.type === "finished") result = item as DrainResult;
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    if (live) process.stderr.write("\n");
  }
  if (result === undefined) {
    if (stop.signal.aborted) {
      process.stderr.write(`natlb: stopped following; the daemon goes on draining ${what}\n`);
      return;
    }
    throw new ApiError("the daemon ended the drain's answer without its result: see its log", { status: 500, code: "E_INTERNAL" });
  }
  const done = result;
  printResult(options.json, { ok: !done.deadlineHit, ...done }, () =>
    `natlb: ${what} ${done.deadlineHit ? `still had ${done.connectionsLeft} connection(s) at the deadline` : "has no connections left"} after ${(done.waitedMs / 1000).toFixed(1)} s; ${{ kept: "kept at weight 0", removed: "removed", reset: "its connections reset and removed", gone: "it had left the service already" }[done.done]}`,
  );
  if (done.deadlineHit) process.exitCode = EXIT_CODES.error;
}
