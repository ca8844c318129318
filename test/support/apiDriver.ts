// Drives the typed Balancer API inside a lab's gateway namespace (Node cannot enter a namespace
// in-process, so the test runs this file with `ip netns exec`). Reads one JSON command per line on
// stdin, answers one JSON line per command on stdout.
import { createInterface } from "node:readline";
import { Balancer } from "../../src/balancer";
import { parseConfig } from "../../src/config";

type Command =
  | { op: "start"; config: unknown }
  | { op: "addService"; service: Record<string, unknown> }
  | { op: "removeService"; vip: string; port: number; protocol?: "tcp" | "udp" }
  | { op: "addReal"; vip: string; port: number; real: Record<string, unknown> }
  | { op: "updateReal"; vip: string; port: number; ip: string; weight: number }
  | { op: "removeReal"; vip: string; port: number; ip: string }
  | { op: "status" }
  | { op: "stop" };

let balancer: Balancer | undefined;

async function execute(command: Command): Promise<unknown> {
  switch (command.op) {
    case "start":
      balancer = await Balancer.start(parseConfig(command.config));
      return { started: true };
    case "addService":
      return balancer!.addService(command.service);
    case "removeService":
      return balancer!.removeService({ vip: command.vip, port: command.port, ...(command.protocol ? { protocol: command.protocol } : {}) });
    case "addReal":
      return balancer!.addReal({ vip: command.vip, port: command.port }, command.real);
    case "updateReal":
      return balancer!.updateReal({ vip: command.vip, port: command.port }, { ip: command.ip }, { weight: command.weight });
    case "removeReal":
      return balancer!.removeReal({ vip: command.vip, port: command.port }, { ip: command.ip });
    case "status":
      return balancer!.status();
    case "stop":
      await balancer?.stop();
      return { stopped: true };
  }
}

const lines = createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on("line", (line) => {
  queue = queue.then(async () => {
    try {
      const result = await execute(JSON.parse(line) as Command);
      process.stdout.write(`${JSON.stringify({ ok: true, result: result ?? null })}\n`);
    } catch (error) {
      const e = error as Error & { code?: string };
      process.stdout.write(`${JSON.stringify({ ok: false, name: e.name, code: e.code, message: e.message })}\n`);
    }
  });
});
lines.on("close", () => void queue.then(() => balancer?.stop()));
