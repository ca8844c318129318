// wlc in the lab: a real already holding many long connections gets none of the next ones until the
// others hold as many per unit of weight, as IPVS's wlc does. Connections are held open by a client
// in the lab's client namespace; the counts are read from status (the data plane's per-real counters)
// and checked against the flow map.
import test from "ava";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { SERVICE_PORT, tcpService, withNatLab } from "./support/lab";

/**
 * Opens `count` TCP connections to vip:port from the client namespace, one after the other, and holds
 * them (at most 60 s). One at a time, each connection's ACK reaches natlb before the next SYN, so every
 * pick sees the earlier ones ESTABLISHED: a burst would leave some in SYN_RECV, which IPVS's formula
 * weighs 256 times less, and the shares would depend on timing.
 */
async function holdConnections(ns: string, vip: string, port: number, count: number): Promise<ChildProcess> {
  const script = `
    const net = require("node:net");
    const sockets = [];
    const next = () => {
      if (sockets.length === ${count}) return console.log("ready");
      const s = net.connect({ host: "${vip}", port: ${port} }, () => setTimeout(next, 5));
      s.on("error", (e) => { console.error(e.message); process.exit(1); });
      sockets.push(s);
    };
    next();
    setTimeout(() => process.exit(0), 60000);`;
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("connections not open within 15 s")), 15_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line === "ready") {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => reject(new Error(`holder exited with ${code}`)));
  });
  return child;
}

test("wlc: new connections avoid the real that holds many, until the others hold as many per weight", async (t) => {
  await withNatLab(t, { offloads: true, config: (lab) => ({ services: [tcpService(lab, [1, 0, 0], { scheduler: "wlc" })] }) }, async ({ lab, natlb }) => {
    const holders: ChildProcess[] = [];
    t.teardown(() => holders.forEach((h) => h.kill("SIGKILL")));
    const active = async () => (await natlb!.status()).services[0]!.reals.map((r) => r.activeConns);
    // Only real 1 takes connections: 20 held there.
    holders.push(await holdConnections(lab.client.ns, lab.vip, SERVICE_PORT, 20));
    t.deepEqual(await active(), [20, 0, 0]);
    // Reals 2 (weight 1) and 3 (weight 2) join: 30 more held connections go by (256A+I)/W.
    for (const [i, weight] of [[1, 1], [2, 2]] as const) {
      const change = await natlb!.cli(["real", "weight", `${lab.vip}:${SERVICE_PORT}`, lab.reals[i]!.ip, String(weight)]);
      t.is(change.code, 0, change.stderr);
    }
    holders.push(await holdConnections(lab.client.ns, lab.vip, SERVICE_PORT, 30));
    const counts = await active();
    // IPVS's wlc: 10 to real 2 and 20 to real 3 bring them to 10/1 and 20/2, still below real 1's 20/1.
    t.deepEqual(counts, [20, 10, 20]);
    // The data plane's counters agree with the flow map.
    const conns = await natlb!.connections();
    t.deepEqual(lab.reals.map((r) => conns.filter((c) => c.real.ip === r.ip && c.state === "ESTABLISHED").length), counts);
  });
});
