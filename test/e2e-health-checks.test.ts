// keepalived's checkers against real servers in the lab: http (status and reason), udp (the default
// for a UDP service: up while the echo answers, down on ICMP port unreachable) and exec (the real's
// address in the program's environment), each deciding where new connections go.
import test from "ava";
import { blobUrl, runDownload } from "../lab/download";
import { runUdpClient } from "../lab/udpEcho";
import type { BalancerStatus } from "../src/balancer";
import { REAL_PORT, SERVICE_PORT, UDP_SERVICE_PORT, startUdpEchoes, tcpService, udpService, withNatLab } from "./support/lab";

const FAST = { intervalMs: 200, timeoutMs: 300, rise: 1, fall: 1 };
const EXEC_PORT = 82;
const MISSING_PATH_PORT = 81;

async function until(read: () => Promise<BalancerStatus>, ok: (s: BalancerStatus) => boolean, timeoutMs: number): Promise<BalancerStatus> {
  const deadline = Date.now() + timeoutMs;
  let status = await read();
  while (!ok(status) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    status = await read();
  }
  return status;
}

const realsOf = (status: BalancerStatus, port: number) => status.services.find((s) => s.port === port)!.reals;

test("http, udp and exec checks take the right reals down, with reasons, and scheduling follows", async (t) => {
  await withNatLab(
    t,
    {
      offloads: true,
      config: (lab) => ({
        services: [
          tcpService(lab, [1, 1, 1], { healthCheck: { type: "http", path: "/health", ...FAST } }),
          tcpService(lab, [1, 1, 1], { port: MISSING_PATH_PORT, healthCheck: { type: "http", path: "/nope", ...FAST } }),
          tcpService(lab, [1, 1, 1], {
            port: EXEC_PORT,
            healthCheck: { type: "exec", command: ["/bin/sh", "-c", `[ "$NATLB_REAL_IP:$NATLB_REAL_PORT" != "${lab.reals[2]!.ip}:${REAL_PORT}" ]`], ...FAST },
          }),
          // No type: a UDP service gets a udp check, not a TCP connect to a port nothing listens on with TCP.
          // Once a second: the reals' kernels send ICMP errors to one host about once a second (icmp_ratelimit).
          udpService(lab, { healthCheck: { intervalMs: 1000, timeoutMs: 300, rise: 2, fall: 1 } }),
        ],
      }),
    },
    async ({ lab, servers, natlb }) => {
      const echoes = await startUdpEchoes(lab);
      const read = () => natlb!.status();
      let status = await until(read, (s) => realsOf(s, UDP_SERVICE_PORT).every((r) => r.up) && (realsOf(s, EXEC_PORT)[2]!.health?.checks ?? 0) > 0, 5000);
      t.true(realsOf(status, SERVICE_PORT).every((r) => r.up), "GET /health answers 200 on every real");
      t.true(realsOf(status, UDP_SERVICE_PORT).every((r) => r.up), "every UDP echo is up under the default udp check");
      for (const [i, real] of realsOf(status, MISSING_PATH_PORT).entries()) {
        t.false(real.up);
        t.is(real.health?.reason, `http 404 from ${lab.reals[i]!.ip}:${REAL_PORT}/nope`);
      }
      t.deepEqual(realsOf(status, EXEC_PORT).map((r) => r.up), [true, true, false], "the exec check saw each real's address");
      t.true(realsOf(status, EXEC_PORT)[2]!.health!.reason.includes("exited 1"));
      // The exec check alone decides: real 3 gets nothing from this service although its server answers.
      const viaExec = await runDownload(lab, { url: blobUrl(lab.vip, EXEC_PORT, 4096, "ex"), conns: 3, count: 24, localPortBase: 27100 });
      t.is(viaExec.failed, 0);
      t.false(viaExec.results.some((r) => r.real === lab.reals[2]!.ip), "no new connection to the real the exec check refuses");

      // A stopped blob server: refused for http; a stopped echo: ICMP port unreachable for udp.
      await servers[0]!.stop();
      await echoes[1]!.stop();
      status = await until(read, (s) => !realsOf(s, SERVICE_PORT)[0]!.up && !realsOf(s, UDP_SERVICE_PORT)[1]!.up, 5000);
      t.false(realsOf(status, SERVICE_PORT)[0]!.up);
      t.regex(realsOf(status, SERVICE_PORT)[0]!.health!.reason, new RegExp(`^http connection refused .* from ${lab.reals[0]!.ip.replaceAll(".", "\\.")}:${REAL_PORT}/health$`));
      t.false(realsOf(status, UDP_SERVICE_PORT)[1]!.up);
      t.regex(realsOf(status, UDP_SERVICE_PORT)[1]!.health!.reason, /port unreachable/);

      const tcp = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, 4096, "hc"), conns: 3, count: 24, localPortBase: 27000 });
      t.is(tcp.failed, 0);
      t.false(tcp.results.some((r) => r.real === lab.reals[0]!.ip), "no new connection to the real whose http check fails");
      const udp = await runUdpClient(lab, { host: lab.vip, port: UDP_SERVICE_PORT, count: 12, sockets: 12, localPortBase: 27200, timeoutMs: 1000 });
      t.is(udp.received, 12);
      t.false(udp.replies.some((r) => r.real === lab.reals[1]!.ip), "no new UDP flow to the real whose echo stopped");
    },
  );
});
