// A TCP echo server in a lab namespace (a real server), for connections that must prove they still
// carry data both ways (heldConnections.ts: echo). Bounded: it exits by itself after `lifetimeMs`.
import type { ChildProcess, SpawnOptions } from "node:child_process";
import { createInterface } from "node:readline";

const ECHO_SERVER = `
  const [ip, port, lifetimeMs] = process.argv.slice(1);
  const server = require("node:net").createServer((s) => { s.on("error", () => {}); s.pipe(s); });
  server.listen(Number(port), ip, () => console.log(JSON.stringify({ listening: true })));
  setTimeout(() => process.exit(0), Number(lifetimeMs)).unref();
  setInterval(() => {}, 1 << 30);`;

export interface NamespaceSpawner {
  spawn(ns: string, cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess;
}

/** Starts the echo server on ip:port in `ns` and resolves once it listens. */
export async function startTcpEcho(lab: NamespaceSpawner, ns: string, ip: string, port: number, lifetimeMs = 300_000): Promise<ChildProcess> {
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
