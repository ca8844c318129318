// End to end, a new connection on a 4-tuple the real still holds in TIME_WAIT (nat and fullnat). The
// servers close first, so the real keeps each connection's tuple for 60 s. Without client timestamps,
// Linux takes a SYN on such a tuple as new only when its sequence number is above the old connection's
// (tcp_timewait_state_process); otherwise it answers with the old connection's ACK, the client (in
// SYN_SENT) answers that with a RST carrying the ACK's acknowledgement as its sequence number (RFC 793),
// the RST ends the TIME_WAIT, and the SYN retransmitted 1 s later connects. natlb must forward that RST
// although it fits no window (native/flow/tcp_window.h); when it dropped it (dropOutOfWindow), every
// retransmitted SYN met the TIME_WAIT again and the connection timed out.
//
// The client reuses one source port, alternating between two services (ports 80 and 81) on the same
// real: the real sees one tuple (nat: client address and port; fullnat: the one local address and port
// of the pool), while the client's initial sequence numbers for the two destinations (Linux: a hash of
// the tuple plus a clock) differ by a fixed offset, so in one of the two directions of the alternation
// the SYN is always "old" to the TIME_WAIT: every other connection meets it. natlb forgets each flow
// after 1 s (as after a restart, or when a closing flow is reused) and the next connection starts then.
//
// Full NAT with a pool of several local ports: the ports go out in turn, so once the turn has wrapped
// each new flow's port is one the real holds in TIME_WAIT. The client connects from a new port each
// time, so its SYN is old to that TIME_WAIT about every other time. The client's RST ends the TIME_WAIT
// but must not end the flow: had it, the SYN retransmitted 1 s later would start a new flow on the
// turn's next port, as likely in TIME_WAIT again, and wait for its next retransmission (3 s).
import test, { type ExecutionContext } from "ava";
import type { CapturedPacket } from "../lab/capture";
import { startCapture } from "../lab/capture";
import { blobSha256 } from "../lab/blobContent";
import type { Lab } from "../lab/topology";
import type { BalancerProcess } from "../lab/balancerProcess";
import { REAL_PORT, SERVICE_PORT, withNatLab } from "./support/lab";

const RECONNECTIONS = 30;
const CLIENT_PORT = 20_000;
const LOCAL_PORT = 10_000;
/** The pool of the case whose turn moves on: smaller than RECONNECTIONS, so it wraps several times. */
const POOL_PORTS = 8;
const BYTES = 4096;
/** One SYN retransmission (1 s) at most, and the transfer. */
const MAX_CONNECTION_MS = 1500;
const SERVICE_PORTS = [SERVICE_PORT, SERVICE_PORT + 1];

const has = (p: CapturedPacket, flag: string) => (p.tcpFlags ?? []).includes(flag);

/**
 * One HTTP/1.0 request from the client's CLIENT_PORT, run in its namespace: it reads until the server's
 * FIN and only then closes, so the server always closes first (the real holds the TIME_WAIT, the client
 * none that would refuse the next connect from the same port). Prints { ms, sha256 } of the body, or { error }.
 */
const CLIENT_SCRIPT = `
const [host, port, localPort, path, timeoutMs] = process.argv.slice(1);
const started = process.hrtime.bigint();
const ms = () => Number(process.hrtime.bigint() - started) / 1e6;
const chunks = [];
const socket = require("node:net").connect({ host, port: Number(port), localPort: Number(localPort) });
const timer = setTimeout(() => { console.log(JSON.stringify({ error: "timed out", ms: ms() })); socket.destroy(); }, Number(timeoutMs));
socket.on("connect", () => socket.write("GET " + path + " HTTP/1.0\\r\\n\\r\\n"));
socket.on("data", (chunk) => chunks.push(chunk));
socket.on("end", () => {
  clearTimeout(timer);
  const all = Buffer.concat(chunks);
  const body = all.subarray(all.indexOf("\\r\\n\\r\\n") + 4);
  console.log(JSON.stringify({ ms: ms(), sha256: require("node:crypto").createHash("sha256").update(body).digest("hex") }));
});
socket.on("error", (e) => { clearTimeout(timer); console.log(JSON.stringify({ error: e.code || e.message, ms: ms() })); });
`;

async function fetchFromClientPort(lab: Lab, port: number, clientPort: number, path: string): Promise<{ ms: number; sha256?: string; error?: string }> {
  const run = await lab.exec(lab.client.ns, process.execPath, ["-e", CLIENT_SCRIPT, lab.vip, String(port), String(clientPort), path, "5000"], { timeoutMs: 15_000 });
  return JSON.parse(run.stdout.split("\n")[0]!) as { ms: number; sha256?: string; error?: string };
}

/** Waits (bounded) until natlb holds no flow: the next connection is a new flow, as after a restart. */
async function waitForNoFlows(natlb: BalancerProcess): Promise<number> {
  const deadline = Date.now() + 6000;
  for (;;) {
    const live = (await natlb.status()).flows.live;
    if (live === 0 || Date.now() > deadline) return live;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** How a test reconnects: nat or fullnat, how many local ports the fullnat pool has, whether the client changes its port. */
interface Case {
  readonly fullNat: boolean;
  readonly localPorts: number;
  readonly newClientPortEachTime: boolean;
}

async function reconnect(t: ExecutionContext, lab: Lab, natlb: BalancerProcess, { fullNat, localPorts, newClientPortEachTime }: Case): Promise<void> {
  const clientPortOf = (i: number) => (newClientPortEachTime ? CLIENT_PORT + i : CLIENT_PORT);
  // Without timestamps only the SYN's sequence number decides at the TIME_WAIT (the lab's own namespace).
  await lab.exec(lab.client.ns, "sysctl", ["-qw", "net.ipv4.tcp_timestamps=0"]);
  const real = lab.reals[0]!;
  const capture = await startCapture(lab, real.ns, {
    filter: `tcp port ${REAL_PORT}`,
    maxPackets: RECONNECTIONS * 40,
    seconds: RECONNECTIONS * 8 + 30,
    snaplen: 96,
  });
  // The client's RSTs as it sent them, before natlb.
  const clientCapture = await startCapture(lab, lab.client.ns, {
    filter: `tcp portrange ${CLIENT_PORT}-${clientPortOf(RECONNECTIONS - 1)} and tcp[tcpflags] & tcp-rst != 0`,
    maxPackets: RECONNECTIONS * 10,
    seconds: RECONNECTIONS * 8 + 30,
    snaplen: 96,
  });
  const slow: string[] = [];
  const failed: string[] = [];
  for (let i = 0; i < RECONNECTIONS; i++) {
    if ((await waitForNoFlows(natlb)) !== 0) t.fail(`natlb still holds ${JSON.stringify(await natlb.connections())}`);
    const port = SERVICE_PORTS[i % 2]!;
    const seed = `tw${i}`;
    const result = await fetchFromClientPort(lab, port, clientPortOf(i), `/blob?bytes=${BYTES}&seed=${seed}`);
    if (result.error || result.sha256 !== blobSha256(seed, BYTES)) failed.push(`#${i}: ${result.error ?? "wrong content"} after ${result.ms} ms`);
    else if (result.ms > MAX_CONNECTION_MS) slow.push(`#${i}: ${result.ms} ms`);
  }
  const packets = await capture.stop();
  const clientResets = await clientCapture.stop();
  const counters = (await natlb.status()).counters;
  t.log(`client sent ${clientResets.length} RSTs; dropOutOfWindow ${counters.dropOutOfWindow}, tcpUntracked ${counters.tcpUntracked}`);
  t.deepEqual(failed, [], `connections that failed (dropOutOfWindow ${counters.dropOutOfWindow})`);
  t.deepEqual(slow, [], "connections that needed more than one SYN retransmission");
  t.is(counters.dropOutOfWindow, 0);
  // The case met: the real answered SYNs with its TIME_WAIT's bare ACK, and the client's RST carrying
  // that ACK's acknowledgement reached it through natlb.
  const peer = fullNat ? lab.fullNatPool[0]! : lab.client.ip;
  const timeWaitAcks = packets.filter((p) => p.src === real.ip && has(p, "ACK") && !has(p, "SYN") && !has(p, "FIN") && !has(p, "RST") && p.payloadLength === 0);
  const resets = packets.filter((p) => p.src === peer && has(p, "RST"));
  const answered = resets.filter((rst) => timeWaitAcks.some((ack) => ack.t <= rst.t && ack.tcpAck === rst.tcpSeq && ack.dport === rst.sport));
  t.true(answered.length >= 1, `${answered.length} client RSTs answering a TIME_WAIT's ACK reached the real (${resets.length} RSTs)`);
  t.log(`${answered.length} of ${RECONNECTIONS} connections met the TIME_WAIT and went through after its RST`);
  const syns = packets.filter((p) => has(p, "SYN") && !has(p, "ACK"));
  // The SYN after each such RST (the client's retransmission) came on the same tuple, whose TIME_WAIT
  // the RST ended: natlb kept the flow, its real and its local port.
  const movedOn = answered.filter((rst) => {
    const next = syns.find((syn) => syn.t > rst.t);
    return next !== undefined && next.sport !== rst.sport;
  });
  t.deepEqual(movedOn.map((rst) => `${rst.src}:${rst.sport}`), [], "SYNs retransmitted after the RST from another local port");
  // The tuples the real saw: nat, the client's one; fullnat, the pool's ports in turn (one, or all).
  const synSources = [...new Set(syns.map((p) => `${p.src}:${p.sport}`))].sort();
  const expected = !fullNat
    ? [`${peer}:${CLIENT_PORT}`]
    : Array.from({ length: localPorts }, (_, k) => `${peer}:${LOCAL_PORT + k}`);
  t.deepEqual(synSources, expected);
}

const cases: readonly (Case & { readonly title: string; readonly prefix: string })[] = [
  { title: `nat: ${RECONNECTIONS} reconnections on a tuple the real holds in TIME_WAIT`, prefix: "twn", fullNat: false, localPorts: 1, newClientPortEachTime: false },
  { title: `fullnat: ${RECONNECTIONS} reconnections on a tuple the real holds in TIME_WAIT`, prefix: "twf", fullNat: true, localPorts: 1, newClientPortEachTime: false },
  {
    title: `fullnat, ${POOL_PORTS} local ports in turn: ${RECONNECTIONS} connections from new client ports, each local port in TIME_WAIT once the turn wrapped,`,
    prefix: "twp",
    fullNat: true,
    localPorts: POOL_PORTS,
    newClientPortEachTime: true,
  },
];

for (const testCase of cases) {
  const { fullNat, localPorts } = testCase;
  test.serial(`${testCase.title} all complete within one SYN retransmission`, async (t) => {
    await withNatLab(
      t,
      {
        offloads: true,
        reals: 1,
        prefix: testCase.prefix,
        ...(fullNat ? { fullNat: true } : {}),
        config: (lab) => ({
          services: SERVICE_PORTS.map((port) => ({
            vip: lab.vip,
            port,
            ...(fullNat
              ? { forwarding: "fullnat", fullnat: { localAddresses: [lab.fullNatPool[0]!], localPorts: { first: LOCAL_PORT, last: LOCAL_PORT + localPorts - 1 } } }
              : {}),
            // A stuck handshake (the bug this tests) must not hold the tuple for the next connection.
            timeouts: { tcpSynRecv: 3, tcpFinWait: 1, tcpTimeWait: 1, tcpClose: 1 },
            reals: [{ ip: lab.reals[0]!.ip, port: REAL_PORT }],
          })),
        }),
      },
      async ({ lab, natlb }) => reconnect(t, lab, natlb!, testCase),
    );
  });
}
