// `natlb`: the command line. run (the daemon), status and conns (ask the daemon over its local
// socket), demo (lab + balancer + large download + summary), bench (issue #3).
import { Command, InvalidArgumentError } from "commander";
import { loadConfigFile, parseConfigText } from "./config";
import { discoverGateway } from "./gateway/interfaces";
import { KernelSetup, removeNatlbKernelState } from "./kernel";
import { namespaceLockHeld } from "./namespaceLock";
import { DEFAULT_CONTROL_TIMEOUT_MS, defaultSocketPath, requestControl } from "./control";
import { addAdminCommands } from "./adminCommands";
import { startDaemon, type Daemon } from "./daemon";
import { checkoutScript } from "./checkoutTools";
import { kernelPlanFor, type BalancerStatus } from "./balancer";
import type { Connection } from "./flows/flowMap";
import { NatlbError } from "./errors";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";

function positiveInteger(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError("expected a positive integer");
  return value;
}

function formatStatus(status: BalancerStatus): string {
  const lines = [
    `natlb: ${status.services.length} service(s); flows ${status.flows.live}/${status.flows.capacity}; interfaces ${status.interfaces
      .map((i) => `${i.name}(${i.role}, ${i.receivePath}${i.xdp ? ` ${i.xdp.mode}, ${i.xdp.receiveQueues} queue(s)` : ""})`)
      .join(" ")}`,
    ...(status.kernelFastPath.enabled
      ? [`kernel fast path: ${status.kernelFastPath.flows} flow(s), ${status.counters.kernelForwardedPackets} segment(s) forwarded`]
      : []),
    "Prot LocalAddress:Port Scheduler",
    "  -> RemoteAddress:Port      Weight  State  ActiveConn  InActConn",
  ];
  for (const s of status.services) {
    lines.push(`${s.protocol.toUpperCase().padEnd(4)} ${`${s.vip}:${s.port}`.padEnd(21)} ${s.scheduler}`);
    for (const r of s.reals) {
      lines.push(
        `  -> ${`${r.ip}:${r.port}`.padEnd(22)} ${String(r.weight).padStart(6)}  ${(r.up ? "up" : "DOWN").padEnd(5)}  ${String(
          r.activeConns,
        ).padStart(10)}  ${String(r.inactiveConns).padStart(9)}`,
      );
    }
  }
  const c = status.counters;
  const drops = Object.entries(c)
    .filter(([name, value]) => (name.startsWith("drop") || name === "ringDrops") && value > 0)
    .map(([name, value]) => `${name.replace(/^drop/, "").replace(/^./, (x) => x.toLowerCase())} ${value}`);
  lines.push(
    `frames: ${c.toReal} to reals, ${c.toClient} to clients; drops: ${drops.length ? drops.join(", ") : "none"}`,
  );
  const f = status.flows;
  const evicted = f.evicted.halfOpenTcpShare + f.evicted.halfOpenTcpRoom + f.evicted.udpShare + f.evicted.udpRoom;
  if (f.unassured.halfOpenTcp + f.unassured.udp + evicted + f.expiredUnderPressure > 0) {
    lines.push(
      `flood defences: unassured ${f.unassured.halfOpenTcp} half-open TCP, ${f.unassured.udp} UDP; ` +
        `evicted ${evicted} (half-open TCP ${f.evicted.halfOpenTcpShare} for its share, ${f.evicted.halfOpenTcpRoom} for room; ` +
        `UDP ${f.evicted.udpShare} for its share, ${f.evicted.udpRoom} for room); expired under pressure ${f.expiredUnderPressure}`,
    );
  }
  return lines.join("\n");
}

function formatConnections(connections: Connection[]): string {
  const lines = ["Pro State        Client                 Virtual                Real                   Idle(s)"];
  for (const c of connections) {
    lines.push(
      [
        c.protocol.toUpperCase().padEnd(3),
        c.state.padEnd(12),
        `${c.client.ip}:${c.client.port}`.padEnd(22),
        `${c.vip.ip}:${c.vip.port}`.padEnd(22),
        `${c.real.ip}:${c.real.port}`.padEnd(22),
        (c.idleMs / 1000).toFixed(1),
      ].join(" "),
    );
  }
  lines.push(`${connections.length} connection(s)`);
  return lines.join("\n");
}

async function ask(socket: string | undefined, route: string): Promise<unknown> {
  return requestControl(socket ?? defaultSocketPath(), route, DEFAULT_CONTROL_TIMEOUT_MS);
}

export function buildProgram(): Command {
  const program = new Command("natlb")
    .description("Layer-4 IP/NAT load balancer for Linux gateways")
    .showHelpAfterError()
    .exitOverride();

  program
    .command("run")
    .description("run the balancer (data plane + control plane) until SIGTERM/SIGINT; SIGHUP reloads the config")
    .requiredOption("-c, --config <file>", "JSON configuration file")
    .option("-s, --socket <path>", "control socket (default: per network namespace, under /run/natlb)")
    .option("--no-kernel-setup", "do not install the kernel set-up (`natlb kernel-setup` must have installed it)")
    .action(async (options: { config: string; socket?: string; kernelSetup: boolean }) => {
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
      try {
        daemon = await startDaemon({
          configPath: options.config,
          kernelSetup: options.kernelSetup,
          ...(options.socket ? { socketPath: options.socket } : {}),
        });
        process.off("SIGHUP", ignoreHangupWhileStarting);
        if (stopRequested) void daemon.stop();
        await daemon.stopped;
      } finally {
        process.off("SIGHUP", ignoreHangupWhileStarting);
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
      }
    });

  program
    .command("status")
    .description("services, real servers, weights, active/inactive connections of the running daemon")
    .option("--json", "machine-readable output")
    .option("-s, --socket <path>", "control socket of the daemon")
    .action(async (options: { json?: boolean; socket?: string }) => {
      const status = (await ask(options.socket, "GET /status")) as BalancerStatus;
      console.log(options.json ? JSON.stringify(status, null, 2) : formatStatus(status));
    });

  program
    .command("conns")
    .description("the flow map of the running daemon")
    .option("--json", "machine-readable output")
    .option("--limit <n>", "at most this many connections", positiveInteger)
    .option("-s, --socket <path>", "control socket of the daemon")
    .action(async (options: { json?: boolean; socket?: string; limit?: number }) => {
      const route = options.limit ? `GET /conns?limit=${options.limit}` : "GET /conns";
      const body = (await ask(options.socket, route)) as { connections: Connection[] };
      console.log(options.json ? JSON.stringify(body, null, 2) : formatConnections(body.connections));
    });

  program
    .command("check-config")
    .description("validate a configuration file and print it with defaults applied")
    .argument("<file>")
    .action(async (file: string) => {
      const config = parseConfigText(await readFile(file, "utf8"), file);
      console.log(JSON.stringify(config, null, 2));
    });

  addAdminCommands(program);

  program
    .command("kernel-setup")
    .description("only the CAP_NET_ADMIN step: install the VIPs' blackhole routes and natlb's nftables table for a config (for `run --no-kernel-setup` with CAP_NET_RAW alone)")
    .requiredOption("-c, --config <file>", "JSON configuration file")
    .action(async (options: { config: string }) => {
      const config = await loadConfigFile(options.config);
      const gateway = await discoverGateway(config);
      // With a daemon running (after a reload, say), only add: its flows' claims and the VIPs it
      // still serves stay.
      const daemonRunning = await namespaceLockHeld();
      await new KernelSetup().apply(kernelPlanFor(config, gateway.interfaces), { keepOthers: daemonRunning });
      console.log(`natlb: kernel set-up installed for ${config.services.length} service(s); \`natlb kernel-undo\` removes it`);
    });

  program
    .command("kernel-undo")
    .description("remove every route (protocol 199) and the nftables table natlb installed in this network namespace")
    .action(async () => {
      if (await namespaceLockHeld()) {
        throw new NatlbError("E_RUNNING", "a natlb daemon runs in this network namespace: stop it first, then undo its kernel set-up");
      }
      await removeNatlbKernelState();
      console.log("natlb: kernel set-up removed");
    });

  program
    .command("demo")
    .description("build a lab in network namespaces, run natlb, download a large file through it, print a summary")
    .option("--mib <n>", "size of the download in MiB", positiveInteger, 1024)
    .option("--conns <n>", "parallel connections", positiveInteger, 4)
    .option("--offloads <on|off>", "veth offloads (GSO/TSO/GRO)", "on")
    .action(async (options: { mib: number; conns: number; offloads: string }) => {
      if (options.offloads !== "on" && options.offloads !== "off") throw new InvalidArgumentError("--offloads is on or off");
      const demo = require(checkoutScript("lab/demo.js", "demo")) as typeof import("../lab/demo");
      await demo.runDemo({ mib: options.mib, conns: options.conns, offloads: options.offloads === "on" });
    });

  program
    .command("bench")
    .description("large files, short connections, serial latency and CPU against kernel NAT, HAProxy and a Node proxy (bench/README.md)")
    .allowUnknownOption()
    .argument("[options...]", "passed to the benchmark, e.g. --quick, --json <file>")
    .action(async (args: string[]) => {
      const script = checkoutScript("bench/run.js", "bench");
      const child = spawn(process.execPath, [script, ...args], { stdio: "inherit" });
      const code = await new Promise<number>((resolve) => child.on("exit", (exitCode) => resolve(exitCode ?? 1)));
      if (code !== 0) throw new NatlbError("E_BENCH", `the benchmark exited with status ${code}`);
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "commander.helpDisplayed" || code === "commander.version" || code === "commander.help") {
      process.exitCode = 0;
      return;
    }
    if (typeof code === "string" && code.startsWith("commander.")) {
      process.exitCode = 2;
      return;
    }
    const message = error instanceof NatlbError || error instanceof Error ? error.message : String(error);
    console.error(`natlb: ${message}`);
    process.exitCode = 1;
  }
}
