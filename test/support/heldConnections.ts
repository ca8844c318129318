// TCP connections held open from a lab namespace, opened and closed on command, so an end-to-end
// test can fill reals to their connection limits and free them again. The holder is a node process in
// the namespace; it opens connections one after another (each waits for its handshake or a timeout)
// and names them by local port, which the test maps to reals through natlb's flow map.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { commandIn } from "../../lab/netns";

/** The holder gives up by itself after this long, whatever the test does. */
const HOLDER_LIFETIME_MS = 180_000;

const HOLDER = `
  const net = require("node:net");
  const sockets = new Map();
  const say = (o) => console.log(JSON.stringify(o));
  const openOne = (host, port, timeoutMs) => new Promise((resolve) => {
    const s = net.connect({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => { s.destroy(); resolve(undefined); }, timeoutMs);
    s.once("connect", () => { clearTimeout(timer); sockets.set(s.localPort, s); resolve(s.localPort); });
    s.once("error", () => { clearTimeout(timer); resolve(undefined); });
    s.on("data", (chunk) => { s.received = (s.received ?? "") + chunk.toString("latin1"); s.onReceived?.(); });
    s.on("error", () => {});
  });
  // Writes a line on a connection and waits for it to come back (a real's echo server): the connection
  // still carries data both ways.
  const echoOne = (port, s, timeoutMs) => new Promise((resolve) => {
    const line = "ping " + port + " " + Date.now() + "\\n";
    const timer = setTimeout(() => { s.onReceived = undefined; resolve(false); }, timeoutMs);
    s.received = "";
    s.onReceived = () => { if (s.received.includes(line)) { clearTimeout(timer); s.onReceived = undefined; resolve(true); } };
    if (s.destroyed || !s.writable) { clearTimeout(timer); resolve(false); return; }
    s.write(line);
  });
  let queue = Promise.resolve();
  require("node:readline").createInterface({ input: process.stdin }).on("line", (line) => {
    queue = queue.then(async () => {
      const [verb, ...args] = line.trim().split(" ");
      if (verb === "open") {
        const [host, port, count, timeoutMs] = args;
        const opened = [];
        let failed = 0;
        for (let i = 0; i < Number(count); i++) {
          const local = await openOne(host, Number(port), Number(timeoutMs));
          if (local === undefined) failed++; else opened.push(local);
        }
        say({ opened, failed });
      } else if (verb === "echo") {
        const entries = [...sockets.entries()];
        const results = await Promise.all(entries.map(([port, s]) => echoOne(port, s, Number(args[0]))));
        say({ answered: entries.filter((_, i) => results[i]).map(([p]) => p), silent: entries.filter((_, i) => !results[i]).map(([p]) => p) });
      } else if (verb === "close") {
        const ports = args.map(Number);
        for (const p of ports) { sockets.get(p)?.end(); sockets.delete(p); }
        say({ closed: ports });
      }
    });
  }).on("close", () => process.exit(0));
  setTimeout(() => process.exit(0), ${HOLDER_LIFETIME_MS});`;

export interface ConnectionHolder {
  /** Opens `count` connections one after another; each that has no handshake within `timeoutMs` fails. */
  open(host: string, port: number, count: number, timeoutMs?: number): Promise<{ opened: number[]; failed: number }>;
  /**
   * Sends a line on every held connection at once and waits up to `timeoutMs` for each to come back
   * (the service must echo: startTcpEcho in lab/haPair.ts); by local port.
   */
  echo(timeoutMs: number): Promise<{ answered: number[]; silent: number[] }>;
  /** Closes these connections (FIN) by local port. */
  close(localPorts: readonly number[]): Promise<void>;
  /** Ends the holder and every connection it holds. */
  stop(): void;
}

export function holdConnections(ns: string): ConnectionHolder {
  const [command, args] = commandIn(ns, process.execPath, ["-e", HOLDER]);
  const child: ChildProcess = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] });
  const replies: Array<(reply: Record<string, unknown>) => void> = [];
  createInterface({ input: child.stdout! }).on("line", (line) => replies.shift()?.(JSON.parse(line) as Record<string, unknown>));
  let exited = false;
  const waiting = new Set<(error: Error) => void>();
  child.once("exit", (code, signal) => {
    exited = true;
    // A holder that died answers nothing more: say so at once instead of at each question's deadline.
    for (const fail of waiting) fail(new Error(`the connection holder exited (${signal ?? code})`));
  });
  const ask = (line: string, timeoutMs: number) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      if (exited) return reject(new Error("the connection holder has exited"));
      const timer = setTimeout(() => reject(new Error(`the connection holder did not answer "${line}" within ${timeoutMs} ms`)), timeoutMs);
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(error);
      };
      waiting.add(fail);
      replies.push((reply) => {
        waiting.delete(fail);
        clearTimeout(timer);
        resolve(reply);
      });
      child.stdin!.write(`${line}\n`);
    });
  return {
    open: async (host, port, count, timeoutMs = 5000) => {
      const reply = await ask(`open ${host} ${port} ${count} ${timeoutMs}`, count * timeoutMs + 10_000);
      return { opened: reply.opened as number[], failed: reply.failed as number };
    },
    echo: async (timeoutMs) => {
      const reply = await ask(`echo ${timeoutMs}`, timeoutMs + 10_000);
      return { answered: reply.answered as number[], silent: reply.silent as number[] };
    },
    close: async (localPorts) => {
      await ask(`close ${localPorts.join(" ")}`, 10_000);
    },
    stop: () => {
      if (!exited) child.kill("SIGKILL");
    },
  };
}
