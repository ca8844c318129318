// Checks of real traffic that several end-to-end files make, whatever path natlb receives by.
import type { ExecutionContext } from "ava";
import type { BlobServerHandle } from "../../lab/blobServer";
import { startCapture, type CapturedPacket } from "../../lab/capture";
import { blobUrl, runDownload, type DownloadSummary } from "../../lab/download";
import type { Lab } from "../../lab/topology";
import { REAL_PORT, SERVICE_PORT } from "./lab";

const MiB = 1024 * 1024;

/** Captures TCP at the client and at every real while 3 downloads of 4 MiB go through the VIP. */
export async function captureDownloadThroughVip(
  lab: Lab, seed: string,
): Promise<{ summary: DownloadSummary; client: CapturedPacket[]; reals: CapturedPacket[][] }> {
  const atClient = await startCapture(lab, lab.client.ns, { filter: "tcp", maxPackets: 5000, seconds: 30 });
  const atReals = [];
  for (const real of lab.reals) atReals.push(await startCapture(lab, real.ns, { filter: "tcp", maxPackets: 5000, seconds: 30 }));
  const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 4 * MiB, seed), conns: 3, count: 3, localPortBase: 50000 });
  const client = await atClient.stop();
  const reals = await Promise.all(atReals.map((c) => c.stop()));
  return { summary, client, reals };
}

/** The client sees only VIP:vport, each real only client -> RIP:rport; every checksum valid (or a valid seed). */
export function assertRewrittenCapture(t: ExecutionContext, lab: Lab, client: CapturedPacket[], reals: CapturedPacket[][]): void {
  const checksumOk = (p: CapturedPacket) => p.ipChecksum === "ok" && (p.l4Checksum === "full" || p.l4Checksum === "seed");
  t.true(client.length > 20, `only ${client.length} packets captured at the client`);
  for (const p of client) {
    if (p.src === lab.client.ip) t.is(`${p.dst}:${p.dport}`, `${lab.vip}:${SERVICE_PORT}`);
    else t.is(`${p.src}:${p.sport}`, `${lab.vip}:${SERVICE_PORT}`, `packet from ${p.src}:${p.sport} reached the client`);
    t.true(checksumOk(p), `bad checksum at the client: ${JSON.stringify(p)}`);
  }
  reals.forEach((packets, i) => {
    const rip = lab.reals[i]!.ip;
    t.true(packets.length > 0, `no packets at ${rip}`);
    for (const p of packets) {
      if (p.dst === rip) t.is(`${p.src}>${p.dst}:${p.dport}`, `${lab.client.ip}>${rip}:${REAL_PORT}`);
      else t.is(`${p.src}:${p.sport}>${p.dst}`, `${rip}:${REAL_PORT}>${lab.client.ip}`);
      t.true(checksumOk(p), `bad checksum at ${rip}: ${JSON.stringify(p)}`);
    }
  });
}

/** Two downloads straight from the second real's RIP:rport (no VIP), checked by content. */
export async function assertDirectDownloads(t: ExecutionContext, lab: Lab, servers: BlobServerHandle[]): Promise<void> {
  const real = lab.reals[1]!;
  const summary = await runDownload(lab, { url: blobUrl(real.ip, REAL_PORT, 16 * MiB, "direct"), conns: 2, count: 2, localPortBase: 22000 });
  t.is(summary.failed, 0, JSON.stringify(summary.results.map((r) => r.error)));
  const served = servers[1]!.served();
  for (const result of summary.results) {
    t.is(result.real, real.ip);
    t.is(result.bytes, 16 * MiB);
    t.is(result.sha256, served.find((s) => s.peerPort === result.localPort)?.sha256 ?? null);
  }
}
