// The gateway's connection tracking, for the flood lab: how many entries it holds, and a flush
// between steps. Deleting kernel NAT's table unhooks conntrack but keeps its entries until they
// time out (60 s in SYN_RECV, 120 s unreplied), so without a flush every step would start with the
// spoofed entries of the steps before it. The flush needs the `conntrack` tool (Debian package
// conntrack), installed with apt-get by the benchmark when missing.
import { runIn, sbin } from "../lab/netns";
import type { Lab } from "../lab/topology";

/** The conntrack binary, installed with apt-get when missing; throws with a hint when that fails. */
export async function ensureConntrackTool(log: (line: string) => void): Promise<string> {
  const have = async (): Promise<boolean> => (await runIn(null, sbin("conntrack"), ["--version"], { timeoutMs: 10_000 })).code === 0;
  if (await have()) return sbin("conntrack");
  log("conntrack is missing: apt-get install -y conntrack");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  await runIn(null, "apt-get", ["update"], { timeoutMs: 300_000, env });
  const r = await runIn(null, "apt-get", ["install", "-y", "--no-install-recommends", "conntrack"], { timeoutMs: 600_000, env });
  if (r.code !== 0 || !(await have())) {
    throw new Error(`conntrack is not installed and apt-get install conntrack failed (install it by hand): ${r.stderr.trim().slice(-500)}`);
  }
  return sbin("conntrack");
}

/** Entries in the gateway's conntrack table (net.netfilter.nf_conntrack_count), or null when unknown. */
export async function conntrackCount(lab: Lab): Promise<number | null> {
  const r = await lab.tryExec(lab.gateway.ns, sbin("sysctl"), ["-n", "net.netfilter.nf_conntrack_count"]);
  const n = Number(r.stdout.trim());
  return r.code === 0 && Number.isInteger(n) ? n : null;
}

/** Deletes every conntrack entry of the gateway's namespace (only this lab's gateway). */
export async function flushConntrack(lab: Lab, conntrack: string): Promise<void> {
  const r = await lab.tryExec(lab.gateway.ns, conntrack, ["-F"], { timeoutMs: 30_000 });
  // An empty table answers with an error on some versions: what matters is the count after.
  const left = await conntrackCount(lab);
  if (left !== null && left > 0) throw new Error(`conntrack -F left ${left} entries: ${r.stderr.trim()}`);
}
