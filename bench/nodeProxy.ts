// The "Node net + pipe proxy" comparison point: a user-space TCP proxy in ~20 lines, round robin.
//   node dist/bench/nodeProxy.js <listen ip> <port>=<ip:port>,<ip:port>.. [<port>=..] [--max-seconds S]
// Prints {"event":"listening","pid":..} once every port listens.
import net from "node:net";

const args = process.argv.slice(2);
const maxIndex = args.indexOf("--max-seconds");
const maxSeconds = maxIndex >= 0 ? Number(args.splice(maxIndex, 2)[1]) : 3600;
const [listenIp, ...maps] = args;
let listening = 0;
for (const map of maps) {
  const [port, list] = map.split("=") as [string, string];
  const reals = list.split(",").map((r) => ({ host: r.split(":")[0] as string, port: Number(r.split(":")[1]) }));
  let next = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(reals[next++ % reals.length] as { host: string; port: number });
    const close = (): void => void (client.destroy(), upstream.destroy());
    client.on("error", close).pipe(upstream).on("error", close).pipe(client);
  });
  server.listen({ host: listenIp, port: Number(port), backlog: 4096 }, () => {
    if (++listening === maps.length) process.stdout.write(`${JSON.stringify({ event: "listening", pid: process.pid })}\n`);
  });
}
setTimeout(() => process.exit(0), maxSeconds * 1000).unref();
process.once("SIGTERM", () => process.exit(0));
