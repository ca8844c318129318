// One check every forwarding mode must pass (e2e-dr, e2e-fullnat): health checks and persistence work
// as for NAT. The lab's first service is TCP-checked, the second (on vip2) persistent.
import type { ExecutionContext } from "ava";
import { blobUrl, runDownload } from "../../lab/download";
import type { Lab } from "../../lab/topology";
import { waitUntil } from "../../lab/wait";
import { SERVICE_PORT, type NatLab } from "./lab";

/** `service` twice: TCP-checked on the VIP, persistent on vip2. */
export function checkedAndPersistent<S extends object>(lab: Lab, service: S): object[] {
  return [
    { ...service, healthCheck: { type: "tcp", intervalMs: 200, timeoutMs: 200, rise: 1, fall: 1 } },
    { ...service, vip: lab.vip2, persistence: { timeoutS: 60, netmask: "255.255.255.255" } },
  ];
}

/** 20 connections from one client to vip2 land on one real; once r1's server stops, only r2 answers the VIP. */
export async function assertChecksAndPersistence(t: ExecutionContext, { lab, servers, natlb }: NatLab, tag: string): Promise<void> {
  const sticky = await runDownload(lab, { url: blobUrl(lab.vip2, SERVICE_PORT, 1024, `${tag}-sticky`), conns: 2, count: 20, localPortBase: 33_000 });
  t.is(sticky.failed, 0);
  t.is(new Set(sticky.results.map((r) => r.real)).size, 1, "one client, one real");

  await servers[0]!.stop();
  await waitUntil("r1 to be marked down", async () => ((await natlb!.status()).services[0]!.reals[0]!.up ? undefined : true), 10_000, 100);
  const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 1024, `${tag}-health`), conns: 4, count: 20, localPortBase: 34_000 });
  t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error).slice(0, 2)));
  t.deepEqual([...new Set(summary.results.map((r) => r.real))], [lab.reals[1]!.ip], "only the healthy real answers");
}
