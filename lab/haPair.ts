// The HA pair running (lab/haPairTopology.ts): blob and echo servers on the reals, natlb in both
// gateways (same services, an ha block, and whatever else the caller adds: the flow sync), keepalived
// in both with g1 preferred. Shared by the pair's end-to-end test and the failover bench.
import { randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { NATLB_CLI, startBalancer, type BalancerProcess } from "./balancerProcess";
import { startBlobServer, type BlobServerHandle } from "./blobServer";
import { createHaPairLab, type HaPairLab } from "./haPairTopology";
import type { KeepalivedProcess } from "./keepalived";
import { waitUntil } from "./wait";

export const HA_SERVICE_PORT = 80;
export const HA_REAL_PORT = 8080;
export const ECHO_SERVICE_PORT = 7;
export const ECHO_REAL_PORT = 7007;
/** Seconds between VRRP adverts: the backup takes over ~3.5 adverts after the master's last one. */
export const ADVERT_INTERVAL_S = 0.2;
export const TAKEOVER_ARP_ROUNDS = 3;
export const SYNC_PORT = 8848;

export interface HaPair {
  readonly lab: HaPairLab;
  readonly natlb: [BalancerProcess, BalancerProcess];
  readonly keepalived: [KeepalivedProcess, KeepalivedProcess];
  readonly servers: BlobServerHandle[];
}

export interface HaPairSetup {
  /** Config fields both natlb instances get on top of the services and the ha block (the sync block). */
  readonly extraConfig?: (index: 0 | 1, lab: HaPairLab) => Record<string, unknown>;
  /**
   * How keepalived tells natlb: "script" (default) runs `natlb ha notify` per transition; "fifo" has
   * `natlb ha notify-fifo` read keepalived's notify FIFO (no process started per transition).
   */
  readonly notifyVia?: "script" | "fifo";
  /** tbf rate on the reals' uplinks, e.g. "400mbit", so a long download is still running when the master dies. */
  readonly realRate?: string;
}

/** The flow sync between the two gateways, over the backend LAN, with a key in the lab's temp dir. */
export function syncConfig(index: 0 | 1, lab: HaPairLab): Record<string, unknown> {
  const keyFile = join(lab.tempDir, "sync.key");
  if (!existsSync(keyFile)) writeFileSync(keyFile, randomBytes(32).toString("hex"), { mode: 0o600 });
  const self = lab.gateways[index];
  const peer = lab.gateways[index === 0 ? 1 : 0];
  return { sync: { listen: `${self.backendIp}:${SYNC_PORT}`, peers: [`${peer.backendIp}:${SYNC_PORT}`], keyFile } };
}

export function pairConfig(lab: HaPairLab, index: 0 | 1, setup: HaPairSetup): Record<string, unknown> {
  const reals = (port: number) => lab.reals.map((r) => ({ ip: r.ip, port }));
  return {
    interfaces: { client: ["eth0"], backend: ["eth1"] },
    services: [
      { vip: lab.vip, port: HA_SERVICE_PORT, protocol: "tcp", scheduler: "mh", reals: reals(HA_REAL_PORT) },
      { vip: lab.vip, port: ECHO_SERVICE_PORT, protocol: "tcp", scheduler: "rr", reals: reals(ECHO_REAL_PORT) },
    ],
    ha: { initialRole: "backup", gratuitousArpRounds: TAKEOVER_ARP_ROUNDS, gratuitousArpIntervalMs: 100 },
    ...(setup.extraConfig?.(index, lab) ?? {}),
  };
}

const ECHO_SERVER = `
  const [ip, port, lifetimeMs] = process.argv.slice(1);
  const server = require("node:net").createServer((s) => { s.on("error", () => {}); s.pipe(s); });
  server.listen(Number(port), ip, () => console.log(JSON.stringify({ listening: true })));
  setTimeout(() => process.exit(0), Number(lifetimeMs)).unref();
  setInterval(() => {}, 1 << 30);`;

/** A TCP echo server on ip:port in `ns` (bounded: it exits by itself after `lifetimeMs`), once it listens. */
export async function startTcpEcho(lab: HaPairLab, ns: string, ip: string, port: number, lifetimeMs = 600_000): Promise<ChildProcess> {
  const child = lab.spawn(ns, process.execPath, ["-e", ECHO_SERVER, ip, String(port), String(lifetimeMs)], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the echo server in ${ns} did not listen on ${ip}:${port} within 10 s`)), 10_000);
    createInterface({ input: child.stdout! }).once("line", () => {
      clearTimeout(timer);
      resolve();
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the echo server in ${ns} exited (${code}) before listening`));
    });
  });
  return child;
}

/**
 * Runs `body` with the pair up (g1 master, g2 backup, as keepalived and `natlb ha notify` made them);
 * `onFailure` gets the daemons' and keepalived's output; everything is torn down in the end.
 */
export async function withHaPairRunning<T>(setup: HaPairSetup, body: (pair: HaPair) => Promise<T>, onFailure: (output: string) => void = () => undefined): Promise<T> {
  const lab = await createHaPairLab({ reals: 2 });
  const natlb: BalancerProcess[] = [];
  const keepalived: KeepalivedProcess[] = [];
  try {
    if (setup.realRate !== undefined) {
      for (const real of lab.reals) {
        await lab.exec(real.ns, "/usr/sbin/tc", ["qdisc", "add", "dev", real.ifname, "root", "tbf", "rate", setup.realRate, "burst", "256kb", "latency", "50ms"]);
      }
    }
    const servers = await Promise.all(lab.reals.map((_, i) => startBlobServer(lab, i + 1, HA_REAL_PORT)));
    for (const real of lab.reals) await startTcpEcho(lab, real.ns, real.ip, ECHO_REAL_PORT);
    for (const index of [0, 1] as const) natlb.push(await startBalancer(lab.balancerHost(index), pairConfig(lab, index, setup)));
    // g1's keepalived first: started together, the two may both time out waiting for adverts and g2 be
    // master for a moment (a start-up flap the test would see as extra transitions).
    const startKeepalived = (index: 0 | 1) =>
      keepalived.push(
        lab.startKeepalived(index, {
          priority: index === 0 ? 150 : 100,
          initialState: index === 0 ? "MASTER" : "BACKUP",
          advertIntervalS: ADVERT_INTERVAL_S,
          notify: {
            via: setup.notifyVia ?? "script",
            command: [process.execPath, NATLB_CLI, "ha", setup.notifyVia === "fifo" ? "notify-fifo" : "notify", "--socket", natlb[index]!.socket],
          },
        }),
      );
    startKeepalived(0);
    await waitUntil("keepalived to make g1 master (natlb ha notify)", async () => (await natlb[0]!.status()).ha?.role === "master", 20_000, 50);
    startKeepalived(1);
    // g2's keepalived starts as BACKUP and says so through notify, which changes nothing (natlb starts as backup).
    const backup = await natlb[1]!.status();
    if (backup.ha?.role !== "backup") throw new Error(`g2 should be backup, is ${backup.ha?.role}`);
    return await body({ lab, natlb: [natlb[0]!, natlb[1]!], keepalived: [keepalived[0]!, keepalived[1]!], servers });
  } catch (error) {
    onFailure(
      [
        ...natlb.map((n, i) => `natlb g${i + 1} output:\n${n.output().slice(-6000)}`),
        ...keepalived.map((k, i) => `keepalived g${i + 1} output:\n${k.output().slice(-4000)}`),
      ].join("\n"),
    );
    throw error;
  } finally {
    for (const n of natlb) await n.stop().catch(() => undefined);
    await lab.destroy();
  }
}
