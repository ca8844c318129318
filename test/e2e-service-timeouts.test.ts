// End to end, real packets: per-service timeouts (config services[].timeouts). Two services of each
// protocol on the VIP, one with udp 2 s and tcpEstablished 3 s, one with the global (default) timeouts:
// the short service's idle UDP and idle established TCP flows (the TCP one forwarded by the kernel fast
// path, judged by the kernel's last-seen time) expire within a bounded margin while the other service's
// stay; a stream busier than the timeout goes on intact (sha256); a reload that gives a service short
// timeouts ends its idle flows, which the global ones kept. Flows are read from the daemon's flow map
// (GET /conns), timeouts from its status. Every lab here uses the namespace prefix "st".
import { writeFileSync } from "node:fs";
import test, { type ExecutionContext } from "ava";
import type { Connection } from "../src/flows/flowMap";
import type { BalancerProcess } from "../lab/balancerProcess";
import { namespaceOwnerPid } from "../lab/staleLabs";
import { listLabNamespaces, type Lab } from "../lab/topology";
import { runUdpClient } from "../lab/udpEcho";
import { sleep, waitUntil } from "../lab/wait";
import { UDP_REAL_PORT, withNatLab } from "./support/lab";
import { startPacedClient, startPacedServer } from "./support/pacedStream";

const PREFIX = "st";
const SHORT = { udp: 2, tcpEstablished: 3 };
const STREAM_REAL_PORT = 9000;
const SHORT_TCP_PORT = 81;
const DEFAULT_TCP_PORT = 82;
const SHORT_UDP_PORT = 53;
const DEFAULT_UDP_PORT = 54;
/** What the sweep (every 100 ms), a kernel read-back (every second) and a loaded machine's CLI calls may add to a timeout. */
const MARGIN_MS = 3000;

function tcpStreamService(lab: Lab, port: number, extra: Record<string, unknown> = {}) {
  return { vip: lab.vip, port, protocol: "tcp", scheduler: "rr", reals: [{ ip: lab.reals[0]!.ip, port: STREAM_REAL_PORT }], ...extra };
}

function udpEchoService(lab: Lab, port: number, extra: Record<string, unknown> = {}) {
  return { vip: lab.vip, port, protocol: "udp", scheduler: "rr", reals: [{ ip: lab.reals[0]!.ip, port: UDP_REAL_PORT }], ...extra };
}

/** A paced stream's client from `localPort` to VIP:port, held open (lingering) once the bytes are in. */
function streamTo(lab: Lab, localPort: number, port: number, expectBytes: number) {
  return startPacedClient(lab, { host: lab.vip, port, localPort, expectBytes, lingerMs: 40_000, timeoutMs: 60_000 });
}

function flowFrom(connections: Connection[], lab: Lab, clientPort: number): Connection | undefined {
  return connections.find((c) => c.client.ip === lab.client.ip && c.client.port === clientPort);
}

/** Waits (bounded) until the flow from `clientPort` is gone; resolves with when (Date.now()), or undefined if it stayed. */
async function goneAt(natlb: BalancerProcess, lab: Lab, clientPort: number, timeoutMs: number): Promise<number | undefined> {
  return waitUntil(`the flow from port ${clientPort} to expire`, async () =>
    flowFrom(await natlb.connections(), lab, clientPort) === undefined ? Date.now() : undefined, timeoutMs, 100).catch(() => undefined);
}

function withStLab(t: ExecutionContext, config: (lab: Lab) => unknown, body: (lab: Lab, natlb: BalancerProcess) => Promise<void>): Promise<void> {
  return withNatLab(t, { offloads: true, reals: 1, prefix: PREFIX, blobReals: [], udpEchoes: true, config }, ({ lab, natlb }) => body(lab, natlb!));
}

test.serial("idle flows of the service with udp 2 s / tcpEstablished 3 s expire (the TCP one from the kernel fast path), the default service's stay; a busy stream outlives the timeout intact", async (t) => {
  const chunks = 60;  // 6 s at one chunk every 100 ms: twice the short tcpEstablished
  const chunkBytes = 16 * 1024;
  const shortClientPort = 32000, defaultClientPort = 32001;
  const shortUdpPort = 33000, defaultUdpPort = 33001;
  await withStLab(
    t,
    (lab) => ({
      services: [
        tcpStreamService(lab, SHORT_TCP_PORT, { timeouts: SHORT }),
        tcpStreamService(lab, DEFAULT_TCP_PORT),
        udpEchoService(lab, SHORT_UDP_PORT, { timeouts: SHORT }),
        udpEchoService(lab, DEFAULT_UDP_PORT),
      ],
      kernelFastPath: true,
    }),
    async (lab, natlb) => {
      // Status: the short services' timeouts, the others none (they are the global ones).
      const status = await natlb.status();
      const timeoutsOf = (port: number, protocol: string) => status.services.find((s) => s.port === port && s.protocol === protocol)?.timeouts;
      t.deepEqual(timeoutsOf(SHORT_TCP_PORT, "tcp"), { tcpEstablished: 3, tcpSynRecv: 60, tcpFinWait: 120, tcpTimeWait: 120, tcpClose: 10, udp: 2 });
      t.deepEqual(timeoutsOf(SHORT_UDP_PORT, "udp"), { tcpEstablished: 3, tcpSynRecv: 60, tcpFinWait: 120, tcpTimeWait: 120, tcpClose: 10, udp: 2 });
      t.is(timeoutsOf(DEFAULT_TCP_PORT, "tcp"), undefined);
      t.is(timeoutsOf(DEFAULT_UDP_PORT, "udp"), undefined);
      const text = await natlb.cli(["status"]);
      t.regex(text.stdout, /TCP +198\.\d+\.\d+\.\d+:81 +rr\n  timeouts \(not all the global ones\): tcpEstablished 3 s, .*udp 2 s\n/);

      // UDP: one exchange on each service, then silence.
      const [shortUdp, defaultUdp] = await Promise.all([
        runUdpClient(lab, { host: lab.vip, port: SHORT_UDP_PORT, count: 1, localPortBase: shortUdpPort }),
        runUdpClient(lab, { host: lab.vip, port: DEFAULT_UDP_PORT, count: 1, localPortBase: defaultUdpPort }),
      ]);
      const udpDoneAt = Date.now();
      t.is(shortUdp.received, 1);
      t.is(defaultUdp.received, 1);

      // TCP: a paced stream on each service, busy 6 s, then held open and idle.
      const server = await startPacedServer(lab, 1, STREAM_REAL_PORT, { chunkBytes, intervalMs: 100, chunks });
      const shortClient = streamTo(lab, shortClientPort, SHORT_TCP_PORT, chunks * chunkBytes);
      const defaultClient = streamTo(lab, defaultClientPort, DEFAULT_TCP_PORT, chunks * chunkBytes);
      try {
        // The short UDP flow goes after about 2 s of silence; the default one stays.
        const udpGone = await goneAt(natlb, lab, shortUdpPort, 2000 + MARGIN_MS + 2000);
        t.not(udpGone, undefined, "the short service's idle UDP flow did not expire");
        t.true(udpGone! - udpDoneAt >= 1000, `the short UDP flow went ${udpGone! - udpDoneAt} ms after its exchange: before its 2 s`);
        t.true(udpGone! - udpDoneAt <= 2000 + MARGIN_MS, `the short UDP flow went ${udpGone! - udpDoneAt} ms after its exchange`);
        t.is(flowFrom(await natlb.connections(), lab, defaultUdpPort)?.state, "UDP", "the default service's UDP flow is still there");

        // Both streams arrive whole, the short service's one though it ran longer than its tcpEstablished.
        const [shortGot, defaultGot] = await Promise.all([shortClient.received(30_000), defaultClient.received(30_000)]);
        const receivedAt = Date.now();
        for (const [got, port] of [[shortGot, shortClientPort], [defaultGot, defaultClientPort]] as const) {
          const sent = await server.sentTo(port, 5000);
          t.is(got.bytes, sent.bytes);
          t.is(got.sha256, sent.sha256, `sha256 at the client (port ${port}) differs from the server's`);
        }
        t.true(shortGot.ms > 4000, `the stream lasted ${shortGot.ms} ms: it must outlast tcpEstablished (3 s) for this test to mean anything`);
        const busy = flowFrom(await natlb.connections(), lab, shortClientPort);
        t.is(busy?.state, "ESTABLISHED", "the busy flow of the short service outlived its 3 s idle timeout");
        t.true((busy?.ageMs ?? 0) > 4000, `the busy flow is ${busy?.ageMs} ms old`);
        let s = await natlb.status();
        // Handed over after the handshake, or scheduled by the kernel itself (the default): either way in the kernel.
        t.is(s.counters.flowsOffloaded + s.counters.kernelScheduledFlows, 2, "both streams went through the kernel fast path");
        t.true(s.counters.kernelForwardedBytes >= 0.9 * 2 * chunks * chunkBytes, `kernelForwardedBytes ${s.counters.kernelForwardedBytes}`);

        // Idle now: the short service's flow leaves the map and the kernel after about 3 s; the default one stays.
        const tcpGone = await goneAt(natlb, lab, shortClientPort, 3000 + MARGIN_MS + 3000);
        t.not(tcpGone, undefined, "the short service's idle established flow did not expire");
        t.true(tcpGone! - receivedAt <= 3000 + MARGIN_MS, `the short TCP flow went ${tcpGone! - receivedAt} ms after its last byte`);
        t.true(shortClient.tool.running, "the client still holds the connection: the flow expired by idleness");
        s = await natlb.status();
        t.is(s.kernelFastPath.flows, 1, "only the default service's flow is left in the kernel");
        await sleep(3000);
        const stayed = flowFrom(await natlb.connections(), lab, defaultClientPort);
        t.is(stayed?.state, "ESTABLISHED", "the default service's idle flow is still there");
        t.true((stayed?.idleMs ?? 0) > 3000 + 1000, `the default flow has been idle ${stayed?.idleMs} ms, longer than the short tcpEstablished`);
        t.is((await natlb.status()).kernelFastPath.flows, 1);
        t.is(flowFrom(await natlb.connections(), lab, defaultUdpPort)?.state, "UDP", "the default service's UDP flow is still there");
      } finally {
        await Promise.all([shortClient.stop(), defaultClient.stop(), server.stop()]);
      }
    },
  );
});

test.serial("a reload that gives a service short timeouts applies to its existing flows: its idle TCP and UDP flows expire, the other service's stay", async (t) => {
  const chunks = 8;
  const chunkBytes = 16 * 1024;
  const changedClientPort = 32100, otherClientPort = 32101, changedUdpPort = 33100;
  const config = (lab: Lab, timeouts?: typeof SHORT) => ({
    services: [
      tcpStreamService(lab, SHORT_TCP_PORT, timeouts ? { timeouts } : {}),
      tcpStreamService(lab, DEFAULT_TCP_PORT),
      udpEchoService(lab, SHORT_UDP_PORT, timeouts ? { timeouts } : {}),
    ],
  });
  await withStLab(t, (lab) => config(lab), async (lab, natlb) => {
    const server = await startPacedServer(lab, 1, STREAM_REAL_PORT, { chunkBytes, intervalMs: 20, chunks });
    const changedClient = streamTo(lab, changedClientPort, SHORT_TCP_PORT, chunks * chunkBytes);
    const otherClient = streamTo(lab, otherClientPort, DEFAULT_TCP_PORT, chunks * chunkBytes);
    try {
      const [got] = await Promise.all([changedClient.received(30_000), otherClient.received(30_000)]);
      t.is(got.sha256, (await server.sentTo(changedClientPort, 5000)).sha256);
      t.is((await runUdpClient(lab, { host: lab.vip, port: SHORT_UDP_PORT, count: 1, localPortBase: changedUdpPort })).received, 1);

      // Idle longer than the short timeouts under the global ones: the flows stay.
      await waitUntil("the flows to idle 4 s", async () => {
        const flows = await natlb.connections();
        const idle = [changedClientPort, otherClientPort, changedUdpPort].map((port) => flowFrom(flows, lab, port)?.idleMs ?? -1);
        if (idle.includes(-1)) throw new Error(`a flow went before the reload: ${JSON.stringify(flows)}`);
        return idle.every((ms) => ms > 4000);
      }, 15_000, 200);
      t.is(flowFrom(await natlb.connections(), lab, changedClientPort)?.state, "ESTABLISHED");

      writeFileSync(natlb.configPath, JSON.stringify(config(lab, SHORT), null, 2));
      const reload = await natlb.cli(["reload"]);
      t.is(reload.code, 0, reload.stderr);
      const reloadedAt = Date.now();
      const status = await natlb.status();
      t.is(status.services.find((s) => s.port === SHORT_TCP_PORT)?.timeouts?.tcpEstablished, 3);
      t.is(status.services.find((s) => s.port === DEFAULT_TCP_PORT)?.timeouts, undefined);

      // Idle well past their new timeouts already: they go at once (within the sweep's and the kernel read-back's time).
      const [tcpGone, udpGone] = await Promise.all([goneAt(natlb, lab, changedClientPort, MARGIN_MS + 3000), goneAt(natlb, lab, changedUdpPort, MARGIN_MS + 3000)]);
      t.not(tcpGone, undefined, "the reloaded service's idle TCP flow did not expire");
      t.not(udpGone, undefined, "the reloaded service's idle UDP flow did not expire");
      t.true(tcpGone! - reloadedAt <= MARGIN_MS, `the TCP flow went ${tcpGone! - reloadedAt} ms after the reload`);
      t.true(udpGone! - reloadedAt <= MARGIN_MS, `the UDP flow went ${udpGone! - reloadedAt} ms after the reload`);
      t.true(changedClient.tool.running, "the client still holds the connection: the flow expired by idleness");
      await sleep(1000);
      t.is(flowFrom(await natlb.connections(), lab, otherClientPort)?.state, "ESTABLISHED", "the other service's idle flow is still there");
    } finally {
      await Promise.all([changedClient.stop(), otherClient.stop(), server.stop()]);
    }
  });
});

test.serial("every st lab namespace made by this file is gone", async (t) => {
  const mine: string[] = [];
  for (const ns of await listLabNamespaces(PREFIX)) if ((await namespaceOwnerPid(ns)) === process.pid) mine.push(ns);
  t.deepEqual(mine, []);
});
