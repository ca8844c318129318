// Instruments of the router-duty and dead-real end-to-end tests (e2e-router-duties, e2e-dead-reals).
//
// - udpProbe(): a small python3 program run in a lab namespace that sends UDP datagrams with the DF
//   bit, TTL and size it is told, and reports what came back: every ICMP error about them (raw
//   socket: outer addresses, type, code, next-hop MTU, checksums, the quoted header), what the
//   sending socket's error queue says (IP_RECVERR: what the client's own stack made of the error),
//   the replies, and the datagrams as they left (AF_PACKET: DF bit, length, TTL on the wire).
// - The TCP stream server and client: pacedStream.ts (re-exported below).
// - This file as a program (launched in a namespace, like pacedStream.ts):
//     node dist/test/support/routerChecks.js udp-talk --host IP --port P --local-port L --count N --interval-ms I
//       One socket that sends datagram `seq` every I ms ("talk <seq> ..."), and prints
//       {"event":"reply","seq","real","from","t"} for each echo (lab/udpEcho.ts prefixes its
//       address), then {"event":"summary","sent"} a second after the last one. "t" is the wall clock
//       in ms, comparable with the "time" of natlb's log lines.
import dgram from "node:dgram";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { BalancerProcess } from "../../lab/balancerProcess";
import { sbin } from "../../lab/netns";
import type { Lab } from "../../lab/topology";
import { ToolArgs, UsageError, emit, emitThenExit, runToolMain } from "../../lab/toolArgs";
import { launchTool, type ToolProcess } from "../../lab/toolProcess";
import { waitUntil } from "../../lab/wait";

// ---------------------------------------------------------------------------------------------------
// The UDP probe.

const PROBE_SCRIPT = String.raw`
import json, select, socket, struct, sys, time
a = json.loads(sys.argv[1])
IP_TTL, IP_MTU_DISCOVER, IP_RECVERR = 2, 10, 11
PMTUDISC_PROBE, PMTUDISC_INTERFACE = 3, 4   # DF set (ignoring any learned path MTU) / DF clear
SO_RCVBUFFORCE, MSG_ERRQUEUE = 33, 0x2000
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
ntoa = socket.inet_ntoa
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
raw.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))   # ETH_P_ALL: outgoing frames too
sniff.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
sniff.bind((a['ifname'], 0))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
u.bind(('0.0.0.0', a['sport']))
u.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, PMTUDISC_PROBE if a['df'] else PMTUDISC_INTERFACE)
u.setsockopt(socket.IPPROTO_IP, IP_TTL, a['ttl'])
if a['recverr']: u.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
payload = b'natlb-probe '.ljust(a['size'] - 28, b'x')
sent, send_errors = 0, []
t0 = time.monotonic()
for i in range(a['count']):
    try:
        u.sendto(payload, (a['to'], a['port']))
        sent += 1
    except OSError as e:
        send_errors.append(e.errno)
send_seconds = time.monotonic() - t0
icmp, errqueue, replies, wire, recv_errors, other_icmp = [], [], [], [], [], 0
def drain_errqueue():
    while True:
        try:
            _, anc, _, _ = u.recvmsg(2048, 1024, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        for level, kind, data in anc:
            if level == socket.IPPROTO_IP and kind == IP_RECVERR and len(data) >= 24:
                errno_, origin, etype, ecode, _, info, _ = struct.unpack('=IBBBBII', data[:16])
                errqueue.append(dict(errno=errno_, origin=origin, type=etype, code=ecode, info=info, offender=ntoa(data[20:24])))
deadline = time.monotonic() + a['waitMs'] / 1000.0
while True:
    left = deadline - time.monotonic()
    if left <= 0: break
    ready, _, _ = select.select([raw, u, sniff], [], [], left)
    if raw in ready:
        d = raw.recv(65535)
        ihl = (d[0] & 15) * 4
        m = d[ihl:]
        if m[0] not in (3, 4, 5, 11, 12):
            continue
        q = m[8:]
        qihl = (q[0] & 15) * 4 if len(q) else 0
        if len(q) < qihl + 4 or q[9] != 17 or struct.unpack('!H', q[qihl:qihl + 2])[0] != a['sport']:
            other_icmp += 1
            continue
        icmp.append(dict(src=ntoa(d[12:16]), dst=ntoa(d[16:20]), ttl=d[8], type=m[0], code=m[1],
            mtu=struct.unpack('!H', m[6:8])[0], ipChecksumOk=csum(d[:ihl]) == 0, icmpChecksumOk=csum(m) == 0,
            quotedBytes=len(q), quote=dict(src=ntoa(q[12:16]), dst=ntoa(q[16:20]), proto=q[9], ttl=q[8],
            df=bool(q[6] & 0x40), length=struct.unpack('!H', q[2:4])[0],
            sport=struct.unpack('!H', q[qihl:qihl + 2])[0], dport=struct.unpack('!H', q[qihl + 2:qihl + 4])[0])))
    if u in ready:
        drain_errqueue()
        try:
            d, src = u.recvfrom(65535, socket.MSG_DONTWAIT)
            replies.append(dict(sender='%s:%d' % src, real=d.split(b' ', 1)[0].decode('latin1'), bytes=len(d)))
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:
            recv_errors.append(e.errno)
    if sniff in ready:
        f, where = sniff.recvfrom(65535)
        p = f[14:]
        if where[2] == 4 and f[12:14] == b'\x08\x00' and len(p) >= 28 and p[9] == 17 and ntoa(p[16:20]) == a['to']:
            ihl = (p[0] & 15) * 4
            if struct.unpack('!H', p[ihl:ihl + 2])[0] == a['sport'] and len(wire) < 1000:
                wire.append(dict(df=bool(p[6] & 0x40), length=struct.unpack('!H', p[2:4])[0], ttl=p[8]))
drain_errqueue()
print(json.dumps(dict(sent=sent, sendErrors=send_errors, sendSeconds=send_seconds, icmp=icmp, otherIcmp=other_icmp,
    errqueue=errqueue, replies=replies, recvErrors=recv_errors, wire=wire)))
`;

export interface ProbeIcmp {
  src: string;
  dst: string;
  ttl: number;
  type: number;
  code: number;
  /** Bytes 6..7 of the ICMP header: the next-hop MTU of a fragmentation-needed error. */
  mtu: number;
  ipChecksumOk: boolean;
  icmpChecksumOk: boolean;
  quotedBytes: number;
  quote: { src: string; dst: string; proto: number; ttl: number; df: boolean; length: number; sport: number; dport: number };
}

export interface ProbeResult {
  sent: number;
  sendErrors: number[];
  sendSeconds: number;
  /** ICMP errors quoting one of the probe's datagrams. */
  icmp: ProbeIcmp[];
  otherIcmp: number;
  /** The sending socket's error queue (IP_RECVERR): origin 2 is ICMP; info the MTU of a fragmentation-needed. */
  errqueue: Array<{ errno: number; origin: number; type: number; code: number; info: number; offender: string }>;
  replies: Array<{ sender: string; real: string; bytes: number }>;
  recvErrors: number[];
  /** The probe's datagrams as they left the namespace's interface. */
  wire: Array<{ df: boolean; length: number; ttl: number }>;
}

export interface ProbeOptions {
  to: string;
  port: number;
  /** The probe's UDP source port. */
  sport: number;
  /** IPv4 total length of each datagram (at least 40). */
  size: number;
  df: boolean;
  ttl: number;
  count?: number;
  /** Report ICMP errors on the sending socket (IP_RECVERR). A reported error fails the next send: use with count 1. */
  recverr?: boolean;
  /** How long to collect answers after the last send. Default 1000 ms. */
  waitMs?: number;
  /** Default: the lab's client. */
  ns?: string;
}

function python(): string {
  return existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

export async function udpProbe(lab: Lab, opts: ProbeOptions): Promise<ProbeResult> {
  const args = {
    to: opts.to, port: opts.port, sport: opts.sport, size: opts.size, df: opts.df, ttl: opts.ttl, count: opts.count ?? 1,
    recverr: opts.recverr ?? false, waitMs: opts.waitMs ?? 1000, ifname: "eth0",
  };
  const result = await lab.exec(opts.ns ?? lab.client.ns, python(), ["-c", PROBE_SCRIPT, JSON.stringify(args)], { timeoutMs: 30_000 });
  return JSON.parse(result.stdout.trim().split("\n").pop()!) as ProbeResult;
}

// ---------------------------------------------------------------------------------------------------
// Namespace helpers.

export async function setMtu(lab: Lab, ns: string, ifname: string, mtu: number): Promise<void> {
  await lab.exec(ns, sbin("ip"), ["link", "set", "dev", ifname, "mtu", String(mtu)]);
}

/** The path MTU `ns` has learned towards `destination` (its route cache), or null when it has none. */
export async function learnedPathMtu(lab: Lab, ns: string, destination: string): Promise<number | null> {
  const out = (await lab.exec(ns, sbin("ip"), ["-o", "route", "get", destination])).stdout;
  const match = /\bmtu (\d+)/.exec(out);
  return match ? Number(match[1]) : null;
}

/** The sender's view of the TCP connection to client port `peerPort` in `ns` (`ss -ti`): its MSS and path MTU, or null. */
export async function tcpPathInfo(lab: Lab, ns: string, peerPort: number): Promise<{ mss: number; pmtu: number } | null> {
  const out = (await lab.exec(ns, sbin("ss"), ["-tinH", "state", "established", `( dport = :${peerPort} )`])).stdout;
  const mss = /\bmss:(\d+)/.exec(out);
  const pmtu = /\bpmtu:(\d+)/.exec(out);
  return mss && pmtu ? { mss: Number(mss[1]), pmtu: Number(pmtu[1]) } : null;
}

/** Forgets the path MTUs `ns` has learned (`ip route flush cache` also flushes the exceptions). */
export async function flushRouteCache(lab: Lab, ns: string): Promise<void> {
  await lab.exec(ns, sbin("ip"), ["route", "flush", "cache"]);
}

/** natlb's JSON log lines so far. */
export function natlbLog(natlb: BalancerProcess): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  for (const line of natlb.output().split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line still being written
    }
  }
  return lines;
}

/** Waits for natlb's log line that marks `realIp` down (health check); returns its time (ms). */
export async function downMarkTime(natlb: BalancerProcess, realIp: string, timeoutMs: number): Promise<number> {
  const line = await waitUntil(
    `natlb to mark ${realIp} down`,
    () => natlbLog(natlb).find((l) => l["msg"] === "real server health changed" && l["up"] === false && String(l["real"]).startsWith(`${realIp}:`)),
    timeoutMs,
    20,
  );
  return Number(line["time"]);
}

/** Waits for natlb's log line that it ends the flows of dead real `realIp` (a removal applied); returns its time (ms). */
export async function endingFlowsTime(natlb: BalancerProcess, realIp: string, timeoutMs: number): Promise<number> {
  const line = await waitUntil(
    `natlb to end the flows of ${realIp}`,
    () => natlbLog(natlb).find((l) => l["msg"] === "ending the flows of a dead real server" && String(l["real"]).startsWith(`${realIp}:`)),
    timeoutMs,
    20,
  );
  return Number(line["time"]);
}

// ---------------------------------------------------------------------------------------------------
// The TCP peers and the UDP talker, seen from the test.

// The TCP peers are the lab's one stream tool (pacedStream.ts); the dead-real tests take them from
// here with the rest of their instruments.
export { startStreamClient, startStreamServer, type StreamClientHandle, type StreamServerHandle } from "./pacedStream";

export interface UdpTalkerHandle {
  readonly tool: ToolProcess;
  replies(): Array<{ seq: number; real: string; from: string; t: number }>;
  sentCount(): number;
  finished(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export function startUdpTalker(lab: Lab, opts: { host: string; port: number; localPort: number; count: number; intervalMs: number }): UdpTalkerHandle {
  const args = [
    "udp-talk", "--host", opts.host, "--port", String(opts.port), "--local-port", String(opts.localPort),
    "--count", String(opts.count), "--interval-ms", String(opts.intervalMs),
  ];
  const tool = launchTool(lab, lab.client.ns, __filename, args, `routerChecks udp-talk(${opts.localPort})`);
  return {
    tool,
    replies: () =>
      tool.events
        .filter((e) => e.event === "reply")
        .map((e) => ({ seq: Number(e["seq"]), real: String(e["real"]), from: String(e["from"]), t: Number(e["t"]) })),
    sentCount: () => tool.events.filter((e) => e.event === "sent").length,
    finished: async (timeoutMs) => {
      await tool.waitForEvent((e) => e.event === "summary", timeoutMs, "the summary");
    },
    stop: async () => {
      await tool.stop();
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The typed API (Balancer) in the gateway's namespace, through test/support/apiDriver.ts.

export interface ApiReply {
  ok: boolean;
  result?: unknown;
  name?: string;
  message?: string;
}

export interface ApiDriver {
  call(command: Record<string, unknown>, timeoutMs?: number): Promise<ApiReply>;
  /** Stops the balancer (op "stop") and ends the driver. */
  close(): Promise<void>;
}

export function startApiDriver(lab: Lab): ApiDriver {
  const child = lab.spawn(lab.gateway.ns, process.execPath, [join(__dirname, "apiDriver.js")], { stdio: ["pipe", "pipe", "pipe"] });
  let buffered = "";
  const waiters: Array<(reply: ApiReply) => void> = [];
  child.stderr?.resume();
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim() !== "") waiters.shift()?.(JSON.parse(line) as ApiReply);
    }
  });
  const call = (command: Record<string, unknown>, timeoutMs = 20_000): Promise<ApiReply> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${JSON.stringify(command)}`)), timeoutMs);
      waiters.push((reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      child.stdin!.write(`${JSON.stringify(command)}\n`);
    });
  return {
    call,
    close: async () => {
      if (child.exitCode === null) await call({ op: "stop" }).catch(() => undefined);
      child.stdin!.end();
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The programs.

const USAGE = "routerChecks udp-talk --host IP --port P --local-port L --count N --interval-ms I";

async function udpTalkMain(a: ToolArgs): Promise<void> {
  const host = a.requiredString("host");
  const port = a.int("port", { min: 1, max: 65535 }, 53);
  const localPort = a.int("local-port", { min: 1024, max: 65535 }, 40000);
  const count = a.int("count", { min: 1, max: 100_000 }, 10);
  const intervalMs = a.int("interval-ms", { min: 1, max: 10_000 }, 100);
  a.rejectUnknown();
  const socket = dgram.createSocket("udp4");
  socket.on("message", (msg, rinfo) => {
    const match = /^(\S+) talk (\d+) /.exec(msg.toString("latin1"));
    emit({ event: "reply", seq: match ? Number(match[2]) : -1, real: match ? match[1] : null, from: `${rinfo.address}:${rinfo.port}`, t: Date.now() });
  });
  socket.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(localPort, () => resolve());
  });
  let seq = 0;
  const timer = setInterval(() => {
    if (seq >= count) {
      clearInterval(timer);
      setTimeout(() => {
        socket.close();
        emitThenExit({ event: "summary", sent: seq }, 0);
      }, 1000);
      return;
    }
    const payload = Buffer.alloc(64, "x");
    payload.write(`talk ${seq} `, "latin1");
    socket.send(payload, port, host);
    emit({ event: "sent", seq, t: Date.now() });
    seq++;
  }, intervalMs);
}

async function main(argv: string[]): Promise<void> {
  const [mode, ...rest] = argv;
  const a = new ToolArgs(rest);
  if (mode === "udp-talk") return udpTalkMain(a);
  throw new UsageError(`the first argument is "udp-talk", got ${JSON.stringify(mode)}`);
}

if (require.main === module) runToolMain("routerChecks", USAGE, main);
