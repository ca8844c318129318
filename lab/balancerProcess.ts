// Runs the real `natlb run` daemon inside a lab's gateway namespace (as a user would). status() and
// connections() ask its control socket directly (a path socket reaches across network namespaces),
// in milliseconds even on a busy machine; cli() runs the real `natlb` commands for tests of the CLI.
// For end-to-end tests, the demo and the benchmark.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import type { BalancerStatus } from "../src/balancer";
import { requestControl } from "../src/control";
import { MAX_CONNECTION_PAGE, type ConnectionPage } from "../src/flows/connectionQuery";
import type { Connection } from "../src/flows/flowMap";
import type { Lab } from "./topology";

const NATLB_BIN = join(__dirname, "..", "..", "bin", "natlb.js");

export interface BalancerProcess {
  readonly socket: string;
  readonly configPath: string;
  readonly child: ChildProcess;
  /** stdout+stderr of the daemon so far (its JSON log lines). */
  output(): string;
  status(): Promise<BalancerStatus>;
  connections(): Promise<Connection[]>;
  /** Runs `natlb <args>` in the gateway namespace against this daemon's socket. */
  cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Sends `signal` (default SIGTERM) and waits for the exit. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export const NATLB_CLI = NATLB_BIN;

export interface StartBalancerOptions {
  readyTimeoutMs?: number;
  /** Extra arguments of `natlb run`, e.g. ["--no-kernel-setup"]. */
  runArgs?: string[];
  /** A command that runs natlb, e.g. ["setpriv", "--bounding-set=-net_admin", "--"] to drop a capability. */
  wrapper?: string[];
  /** The `natlb` script to run (default: this checkout's bin/natlb.js), e.g. an installed package's. */
  natlbBin?: string;
  /** The control socket's path (default: a new one under /run/natlb), e.g. the one a killed natlb left behind. */
  socket?: string;
  /** The namespace to run in (default: the lab's gateway), e.g. one instance of the ECMP lab. */
  ns?: string;
}

/** Where a balancer runs: a lab's gateway, or one gateway of the HA pair (haPairTopology.ts). */
export type BalancerHost = Pick<Lab, "id" | "spawn" | "tryExec"> & { readonly gateway: { readonly ns: string } };

export async function startBalancer(lab: BalancerHost, config: unknown, options: StartBalancerOptions = {}): Promise<BalancerProcess> {
  const dir = mkdtempSync(join(tmpdir(), `natlb-${lab.id}-`));
  const configPath = join(dir, "natlb.json");
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const socket = options.socket ?? `/run/natlb/lab-${lab.id}-${Math.random().toString(16).slice(2, 8)}.sock`;
  const natlbBin = options.natlbBin ?? NATLB_BIN;
  const command = [process.execPath, natlbBin, "run", "--config", configPath, "--socket", socket, ...(options.runArgs ?? [])];
  const [program, ...args] = [...(options.wrapper ?? []), ...command];
  const ns = options.ns ?? lab.gateway.ns;
  const child = lab.spawn(ns, program!, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  let hasExited = false;
  void exited.then(() => (hasExited = true));

  const cli = async (args: string[]) => {
    const result = await lab.tryExec(ns, process.execPath, [natlbBin, ...args, "--socket", socket]);
    return { code: result.code, stdout: result.stdout, stderr: result.stderr };
  };
  const handle: BalancerProcess = {
    socket,
    configPath,
    child,
    output: () => output,
    status: async () => (await requestControl(socket, "GET /status")) as BalancerStatus,
    connections: async () => {
      // Every page: GET /conns answers at most its default page size at a time.
      const all: Connection[] = [];
      for (let cursor: number | undefined = 0; cursor !== undefined; ) {
        const page = (await requestControl(socket, `GET /conns?limit=${MAX_CONNECTION_PAGE}&cursor=${cursor}`)) as ConnectionPage<Connection>;
        all.push(...page.connections);
        cursor = page.next;
      }
      return all;
    },
    cli,
    stop: async (signal = "SIGTERM", timeoutMs = 10_000) => {
      if (!hasExited) child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
        rmSync(dir, { recursive: true, force: true });
        rmSync(socket, { force: true });  // left behind when the daemon was killed
      }
    },
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000);
  for (;;) {
    if (hasExited) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`natlb exited before it was ready:\n${output}`);
    }
    const ready = await handle.status().then(() => true, () => false);
    if (ready) return handle;
    if (Date.now() > deadline) {
      await handle.stop("SIGKILL");
      throw new Error(`natlb was not ready within ${options.readyTimeoutMs ?? 20_000} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
