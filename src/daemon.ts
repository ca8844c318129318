// `natlb run`: the balancer plus its control socket, until SIGTERM/SIGINT. SIGHUP reloads the config
// file. The control socket opens only after the engine forwards (rings open, ARP answered), so a
// successful `natlb status` means traffic flows.
import { Balancer } from "./balancer";
import { loadConfigFile, type ControlAccessConfig } from "./config";
import { CONTROL_ROUTES, defaultSocketPath, startControlServer, type ControlServer } from "./control";
import { adminRoutes } from "./control/adminRoutes";
import { configRoute } from "./control/configRoute";
import { connsRoute } from "./control/connsRoute";
import { AuditLog } from "./control/auditLog";
import { SIGHUP_ORIGIN, summarizeDiff, withChangeOrigin } from "./events";
import type { AccessPolicy } from "./control/roles";
import { StreamAnswer, TextAnswer } from "./control/server";
import { resolveGroup } from "./control/systemGroups";
import { ApiError } from "./errors";
import { createLogger, type Logger } from "./log";
import { natlbMetrics, startMetricsServer, type MetricsServer } from "./metrics";
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

/** GET /events?after=SEQ: a sequence number the watcher already saw. */
function sequenceParam(query: URLSearchParams): number | undefined {
  const text = query.get("after");
  if (text === null) return undefined;
  if (!/^\d{1,15}$/.test(text)) throw new ApiError(`after must be an event sequence number (0 or more), got ${JSON.stringify(text)}`);
  return Number(text);
}

/** The control socket's roles from the config: group names looked up now, so a missing group fails the start. */
async function accessPolicy(control: ControlAccessConfig): Promise<AccessPolicy> {
  return {
    readGroup: control.readGroup === undefined ? undefined : await resolveGroup(control.readGroup, "control.readGroup"),
    adminGroup: control.adminGroup === undefined ? undefined : await resolveGroup(control.adminGroup, "control.adminGroup"),
    daemonUid: process.geteuid?.() ?? 0,
  };
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const log = options.logger ?? createLogger();
  const config = await loadConfigFile(options.configPath);
  const socketPath = options.socketPath ?? config.socket ?? defaultSocketPath();
  const access = await accessPolicy(config.control);
  const balancer = await Balancer.start(config, { logger: log, kernelSetup: options.kernelSetup ?? true });
  const audit = new AuditLog(log);
  const metricsText = natlbMetrics(balancer);
  const reloadFromFile = async () => balancer.reload(await loadConfigFile(options.configPath));
  let control: ControlServer;
  try {
    control = await startControlServer(
      socketPath,
      {
        [CONTROL_ROUTES.status]: () => balancer.status(),
        [CONTROL_ROUTES.stats]: () => balancer.stats(),
        ...connsRoute(balancer),
        ...configRoute(balancer),
        [CONTROL_ROUTES.health]: () => ({ ok: true }),
        [CONTROL_ROUTES.metrics]: async () => new TextAnswer(metricsText.contentType, await metricsText.scrape()),
        [CONTROL_ROUTES.events]: (request) => {
          const stop = new AbortController();
          return new StreamAnswer(balancer.events({ after: sequenceParam(request.query), signal: stop.signal }), stop);
        },
        ...adminRoutes(balancer, reloadFromFile, audit),
        ...testHookRoutes(log, balancer),
      },
      { access, logger: log },
    );
  } catch (error) {
    await balancer.stop();
    throw error;
  }
  log.info(
    { socket: socketPath, readGroup: access.readGroup?.name ?? null, adminGroup: access.adminGroup?.name ?? null },
    "control socket ready",
  );
  let metrics: MetricsServer | undefined;
  if (config.metrics) {
    try {
      metrics = await startMetricsServer(metricsText, config.metrics.listen);
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
    withChangeOrigin(SIGHUP_ORIGIN, reloadFromFile)
      .then((diff) => audit.applied(SIGHUP_ORIGIN, "SIGHUP reload", summarizeDiff(diff)))
      .catch((error: unknown) => audit.refused(SIGHUP_ORIGIN, "SIGHUP reload", { reload: options.configPath }, error));
  };
  process.on("SIGHUP", onReload);
  return { balancer, socketPath, stopped, stop };
}
