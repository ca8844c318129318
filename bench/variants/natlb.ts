// natlb itself: the real `natlb run` daemon in the gateway (lab/balancerProcess), every service
// (the two TCP ones; in the flood lab also the UDP one) round robin (wrr, equal weights), no health checks. It installs and removes its own kernel state.
// "natlb" runs with the defaults, as a user gets them: no receivePath or kernelFastPath in its
// configuration (AF_PACKET rings, and kernelFastPath "auto": connections on the kernel fast path, which
// the bench's root can load, and with kernelScheduling their SYNs scheduled there too). "natlbUserSpace" is the best configuration without
// the fast path (every frame through user space): AF_PACKET where the veths carry 64 KB GSO frames, AF_XDP where they carry MTU
// frames, so one run shows what the fast path gives. Not in the default set: "natlbAfPacket" is the
// MTU lab on AF_PACKET in user space, against AF_XDP; "natlbThreadPerInterface" is the defaults with a
// worker thread per interface (workerThreads), against the default's one thread beside the fast path.
// The modes lab (direct-routing topology, natlb two-armed: the VIPs' traffic on its own arm from the
// router, the reals on its LAN arm) runs "natlb" and "natlbUserSpace" (nat; the reals then route the
// client subnet via natlb, natReturnRoute.ts), "natlbDr" (forwarding "dr") and "natlbFullnat"
// (forwarding "fullnat"). natlb derives its interfaces from the routes there, as in the other labs.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ReceivePath, WorkerThreadsSetting } from "../../src/config";
import { NATLB_CLI, startBalancer } from "../../lab/balancerProcess";
import { DR_GATEWAY_IP } from "../../lab/labAddresses";
import { runIn } from "../../lab/netns";
import type { Lab } from "../../lab/topology";
import { addonFingerprint } from "../addonFingerprint";
import { addNatReturnRoutes, needsNatReturnRoute, removeNatReturnRoutes } from "./natReturnRoute";
import { VariantUnavailableError, type BenchServices, type Variant, type VariantId } from "./types";

/** The settings a natlb variant writes into its configuration; an undefined one is left to its default. */
interface NatlbSettings {
  receivePath?: ReceivePath;
  kernelFastPath?: boolean;
  workerThreads?: WorkerThreadsSetting;
}

/** Fields every service of a variant gets besides vip, port, protocol, scheduler and reals ({} for nat). */
type ForwardingFields = Record<string, unknown>;

/**
 * The full-NAT service fields: the mode plus natlb's own backend-side address as the new source. Its ports stay apart from kernel NAT's SNAT
 * ports (1024..16383) and HAProxy's ephemeral ones (32768..) on the same address, so no real sees one
 * source ip:port with two TCP timestamp clocks (PAWS).
 */
export function fullnatServiceFields(poolAddress: string = DR_GATEWAY_IP): ForwardingFields {
  return { forwarding: "fullnat", fullnat: { localAddresses: [poolAddress], localPorts: { first: 16384, last: 32767 } } };
}

/** natlb's configuration for the bench's services, with `settings` on top of the defaults. */
export function natlbConfig(services: BenchServices, settings: NatlbSettings, forwarding: ForwardingFields = {}): unknown {
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
      ...forwarding,
    })),
    ...settings,
  };
}

/** Why natlb's check-config refuses this configuration, or null when it accepts it. */
async function configRefusal(config: unknown): Promise<string | null> {
  const dir = mkdtempSync(join(tmpdir(), "natlb-bench-check-"));
  try {
    const file = join(dir, "natlb.json");
    writeFileSync(file, JSON.stringify(config, null, 2));
    const r = await runIn(null, process.execPath, [NATLB_CLI, "check-config", file], { timeoutMs: 30_000 });
    if (r.code === 0) return null;
    const why = `${r.stderr}\n${r.stdout}`.split("\n").map((l) => l.trim()).filter((l) => l !== "").slice(0, 3).join(" / ");
    return `not available: natlb check-config refuses its configuration: ${why || `exit code ${r.code}`}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface NatlbVariantSpec {
  id: VariantId;
  label: string;
  settingsIn: (lab: Lab) => NatlbSettings;
  labs?: Variant["labs"];
  /** Service fields of the forwarding mode; absent: nat. */
  forwarding?: ForwardingFields;
}

function natlbVariant(spec: NatlbVariantSpec): Variant {
  const { id, label, settingsIn, labs, forwarding } = spec;
  const nat = forwarding === undefined;
  return {
    id,
    label,
    ...(labs === undefined ? {} : { labs }),
    ...(nat ? {} : { unavailable: (services: BenchServices) => configRefusal(natlbConfig(services, {}, forwarding)) }),
    setUp: async (lab, services) => {
      const addon = addonFingerprint();
      const settings = settingsIn(lab);
      const returnRoute = nat && needsNatReturnRoute(lab);
      if (returnRoute) await addNatReturnRoutes(lab);
      let balancer: Awaited<ReturnType<typeof startBalancer>>;
      try {
        balancer = await startBalancer(lab, natlbConfig(services, settings, forwarding));
      } catch (e) {
        if (returnRoute) await removeNatReturnRoutes(lab).catch(() => undefined);
        // natlb refused the configuration at start (what check-config cannot see: interfaces, routes).
        const refusal = /^natlb: config: .*$/m.exec((e as Error).message)?.[0];
        if (refusal !== undefined) throw new VariantUnavailableError(`not available: natlb refuses to start here: ${refusal.replace(/ \(in \/tmp\/[^)]*\)$/, "")}`);
        throw e;
      }
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
          if (returnRoute) await removeNatReturnRoutes(lab);
          if (exit.code !== 0) {
            throw new Error(`natlb exited with code ${exit.code} signal ${exit.signal} on SIGTERM:\n${balancer.output().slice(-3000)}`);
          }
        },
      };
    },
  };
}

const receivePathForLab = (lab: Lab): ReceivePath => (lab.offloads ? "af_packet" : "af_xdp");
const defaults = (): NatlbSettings => ({});
export const natlb = natlbVariant({ id: "natlb", label: "natlb (defaults)", settingsIn: defaults });
export const natlbUserSpace = natlbVariant({
  id: "natlbUserSpace", label: "natlb (user space only)", settingsIn: (lab) => ({ receivePath: receivePathForLab(lab), kernelFastPath: false }),
});
export const natlbAfPacket = natlbVariant({
  id: "natlbAfPacket", label: "natlb (AF_PACKET receive)", settingsIn: () => ({ receivePath: "af_packet", kernelFastPath: false }), labs: ["mtu"],
});
export const natlbThreadPerInterface = natlbVariant({
  id: "natlbThreadPerInterface", label: "natlb (defaults, a worker thread per interface)", settingsIn: () => ({ workerThreads: "perInterface" }),
});
export const natlbDr = natlbVariant({ id: "natlbDr", label: "natlb forwarding dr (defaults)", settingsIn: defaults, labs: ["modes"], forwarding: { forwarding: "dr" } });
export const natlbFullnat = natlbVariant({
  id: "natlbFullnat", label: "natlb forwarding fullnat (defaults)", settingsIn: defaults, labs: ["modes"], forwarding: fullnatServiceFields(),
});
