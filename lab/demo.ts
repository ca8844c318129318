// `natlb demo`: a lab in network namespaces (client -> gateway -> 3 real servers), natlb on the
// gateway, a large download through the VIP checked by sha256, and a summary. Everything it makes is
// removed at the end, also on failure and Ctrl-C. During the download a progress line shows bytes,
// rate and each real's share of the connections (downloadProgress.ts).
import type { BalancerStatus } from "../src/balancer";
import { startBalancer } from "./balancerProcess";
import { startBlobServer } from "./blobServer";
import { clientReceivedBytes, withDownloadProgress } from "./downloadProgress";
import { blobUrl, runDownload } from "./download";
import { createLab } from "./topology";

export interface DemoOptions {
  mib: number;
  conns: number;
  offloads: boolean;
  /** Progress line during the download (default true). */
  progress?: boolean;
  /** The caller prints the summary as JSON: the commentary goes to stderr, stdout stays for the JSON. */
  json?: boolean;
}

/** What `natlb demo --json` prints. */
export interface DemoSummary {
  ok: boolean;
  mib: number;
  conns: number;
  offloads: boolean;
  transferredBytes: number;
  seconds: number;
  gbps: number;
  intactDownloads: number;
  downloads: { localPort: number | null; real: string | null; bytes: number; sha256: string | null; intact: boolean; error?: string }[];
  counters: BalancerStatus["counters"];
}

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const out = options.json ? process.stderr : process.stdout;
  const say = (line: string) => out.write(`${line}\n`);
  say(`natlb demo: building a lab (client -> gateway -> 3 real servers, veth offloads ${options.offloads ? "on" : "off"})`);
  const lab = await createLab({ reals: 3, offloads: options.offloads, prefix: "demo" });
  let stop: (() => Promise<unknown>) | undefined;
  const onSignal = () => void lab.destroy().finally(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const servers = [];
    for (let i = 1; i <= 3; i++) servers.push(await startBlobServer(lab, i, 8080));
    const config = {
      services: [
        {
          vip: lab.vip, port: 80, protocol: "tcp", scheduler: "wrr",
          reals: lab.reals.map((r) => ({ ip: r.ip, port: 8080, weight: 1 })),
          healthCheck: { type: "tcp", intervalMs: 1000 },
        },
      ],
      // The defaults, as a user gets them: kernelFastPath "auto" (established connections forwarded
      // by the kernel fast path when it can start, the rest through AF_PACKET rings).
    };
    say(`natlb demo: starting natlb in ${lab.gateway.ns} for VIP ${lab.vip}:80 -> ${lab.reals.map((r) => `${r.ip}:8080`).join(", ")}`);
    const natlb = await startBalancer(lab, config);
    stop = () => natlb.stop();
    const perConnection = Math.ceil((options.mib * 1024 * 1024) / options.conns);
    say(`natlb demo: downloading ${options.mib} MiB through the VIP over ${options.conns} connection(s)...`);
    const summary = await withDownloadProgress(
      {
        receivedBytes: clientReceivedBytes(lab),
        label: "download",
        bytesTotal: perConnection * options.conns,
        controlSocket: natlb.socket,
        service: { vip: lab.vip, port: 80 },
        enabled: options.progress !== false,
      },
      () =>
        runDownload(lab, {
          url: blobUrl(lab.vip, 80, perConnection, "demo"),
          conns: options.conns,
          count: options.conns,
          localPortBase: 45000,
          timeoutMs: 600_000,
        }),
    );
    const served = servers.flatMap((s) => s.served());
    let intact = 0;
    const downloads: DemoSummary["downloads"] = [];
    for (const result of summary.results) {
      const server = served.find((s) => s.peerPort === result.localPort);
      const ok = !result.error && result.bytes === perConnection && server !== undefined && server.sha256 === result.sha256;
      if (ok) intact += 1;
      downloads.push({
        localPort: result.localPort,
        real: result.real,
        bytes: result.bytes,
        sha256: result.sha256,
        intact: ok,
        ...(result.error ? { error: result.error } : {}),
      });
      say(
        `  connection :${result.localPort} <- ${result.real ?? "?"}  ${(result.bytes / 1048576).toFixed(0)} MiB  sha256 ${
          result.sha256?.slice(0, 16) ?? "-"
        }…  ${ok ? "matches the server's" : `MISMATCH ${result.error ?? ""}`}`,
      );
    }
    const status = await natlb.status();
    const human = await natlb.cli(["status"]);
    say("");
    say(human.stdout.trimEnd());
    say("");
    const c = status.counters;
    say(`natlb demo summary`);
    say(`  transferred   ${(summary.totalBytes / 1048576).toFixed(0)} MiB in ${summary.seconds.toFixed(2)} s = ${summary.gbps.toFixed(2)} Gbit/s`);
    say(`  content       ${intact}/${summary.results.length} downloads intact (sha256 at the client = sha256 at the real server)`);
    say(`  data plane    ${c.toReal} frames to reals, ${c.toClient} to the client, ${c.newFlows} flows, drops: ring ${c.ringDrops}, other ${
      c.dropNoNeighbour + c.dropNoRoute + c.dropTxError + c.dropMalformed + c.dropNoFlow + c.dropNoReal
    }`);
    say(`  receive path  ${status.interfaces.map((i) => i.receivePath).join("/")}: ${c.rxFrames} frames through user space${
      status.kernelFastPath.enabled ? " (ARP, and what the kernel leaves to it)" : ""}`);
    say(status.kernelFastPath.enabled
      ? `  kernel path   ${c.kernelScheduledFlows} flow(s) scheduled by the kernel itself, ${c.flowsOffloaded} handed over once established; ` +
        `it forwarded ${c.kernelForwardedPackets} segment(s), ${(c.kernelForwardedBytes / 1048576).toFixed(0)} MiB, that no ring copied`
      : `  kernel path   off: ${status.kernelFastPath.unavailable ?? "kernelFastPath is false"}`);
    say(`  replies crossed the balancer; compare with kernel NAT and HAProxy: npm run bench`);
    await natlb.stop();
    stop = undefined;
    if (intact !== summary.results.length) throw new Error("some downloads were not intact");
    return {
      ok: true,
      mib: options.mib,
      conns: options.conns,
      offloads: options.offloads,
      transferredBytes: summary.totalBytes,
      seconds: summary.seconds,
      gbps: summary.gbps,
      intactDownloads: intact,
      downloads,
      counters: c,
    };
  } finally {
    await stop?.().catch(() => undefined);
    await lab.destroy();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    say("natlb demo: lab removed");
  }
}
