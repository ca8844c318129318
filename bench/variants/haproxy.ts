// HAProxy (Debian's 2.6) in `mode tcp`, roundrobin over the reals, listening on the VIP (a local /32
// address of the gateway), in the foreground (-db) so the lab owns and kills its one process.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runIn, sbin } from "../../lab/netns";
import { exited, isRunning } from "../../lab/processes";
import { addVipAddress, removeVipAddress, waitForListeners } from "./gatewayState";
import type { BenchServices, Variant } from "./types";

export function haproxyConfig(services: BenchServices): string {
  const lines = [
    "global",
    // 2 fds per connection: stays under a 20 000 hard fd limit (haproxy refuses to start otherwise).
    "  maxconn 4096",
    "defaults",
    "  mode tcp",
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
  ];
  for (const [name, svc] of [["bulk", services.bulk], ["small", services.small]] as const) {
    lines.push(`frontend f_${name}`, `  bind ${services.vip}:${svc.vport}`, `  default_backend b_${name}`);
    lines.push(`backend b_${name}`, "  balance roundrobin");
    services.reals.forEach((ip, i) => lines.push(`  server r${i + 1} ${ip}:${svc.realPort}`));
  }
  return `${lines.join("\n")}\n`;
}

/** The haproxy binary, installed with apt-get when missing; throws with a hint when that fails. */
export async function ensureHaproxy(log: (line: string) => void): Promise<string> {
  const have = async (): Promise<boolean> => (await runIn(null, sbin("haproxy"), ["-v"], { timeoutMs: 10_000 })).code === 0;
  if (await have()) return sbin("haproxy");
  log("haproxy is missing: apt-get install -y haproxy");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  await runIn(null, "apt-get", ["update"], { timeoutMs: 300_000, env });
  const r = await runIn(null, "apt-get", ["install", "-y", "--no-install-recommends", "haproxy"], { timeoutMs: 600_000, env });
  if (r.code !== 0 || !(await have())) {
    throw new Error(`haproxy is not installed and apt-get install haproxy failed (install it by hand): ${r.stderr.trim().slice(-500)}`);
  }
  return sbin("haproxy");
}

export const haproxy: Variant = {
  id: "haproxy",
  label: "HAProxy 2.6 mode tcp",
  setUp: async (lab, services) => {
    const dir = mkdtempSync(join(tmpdir(), `natlb-bench-haproxy-`));
    const configPath = join(dir, "haproxy.cfg");
    writeFileSync(configPath, haproxyConfig(services));
    let child: ChildProcess | undefined;
    let stderr = "";
    const tearDown = async (): Promise<void> => {
      if (child !== undefined && isRunning(child)) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child?.kill("SIGKILL"), 5000);
        await exited(child);
        clearTimeout(timer);
      }
      await removeVipAddress(lab, services.vip);
      rmSync(dir, { recursive: true, force: true });
    };
    try {
      await addVipAddress(lab, services.vip);
      child = lab.spawn(lab.gateway.ns, sbin("haproxy"), ["-db", "-f", configPath], { stdio: ["ignore", "ignore", "pipe"] });
      child.stderr?.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
      const proc = child;
      await waitForListeners(lab, services.vip, [services.bulk.vport, services.small.vport], 10_000, () => isRunning(proc));
    } catch (e) {
      await tearDown().catch(() => undefined);
      throw new Error(`haproxy did not start: ${(e as Error).message}; stderr: ${stderr.trim().split("\n").slice(-3).join(" / ")}`);
    }
    return {
      bulkTargets: [{ ip: services.vip, port: services.bulk.vport }],
      smallTargets: [{ ip: services.vip, port: services.small.vport }],
      pid: child.pid ?? null,
      diagnostics: async () => (stderr.trim() === "" ? {} : { stderr: stderr.trim() }),
      tearDown,
    };
  },
};
