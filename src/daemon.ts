// `natlb run`: the balancer plus its control socket, until SIGTERM/SIGINT. SIGHUP reloads the config
// file. The control socket opens only after the engine forwards (rings open, ARP answered), so a
// successful `natlb status` means traffic flows.
import { Balancer } from "./balancer";
import { loadConfigFile } from "./config";
import { defaultSocketPath, startControlServer, type ControlServer } from "./control";
import { adminRoutes } from "./control/adminRoutes";
import { ApiError } from "./errors";
import { createLogger, type Logger } from "./log";
import { startMetricsServer, type MetricsServer } from "./metrics";
import { testHookRoutes } from "./testHooks";

export interface DaemonOptions {
  configPath: string;
  socketPath?: string;
  kernelSetup?: boolean;
  logger?: Logger;
}

export interface Daemon {
  readonly balancer: Balancer;
  readonly socketPath: string;
  /** Resolves when the daemon has stopped (after a signal or stop()). */
  readonly stopped: Promise<void>;
  stop(): Promise<void>;
}

function numberParam(query: URLSearchParams, name: string): number | undefined {
  const text = query.get(name);
  if (text === null) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new ApiError(`query parameter ${name} must be a positive integer`);
  return value;
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const log = options.logger ?? createLogger();
  const config = await loadConfigFile(options.configPath);
  const socketPath = options.socketPath ?? config.socket ?? defaultSocketPath();
  const balancer = await Balancer.start(config, { logger: log, kernelSetup: options.kernelSetup ?? true });
  let control: ControlServer;
  try {
    const reload = async () => balancer.reload(await loadConfigFile(options.configPath));
    control = await startControlServer(socketPath, {
      "GET /status": () => balancer.status(),
      "GET /conns": (request) => ({ connections: balancer.connections(numberParam(request.query, "limit")) }),
      "GET /health": () => ({ ok: true }),
      ...adminRoutes(balancer, reload),
      ...testHookRoutes(log),
    });
  } catch (error) {
    await balancer.stop();
    throw error;
  }
  log.info({ socket: socketPath }, "control socket ready");
  let metrics: MetricsServer | undefined;
  if (config.metrics) {
    try {
      metrics = await startMetricsServer(balancer, config.metrics.listen);
      log.info({ listen: config.metrics.listen }, "metrics at /metrics");
    } catch (error) {
      await control.close().catch(() => undefined);
      await balancer.stop();
      throw error;
    }
  }

  let stopping: Promise<void> | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  const stop = () => {
    stopping ??= (async () => {
      process.off("SIGHUP", onReload);
      try {
        await control.close().catch((error: unknown) => log.warn({ err: error }, "closing the control socket failed"));
        await metrics?.close();
        await balancer.stop();
      } catch (error) {
        log.error({ err: error }, "stopping failed: check `ip route show proto 199` and `ip rule show` for leftovers");
        process.exitCode = 1;
      } finally {
        resolveStopped();
      }
    })();
    return stopping;
  };
  const onReload = () => {
    loadConfigFile(options.configPath)
      .then((next) => balancer.reload(next))
      .then(() => log.info("configuration reloaded"))
      .catch((error: unknown) => log.error({ err: error }, "reload refused; the running configuration is unchanged"));
  };
  process.on("SIGHUP", onReload);
  return { balancer, socketPath, stopped, stop };
}
