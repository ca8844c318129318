// natlb itself: the real `natlb run` daemon in the gateway (lab/balancerProcess), every service
// (the two TCP ones; in the flood lab also the UDP one) round robin (wrr, equal weights), no health checks. It installs and removes its own kernel state.
// "natlb" runs with the defaults, as a user gets them: no receivePath or kernelFastPath in its
// configuration (AF_PACKET rings, and kernelFastPath "auto": established connections on the kernel
// fast path, which the bench's root can load). "natlbUserSpace" is the best configuration without
// the fast path (every frame through user space): AF_PACKET where the veths carry 64 KB GSO frames, AF_XDP where they carry MTU
// frames, so one run shows what the fast path gives. Not in the default set: "natlbAfPacket" is the
// MTU lab on AF_PACKET in user space, against AF_XDP; "natlbThreadPerInterface" is the defaults with a
// worker thread per interface (workerThreads), against the default's one thread beside the fast path.
import type { ReceivePath, WorkerThreadsSetting } from "../../src/config";
import { startBalancer } from "../../lab/balancerProcess";
import type { Lab } from "../../lab/topology";
import { addonFingerprint } from "../addonFingerprint";
import type { BenchServices, Variant, VariantId } from "./types";

/** The settings a natlb variant writes into its configuration; an undefined one is left to its default. */
interface NatlbSettings {
  receivePath?: ReceivePath;
  kernelFastPath?: boolean;
  workerThreads?: WorkerThreadsSetting;
}

/** natlb's configuration for the bench's services, with `settings` on top of the defaults. */
export function natlbConfig(services: BenchServices, settings: NatlbSettings): unknown {
  const tcp = [services.bulk, services.small].map((s) => ({ ...s, protocol: "tcp" }));
  // The flood lab's UDP service; the gso and mtu labs have none, so their configuration is unchanged.
  const udp = services.udp === undefined ? [] : [{ ...services.udp, protocol: "udp" }];
  return {
    services: [...tcp, ...udp].map((s) => ({
      vip: services.vip,
      port: s.vport,
      protocol: s.protocol,
      scheduler: "wrr",
      reals: services.reals.map((ip) => ({ ip, port: s.realPort, weight: 1 })),
    })),
    ...settings,
  };
}

function natlbVariant(id: VariantId, label: string, settingsIn: (lab: Lab) => NatlbSettings, labs?: Variant["labs"]): Variant {
  return {
    id,
    label,
    ...(labs === undefined ? {} : { labs }),
    setUp: async (lab, services) => {
      const addon = addonFingerprint();
      const settings = settingsIn(lab);
      const balancer = await startBalancer(lab, natlbConfig(services, settings));
      return {
        bulkTargets: [{ ip: services.vip, port: services.bulk.vport }],
        smallTargets: [{ ip: services.vip, port: services.small.vport }],
        pid: balancer.child.pid ?? null,
        controlSocket: balancer.socket,
        diagnostics: async () => {
          const status = await balancer.status().catch((e: unknown) => ({ error: (e as Error).message }));
          if ("error" in status) return { addon, settings, ...status };
          const nonZero = Object.fromEntries(Object.entries(status.counters).filter(([, v]) => v !== 0));
          return {
            addon, settings, kernelFastPath: status.kernelFastPath, workerThreads: status.workerThreads, counters: nonZero, flows: status.flows,
          };
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
}

const receivePathForLab = (lab: Lab): ReceivePath => (lab.offloads ? "af_packet" : "af_xdp");
export const natlb = natlbVariant("natlb", "natlb (defaults)", () => ({}));
export const natlbUserSpace = natlbVariant("natlbUserSpace", "natlb (user space only)", (lab) => ({ receivePath: receivePathForLab(lab), kernelFastPath: false }));
export const natlbAfPacket = natlbVariant("natlbAfPacket", "natlb (AF_PACKET receive)", () => ({ receivePath: "af_packet", kernelFastPath: false }), ["mtu"]);
export const natlbThreadPerInterface = natlbVariant("natlbThreadPerInterface", "natlb (defaults, a worker thread per interface)", () => ({ workerThreads: "perInterface" }));
