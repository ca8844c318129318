// natlb itself: the real `natlb run` daemon in the gateway (src/lab/balancerProcess), both services
// round robin (wrr, equal weights), no health checks. It installs and removes its own kernel state.
import { startBalancer } from "../../src/lab/balancerProcess";
import { addonFingerprint } from "../addonFingerprint";
import type { BenchServices, Variant } from "./types";

export function natlbConfig(services: BenchServices): unknown {
  return {
    services: [services.bulk, services.small].map((s) => ({
      vip: services.vip,
      port: s.vport,
      protocol: "tcp",
      scheduler: "wrr",
      reals: services.reals.map((ip) => ({ ip, port: s.realPort, weight: 1 })),
    })),
  };
}

export const natlb: Variant = {
  id: "natlb",
  label: "natlb",
  setUp: async (lab, services) => {
    const addon = addonFingerprint();
    const balancer = await startBalancer(lab, natlbConfig(services));
    return {
      bulkTargets: [{ ip: services.vip, port: services.bulk.vport }],
      smallTargets: [{ ip: services.vip, port: services.small.vport }],
      pid: balancer.child.pid ?? null,
      diagnostics: async () => {
        const status = await balancer.status().catch((e: unknown) => ({ error: (e as Error).message }));
        if ("error" in status) return { addon, ...status };
        const nonZero = Object.fromEntries(Object.entries(status.counters).filter(([, v]) => v !== 0));
        return { addon, counters: nonZero, flows: status.flows };
      },
      tearDown: async () => {
        const exit = await balancer.stop("SIGTERM", 10_000);
        if (exit.code !== 0) {
          throw new Error(`natlb exited with code ${exit.code} signal ${exit.signal} on SIGTERM:\n${balancer.output().slice(-3000)}`);
        }
      },
    };
  },
};
