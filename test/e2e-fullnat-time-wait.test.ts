// End to end, full NAT and TIME_WAIT at the real: the servers close first, so every (local address,
// port) a flow used stays in the real's TIME_WAIT after the flow is gone. A new flow given such a pair
// gets the old connection's ACK instead of a SYN-ACK (Linux accepts the SYN only if its sequence or
// timestamp is newer, which a different client's need not be), natlb drops that ACK as out of window,
// and the client times out. natlb hands ports out in turn (native/flow/local_ports.h), so with more
// ports than connections no pair is used twice. (With random picks this case fails: connections time
// out, dropOutOfWindow counted.)
import test from "ava";
import { startCapture } from "../lab/capture";
import { blobUrl, runDownload } from "../lab/download";
import { REAL_PORT, SERVICE_PORT, withNatLab } from "./support/lab";

const CONNECTIONS = 1500;
const PORTS = { first: 10_000, last: 11_999 };

test.serial(`fullnat: ${CONNECTIONS} short connections the server closes all succeed, none out of window, no (local address, port) pair used twice`, async (t) => {
  await withNatLab(
    t,
    {
      offloads: true,
      reals: 1,
      fullNat: true,
      prefix: "ftw",
      blobReals: [1],
      config: (lab) => ({
        services: [{
          vip: lab.vip,
          port: SERVICE_PORT,
          forwarding: "fullnat",
          fullnat: { localAddresses: [lab.fullNatPool[0]!], localPorts: PORTS },
          // natlb forgets a closed flow (and frees its port) long before the real's 60 s TIME_WAIT ends,
          // as it does when a client's new SYN reuses a closing flow's tuple (bench/, many clients).
          timeouts: { tcpTimeWait: 1, tcpClose: 1 },
          reals: [{ ip: lab.reals[0]!.ip, port: REAL_PORT }],
        }],
      }),
    },
    async ({ lab, natlb }) => {
      // One client stands for many: without timestamps its SYN's sequence number alone decides whether
      // the real's TIME_WAIT takes it as new, and that is random, as between different clients.
      await lab.exec(lab.client.ns, "sysctl", ["-qw", "net.ipv4.tcp_timestamps=0"]);
      // The SYNs the real gets: which (pool address, port) each connection came from.
      const syns = await startCapture(lab, lab.reals[0]!.ns, {
        filter: `tcp dst port ${REAL_PORT} and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn`,
        maxPackets: CONNECTIONS + 100,
        seconds: 90,
        snaplen: 96,
      });
      const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 512, "ftw"), conns: 8, count: CONNECTIONS, timeoutMs: 30_000, sha: false });
      t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error).slice(0, 3)));
      const c = (await natlb!.status()).counters;
      t.true(c.newFlows >= CONNECTIONS, `newFlows ${c.newFlows}`);
      t.is(c.dropOutOfWindow, 0);
      t.is(c.dropFullnatPortsExhausted, 0);
      const synPackets = await syns.stop();
      // A retransmitted SYN repeats its sequence number; another connection on the same pair has its own.
      t.true(synPackets.length >= CONNECTIONS * 0.95, `${synPackets.length} SYNs captured of ${CONNECTIONS}`);
      const sequencesByPair = new Map<string, Set<number | undefined>>();
      for (const p of synPackets) {
        const pair = `${p.src}:${p.sport}`;
        sequencesByPair.set(pair, (sequencesByPair.get(pair) ?? new Set()).add(p.tcpSeq));
      }
      const reused = [...sequencesByPair].filter(([, sequences]) => sequences.size > 1).map(([pair]) => pair);
      t.deepEqual(reused, [], "no (pool address, port) pair used by two connections");
      // The case is the one meant: the servers closed first (mostly; the client's close can race the
      // server's), so the real holds the pairs in TIME_WAIT.
      const timeWait = await lab.exec(lab.reals[0]!.ns, "ss", ["-Htan", "state", "time-wait", "dst", lab.fullNatPool[0]!]);
      const held = timeWait.stdout.split("\n").filter((line) => line.trim() !== "").length;
      t.true(held >= CONNECTIONS / 2, `${held} pairs in TIME_WAIT at the real`);
    },
  );
});
