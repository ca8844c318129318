// `natlb`: the command line. run (the daemon), status and conns (ask the daemon over its local
// socket), the run-time changes (adminCommands.ts), demo (lab + balancer + large download + summary),
// bench (issue #3). Every command has --json and an example in its --help; exit statuses are in
// exitCodes.ts.
import { readFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { addAdminCommands } from "./adminCommands";
import { addHaCommands } from "./haCommands";
import { addClientOptions, askDaemon, printResult, reportFailure, wantsJson, withExamples, type ClientOptions } from "./cliSupport";
import { checkoutScript } from "./checkoutTools";
import type { BalancerStatus } from "./balancer";
import type { Daemon } from "./daemon";
import { connectionQueryString, DEFAULT_CONNECTION_PAGE, FLOW_STATE_NAMES, MAX_CONNECTION_PAGE, type ConnectionPage, type ConnectionQuery } from "./flows/connectionQuery";
import type { Connection } from "./flows/flowMap";
import { NatlbError } from "./errors";
import { exitCodeHelp } from "./exitCodes";
import { LOG_FORMATS, LOG_LEVELS, LOG_LEVEL_ENV, resolveLogLevel, type LogFormat } from "./logSettings";
import { importedConfigText } from "./import/importResult";
import { formatConnections, formatEvent, formatStatus } from "./statusText";
import { formatStats } from "./stats/statsText";
import type { BalancerStats } from "./stats/trafficStats";
import { resolveSocketPath } from "./control/client";
import { watchEvents } from "./control/eventsClient";

// The daemon, the kernel set-up and the config schema load only in the commands that use them:
// `natlb status` starts in half the time without them.

function positiveInteger(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isInteger(value) || value < 1) throw new InvalidArgumentError("expected a positive integer");
  return value;
}

function nonNegativeInteger(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) throw new InvalidArgumentError("expected an integer >= 0");
  return value;
}

/** natlb's version, from the package.json two levels above dist/src/ (a checkout and the installed package alike). */
export function packageVersion(): string {
  const path = join(__dirname, "..", "..", "package.json");
  const parsed: unknown = JSON.parse(readFileSync(path, "utf8"));
  const version = typeof parsed === "object" && parsed !== null ? (parsed as { version?: unknown }).version : undefined;
  if (typeof version !== "string") throw new NatlbError("E_INTERNAL", `${path} has no version: reinstall natlb`);
  return version;
}

export interface ProgramOptions {
  /** Leave commander's own error text out (main prints errors as JSON instead). */
  readonly quietUsageErrors?: boolean;
}

export function buildProgram(options: ProgramOptions = {}): Command {
  const program = new Command("natlb")
    .description("Layer-4 IP/NAT load balancer for Linux gateways")
    .version(packageVersion(), "-V, --version", "print natlb's version")
    .configureOutput(options.quietUsageErrors ? { outputError: () => undefined } : {})
    .showHelpAfterError(options.quietUsageErrors ? false : "(add --help for usage and examples)")
    .exitOverride()
    .addHelpText(
      "after",
      `\nExamples:\n  $ natlb run --config /etc/natlb/natlb.json\n  $ natlb status --config /etc/natlb/natlb.json\n  $ natlb <command> --help\n\n${exitCodeHelp()}\n` +
        `\nWith --json, results print as JSON on stdout and errors as {"error":{"code","message",...}} on stderr.`,
    );

  withExamples(
    program
      .command("run")
      .description("run the balancer (data plane + control plane) until SIGTERM/SIGINT; SIGHUP reloads the config")
      .requiredOption("-c, --config <file>", "JSON configuration file")
      .option("-s, --socket <path>", "control socket (default: the config's socket, else one per network namespace under /run/natlb)")
      .option("--no-kernel-setup", "do not install the kernel set-up (`natlb kernel-setup` must have installed it)")
      .addOption(new Option("--log-level <level>", `least severe log records written (default: $${LOG_LEVEL_ENV}, else info)`).choices(LOG_LEVELS))
      .addOption(new Option("--log-format <format>", "auto: readable on a terminal, JSON lines otherwise").choices(LOG_FORMATS).default("auto"))
      .option("--json", "log JSON lines even on a terminal; a start-up error prints as JSON on stderr"),
    "natlb run --config /etc/natlb/natlb.json --log-level debug",
    "NATLB_LOG_LEVEL=warn natlb run --config natlb.json --no-kernel-setup",
  ).action(
    async (options: { config: string; socket?: string; kernelSetup: boolean; logLevel?: string; logFormat: LogFormat; json?: boolean }) => {
      const level = resolveLogLevel(options.logLevel);
      const { createLogger } = require("./log") as typeof import("./log");
      const { startDaemon } = require("./daemon") as typeof import("./daemon");
      const { handleFatalErrors } = require("./fatalErrors") as typeof import("./fatalErrors");
      const logger = createLogger({ level, format: options.json ? "json" : options.logFormat });
      // Signals may arrive at any time, more than once, and to the whole process group (npx,
      // systemd and terminals do that): the first one stops, later ones wait for the same stop. One
      // that arrives during start-up stops the daemon as soon as it is up, so start-up's kernel
      // set-up is undone too.
      let daemon: Daemon | undefined;
      let stopRequested = false;
      const onSignal = () => {
        stopRequested = true;
        if (daemon) void daemon.stop();
      };
      const ignoreHangupWhileStarting = () => undefined;
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
      process.on("SIGHUP", ignoreHangupWhileStarting);
      const starting = startDaemon({
        configPath: options.config,
        kernelSetup: options.kernelSetup,
        logger,
        ...(options.socket ? { socketPath: options.socket } : {}),
      });
      // An error nobody caught stops the daemon (once it is up, when it is still starting) and exits 1.
      const fatal = handleFatalErrors(logger, async () => {
        stopRequested = true;
        await (daemon ?? (await starting.catch(() => undefined)))?.stop();
      });
      try {
        daemon = await starting;
        process.off("SIGHUP", ignoreHangupWhileStarting);
        if (stopRequested) void daemon.stop();
        await daemon.stopped;
      } finally {
        fatal.dispose();
        process.off("SIGHUP", ignoreHangupWhileStarting);
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
      }
    },
  );

  withExamples(
    addClientOptions(
      program
        .command("status")
        .description("services, real servers, weights, health, active/inactive connections and counters of the running daemon"),
    ),
    "natlb status --config /etc/natlb/natlb.json",
    "natlb status --json | jq '.services[].reals[] | {ip, activeConns}'",
  ).action(async (options: ClientOptions) => {
    const status = (await askDaemon(options, "GET /status")) as BalancerStatus;
    printResult(options.json, status, () => formatStatus(status));
  });

  withExamples(
    addClientOptions(
      program
        .command("stats")
        .description(
          "traffic per service and real server, like ipvsadm -L --stats: connections, packets and bytes in (client to real) and out, " +
            "since natlb started (kernel fast path included); with --rate, per second",
        )
        .option("--rate", "rates instead of totals, like ipvsadm --rate: CPS, InPPS, OutPPS, InBPS, OutBPS"),
    ),
    "natlb stats",
    "natlb stats --rate",
    "natlb stats --json | jq '.services[].reals[] | {ip, bytesOut: .counts.bytesOut}'",
  ).action(async (options: ClientOptions & { rate?: boolean }) => {
    const stats = (await askDaemon(options, "GET /stats")) as BalancerStats;
    printResult(options.json, stats, () => formatStats(stats, options.rate === true));
  });

  withExamples(
    addClientOptions(
      program
        .command("conns")
        .description(
          `the flow map of the running daemon, one page at a time: one line per connection (client, VIP, real, state, idle time); ` +
            `at most ${DEFAULT_CONNECTION_PAGE} unless --limit says otherwise, and the --cursor for the next page when there is one`,
        )
        .option("--limit <n>", `at most this many connections (1..${MAX_CONNECTION_PAGE}, default ${DEFAULT_CONNECTION_PAGE})`, positiveInteger)
        .option("--cursor <n>", "go on where a previous page ended (its \"next\")", nonNegativeInteger)
        .option("--service <vip:port[/proto]>", "only this service's connections, e.g. 198.18.0.100:80/tcp")
        .option("--real <ip[:port]>", "only connections to this real server")
        .option("--client <ip[/prefix]|ip:port>", "only connections from this client address, network or address and port")
        .option("--state <state>", `only connections in this state (${FLOW_STATE_NAMES.join(", ")})`)
        .option("--templates", "list persistence templates too (TEMPLATE lines: client network, real, the flows each controls), as ipvsadm -Lc does"),
    ),
    "natlb conns --limit 20",
    "natlb conns --service 198.18.0.100:80/tcp --state established",
    "natlb conns --client 198.19.0.0/16 --cursor 4711",
    "natlb conns --service 198.18.0.100:443 --templates",
  ).action(async (options: ClientOptions & ConnectionQuery) => {
    const { limit, cursor, service, real, client, state, templates } = options;
    const query = connectionQueryString({ limit, cursor, service, real, client, state, ...(templates ? { templates } : {}) });
    const page = (await askDaemon(options, query ? `GET /conns?${query}` : "GET /conns")) as ConnectionPage<Connection>;
    printResult(options.json, page, () => formatConnections(page.connections, page.more ? page.next : undefined));
  });

  withExamples(
    addClientOptions(
      program
        .command("metrics")
        .description("the daemon's Prometheus metrics, from its control socket (the read role), as a scrape would see them"),
    ),
    "natlb metrics | grep natlb_real_active_connections",
  ).action(async (options: ClientOptions) => {
    const text = String(await askDaemon(options, "GET /metrics"));
    printResult(options.json, { metrics: text }, () => text.trimEnd());
  });

  withExamples(
    addClientOptions(
      program
        .command("events")
        .description(
          "follow the running daemon's events until Ctrl-C: health changes with reasons, configuration changes with who made them, flow-map pressure, drop spikes",
        )
        .option("--after <seq>", "first replay the events the daemon still keeps after this sequence number", nonNegativeInteger),
    ),
    "natlb events",
    "natlb events --json --after 0 | jq 'select(.type == \"health\")'",
  ).action(async (options: ClientOptions & { after?: number }) => {
    const socket = await resolveSocketPath({ socket: options.socket, config: options.config });
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    try {
      for await (const event of watchEvents(socket, { ...(options.after === undefined ? {} : { after: options.after }), signal: stop.signal })) {
        process.stdout.write(`${options.json ? JSON.stringify(event) : formatEvent(event)}\n`);
      }
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  });

  withExamples(
    program
      .command("check-config")
      .description("validate a configuration file and print it, as JSON, with every default filled in (exit status 3 when invalid)")
      .argument("<file>", "JSON configuration file")
      .option("--json", "errors as JSON on stderr, with every problem in error.issues"),
    "natlb check-config /etc/natlb/natlb.json",
  ).action(async (file: string) => {
    const { loadConfigFile } = require("./config") as typeof import("./config");
    printResult(true, await loadConfigFile(file), () => "");
  });

  withExamples(
    program
      .command("import")
      .description(
        "turn `ipvsadm-save -n` output or keepalived.conf virtual_server blocks into a natlb config (printed, or written with --output); whatever has no natlb equivalent is listed on stderr",
      )
      .addOption(new Option("--ipvsadm <file>", "ipvsadm-save -n output").conflicts("keepalived"))
      .addOption(new Option("--keepalived <file>", "keepalived.conf"))
      .option("-o, --output <file>", "write the config there instead of stdout (refuses to overwrite)")
      .option("--json", "print {config, notes} as JSON"),
    "natlb import --keepalived /etc/keepalived/keepalived.conf",
    "natlb import --ipvsadm rules.save -o /etc/natlb/natlb.json   # rules.save from ipvsadm-save -n",
  ).action(async (options: { ipvsadm?: string; keepalived?: string; output?: string; json?: boolean }) => {
    const { importFile } = require("./import/importFile") as typeof import("./import/importFile");
    const source = options.ipvsadm !== undefined ? { kind: "ipvsadm" as const, file: options.ipvsadm } : options.keepalived !== undefined ? { kind: "keepalived" as const, file: options.keepalived } : undefined;
    if (source === undefined) throw new InvalidArgumentError("give --ipvsadm <file> or --keepalived <file>");
    const result = await importFile(source.kind, source.file, options.output);
    if (options.json) {
      printResult(true, result, () => "");
      return;
    }
    for (const n of result.notes) process.stderr.write(`natlb import: ${source.file}: ${n.where}: ${n.note}\n`);
    if (options.output === undefined) process.stdout.write(importedConfigText(result));
    else process.stderr.write(`natlb import: wrote ${result.config.services.length} service(s) to ${options.output}\n`);
  });

  addAdminCommands(program);
  addHaCommands(program);

  withExamples(
    program
      .command("kernel-setup")
      .description(
        "only the CAP_NET_ADMIN step: install the VIPs' blackhole routes and natlb's nftables table for a config (for `run --no-kernel-setup` with CAP_NET_RAW alone)",
      )
      .requiredOption("-c, --config <file>", "JSON configuration file")
      .option("--json", "print the result as JSON (errors as JSON on stderr)"),
    "natlb kernel-setup --config /etc/natlb/natlb.json   # e.g. systemd ExecStartPre=",
  ).action(async (options: { config: string; json?: boolean }) => {
    const { loadConfigFile } = require("./config") as typeof import("./config");
    const { discoverGateway } = require("./gateway/interfaces") as typeof import("./gateway/interfaces");
    const { KernelSetup } = require("./kernel") as typeof import("./kernel");
    const { namespaceLockHeld } = require("./namespaceLock") as typeof import("./namespaceLock");
    const { kernelPlanFor } = require("./balancer") as typeof import("./balancer");
    const config = await loadConfigFile(options.config);
    const gateway = await discoverGateway(config);
    // With a daemon running (after a reload, say), only add: its flows' claims and the VIPs it
    // still serves stay.
    const daemonRunning = await namespaceLockHeld();
    await new KernelSetup().apply(kernelPlanFor(config, gateway.interfaces), { keepOthers: daemonRunning });
    printResult(
      options.json,
      { ok: true, services: config.services.length, keptOthers: daemonRunning },
      () => `natlb: kernel set-up installed for ${config.services.length} service(s); \`natlb kernel-undo\` removes it`,
    );
  });

  withExamples(
    program
      .command("kernel-undo")
      .description("remove every route (protocol 199) and the nftables table natlb installed in this network namespace")
      .option("--json", "print the result as JSON (errors as JSON on stderr)"),
    "natlb kernel-undo   # e.g. systemd ExecStopPost=",
  ).action(async (options: { json?: boolean }) => {
    const { namespaceLockHeld } = require("./namespaceLock") as typeof import("./namespaceLock");
    const { removeNatlbKernelState } = require("./kernel") as typeof import("./kernel");
    if (await namespaceLockHeld()) {
      throw new NatlbError("E_RUNNING", "a natlb daemon runs in this network namespace: stop it first, then undo its kernel set-up");
    }
    await removeNatlbKernelState();
    printResult(options.json, { ok: true }, () => "natlb: kernel set-up removed");
  });

  withExamples(
    program
      .command("demo")
      .description(
        "build a lab in network namespaces (client -> gateway -> 3 reals), run natlb, download a large file through it with a progress line, print a summary; needs root and a checkout",
      )
      .option("--mib <n>", "size of the download in MiB", positiveInteger, 1024)
      .option("--conns <n>", "parallel connections", positiveInteger, 4)
      .addOption(new Option("--offloads <on|off>", "veth offloads (GSO/TSO/GRO)").choices(["on", "off"]).default("on"))
      .option("--no-progress", "no progress line during the download")
      .option("--json", "print the summary as JSON on stdout (the running commentary goes to stderr)"),
    "natlb demo --mib 256 --conns 2   # as root",
  ).action(async (options: { mib: number; conns: number; offloads: "on" | "off"; progress: boolean; json?: boolean }) => {
    const demo = require(checkoutScript("lab/demo.js", "demo")) as typeof import("../lab/demo");
    const summary = await demo.runDemo({
      mib: options.mib,
      conns: options.conns,
      offloads: options.offloads === "on",
      progress: options.progress,
      json: options.json === true,
    });
    if (options.json) printResult(true, summary, () => "");
  });

  withExamples(
    program
      .command("bench")
      .description(
        "large files, short connections, serial latency and CPU against kernel NAT, HAProxy and a Node proxy (bench/README.md); needs root and a checkout",
      )
      .allowUnknownOption()
      .argument("[options...]", "passed to the benchmark, e.g. --quick, --no-progress, --json <file> (the report's file: its --json takes a path)"),
    "natlb bench --quick --json /tmp/bench.json   # as root",
  ).action(async (args: string[]) => {
    const script = checkoutScript("bench/run.js", "bench");
    const child = spawn(process.execPath, [script, ...args], { stdio: "inherit" });
    // The benchmark's own status (0 ok, 1 errors in the run, 2 bad arguments) is natlb's.
    process.exitCode = await new Promise<number>((resolve) => child.on("exit", (exitCode) => resolve(exitCode ?? 1)));
  });

  return program;
}

/** Runs the command line; sets process.exitCode from exitCodes.ts. */
export async function main(argv: string[]): Promise<void> {
  const json = wantsJson(argv.slice(2));
  try {
    await buildProgram({ quietUsageErrors: json }).parseAsync(argv);
  } catch (error) {
    process.exitCode = reportFailure(error, json);
  }
}
