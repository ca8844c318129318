// The Node `net` + `pipe` proxy (bench/nodeProxy.ts) in the gateway, listening on the VIP.
import { join } from "node:path";
import { launchTool } from "../../lab/toolProcess";
import { addVipAddress, removeVipAddress } from "./gatewayState";
import type { Variant } from "./types";

const SCRIPT = join(__dirname, "..", "nodeProxy.js");

export const nodePipeProxy: Variant = {
  id: "nodeProxy",
  label: "Node net+pipe proxy",
  setUp: async (lab, services) => {
    await addVipAddress(lab, services.vip);
    const maps = [services.bulk, services.small].map((s) => `${s.vport}=${services.reals.map((ip) => `${ip}:${s.realPort}`).join(",")}`);
    const tool = launchTool(lab, lab.gateway.ns, SCRIPT, [services.vip, ...maps], "nodeProxy");
    const tearDown = async (): Promise<void> => {
      await tool.stop(3000);
      await removeVipAddress(lab, services.vip);
    };
    try {
      await tool.waitForEvent((e) => e.event === "listening", 10_000, "the listening line");
    } catch (e) {
      await tearDown().catch(() => undefined);
      throw e;
    }
    return {
      bulkTargets: [{ ip: services.vip, port: services.bulk.vport }],
      smallTargets: [{ ip: services.vip, port: services.small.vport }],
      pid: tool.child.pid ?? null,
      diagnostics: async () => (tool.stderr().trim() === "" ? {} : { stderr: tool.stderr().trim().slice(-2000) }),
      tearDown,
    };
  },
};
