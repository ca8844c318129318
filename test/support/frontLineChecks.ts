// Support for test/e2e-front-line.test.ts: natlb as the first box the internet reaches. A lab with
// the backend rogue host (withNatLab cannot ask for one), crafted frames (blind resets, spoofed
// sources, ARP claims, malformed headers) sent on an AF_PACKET socket from inside a lab namespace,
// and small UDP/TCP endpoints that report which source address reached them.
//
// The sender and the endpoints are one small python3 program (FRONT_LINE_TOOL below), run with
// `python3 -c` in a namespace, so nothing is written to disk. Every mode is bounded in time.
import type { ExecutionContext } from "ava";
import type { BalancerProcess } from "../../lab/balancerProcess";
import type { BlobServerHandle } from "../../lab/blobServer";
import type { Lab } from "../../lab/topology";
import { ToolProcess } from "../../lab/toolProcess";
import type { EngineCounters } from "../../src/native";
import { IPPROTO_TCP, IPPROTO_UDP, transportChecksum } from "./checksum";
import { buildFrame, put16, put32, refreshIpChecksum, toHex, ETH_HEADER_LEN, type FrameSpec } from "./frames";
import { withNatLab } from "./lab";

/** Every lab of the front-line tests carries this prefix. */
export const FRONT_LINE_PREFIX = "fx";

// ---------------------------------------------------------------------------------------------
// The lab.

export interface FrontLineLab {
  lab: Lab;
  /** Blob servers (REAL_PORT), by real index - 1; undefined where none was started. */
  servers: (BlobServerHandle | undefined)[];
  natlb: BalancerProcess;
}

export interface FrontLineLabOptions {
  offloads?: boolean;
  reals?: number;
  /** Adds the rogue host on the backend LAN (198.18.1.99). */
  backendRogue?: boolean;
  /** The reals (1-based) that get a blob server on REAL_PORT. Default: every real. */
  blobReals?: number[];
  config: (lab: Lab) => unknown;
}

/** withNatLab with prefix "fx", optionally the backend rogue, and the blob servers by real index. */
export async function withFrontLineLab(
  t: ExecutionContext,
  options: FrontLineLabOptions,
  body: (env: FrontLineLab) => Promise<void>,
): Promise<void> {
  const blobReals = options.blobReals ?? Array.from({ length: options.reals ?? 3 }, (_, i) => i + 1);
  await withNatLab(
    t,
    {
      offloads: options.offloads ?? true, reals: options.reals ?? 3, prefix: FRONT_LINE_PREFIX,
      backendRogue: options.backendRogue ?? false, blobReals, config: options.config,
    },
    ({ lab, servers, natlb }) => {
      const byReal: (BlobServerHandle | undefined)[] = lab.reals.map((_, i) => servers[blobReals.indexOf(i + 1)]);
      return body({ lab, servers: byReal, natlb: natlb! });
    },
  );
}

/** after - before for the named counters. */
export function counterDelta<K extends keyof EngineCounters>(
  before: EngineCounters, after: EngineCounters, names: readonly K[],
): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const name of names) out[name] = after[name] - before[name];
  return out;
}

// ---------------------------------------------------------------------------------------------
// The python tool: frames on an AF_PACKET socket, UDP/TCP endpoints that report their peers.

const FRONT_LINE_TOOL = String.raw`
import binascii, json, select, socket, sys, time
cmd = json.loads(sys.argv[1])
mode = cmd["mode"]
def out(o):
    sys.stdout.write(json.dumps(o) + "\n")
    sys.stdout.flush()
def serve(s, answer):
    # A server answers until cmd["seconds"] have passed, looking at the clock every 0.2 s.
    out({"event": "listening", "port": cmd["port"]})
    deadline = time.time() + cmd["seconds"]
    while time.time() < deadline:
        r, _, _ = select.select([s], [], [], 0.2)
        if r:
            answer()
if mode == "frames":
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((cmd["ifname"], 0))
    sent = 0
    for h in cmd["frames"]:
        s.send(binascii.unhexlify(h))
        sent += 1
        if cmd.get("gapMs", 0) > 0:
            time.sleep(cmd["gapMs"] / 1000.0)
    out({"event": "sent", "sent": sent})
elif mode == "udp-server":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", cmd["port"]))
    def echo():
        data, (ip, port) = s.recvfrom(65535)
        out({"event": "datagram", "peer": ip, "peerPort": port, "bytes": len(data)})
        s.sendto(("echo " + ip).encode(), (ip, port))
    serve(s, echo)
elif mode == "tcp-server":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", cmd["port"]))
    s.listen(64)
    def hello():
        c, (ip, port) = s.accept()
        out({"event": "accepted", "peer": ip, "peerPort": port})
        try:
            c.sendall(("hello " + ip).encode())
        except OSError:
            pass
        c.close()
    serve(s, hello)
elif mode == "udp-send":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", cmd.get("sport", 0)))
    s.settimeout(cmd["timeoutMs"] / 1000.0)
    sport = s.getsockname()[1]
    s.sendto(b"own traffic", (cmd["host"], cmd["port"]))
    try:
        data, src = s.recvfrom(65535)
        out({"event": "result", "sport": sport, "reply": data.decode(), "from": src[0]})
    except socket.timeout:
        out({"event": "result", "sport": sport, "reply": None, "from": None})
elif mode == "tcp-connect":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if cmd.get("sport", 0):
        s.bind(("0.0.0.0", cmd["sport"]))
    s.settimeout(cmd["timeoutMs"] / 1000.0)
    try:
        s.connect((cmd["host"], cmd["port"]))
        sport = s.getsockname()[1]
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        out({"event": "result", "sport": sport, "connected": True, "reply": data.decode(), "error": None})
    except OSError as e:
        out({"event": "result", "sport": cmd.get("sport", 0), "connected": False, "reply": None, "error": str(e)})
elif mode == "udp-paced":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", cmd.get("sport", 0)))
    start = time.time()
    interval = cmd["intervalMs"] / 1000.0
    end = start + cmd["durationMs"] / 1000.0
    next_send = start
    sent = []
    answered = []
    while True:
        now = time.time()
        if now >= end + 0.5:
            break
        if now >= next_send and now < end:
            s.sendto(b"paced", (cmd["host"], cmd["port"]))
            sent.append(round((now - start) * 1000))
            next_send += interval
        wait = max(0.0, min(next_send if now < end else end + 0.5, end + 0.5) - time.time())
        r, _, _ = select.select([s], [], [], wait)
        if r:
            s.recvfrom(65535)
            answered.append(round((time.time() - start) * 1000))
    out({"event": "result", "sent": sent, "answered": answered})
else:
    sys.stderr.write("unknown mode " + mode + "\n")
    sys.exit(2)
`;

async function runTool(lab: Lab, ns: string, command: Record<string, unknown>, timeoutMs: number): Promise<Record<string, unknown>> {
  const r = await lab.tryExec(ns, "python3", ["-c", FRONT_LINE_TOOL, JSON.stringify(command)], { timeoutMs });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (r.code !== 0 || line === "") throw new Error(`front-line tool ${String(command["mode"])} in ${ns} failed (code ${r.code}): ${r.stderr}`);
  return JSON.parse(line) as Record<string, unknown>;
}

/** Sends the frames, in order, on `ifname` of `ns` (AF_PACKET: exactly these bytes reach the wire). */
export async function sendFrames(lab: Lab, ns: string, frames: readonly Uint8Array[], options: { ifname?: string; gapMs?: number } = {}): Promise<number> {
  const result = await runTool(lab, ns, { mode: "frames", ifname: options.ifname ?? "eth0", frames: frames.map(toHex), gapMs: options.gapMs ?? 0 }, 30_000);
  return Number(result["sent"]);
}

export interface PeerServer {
  readonly tool: ToolProcess;
  /** The peers seen so far ("ip:port"), in arrival order. */
  peers(): { ip: string; port: number }[];
  stop(): Promise<void>;
}

/**
 * A UDP echo ("echo <peer ip>") or a TCP server ("hello <peer ip>", then close) in `ns` that reports
 * every peer: which source address reached it. It exits by itself after `seconds`.
 */
export async function startPeerServer(lab: Lab, ns: string, protocol: "udp" | "tcp", port: number, seconds = 120): Promise<PeerServer> {
  const child = lab.spawn(ns, "python3", ["-u", "-c", FRONT_LINE_TOOL, JSON.stringify({ mode: `${protocol}-server`, port, seconds })]);
  const tool = new ToolProcess(child, `${protocol}PeerServer(${ns}:${port})`);
  await tool.waitUntilListening();
  const event = protocol === "udp" ? "datagram" : "accepted";
  return {
    tool,
    peers: () => tool.events.filter((e) => e.event === event).map((e) => ({ ip: String(e["peer"]), port: Number(e["peerPort"]) })),
    stop: async () => {
      await tool.stop();
    },
  };
}

export interface OwnExchange {
  sport: number;
  /** The server's answer ("echo <ip>" / "hello <ip>"), or null when none came. */
  reply: string | null;
  error?: string | null;
}

/** A UDP datagram from `ns` (from `sport`, 0 = any) to host:port, and the reply within timeoutMs. */
export async function udpExchange(lab: Lab, ns: string, host: string, port: number, sport: number, timeoutMs = 1500): Promise<OwnExchange> {
  const r = await runTool(lab, ns, { mode: "udp-send", host, port, sport, timeoutMs }, timeoutMs + 10_000);
  return { sport: Number(r["sport"]), reply: (r["reply"] as string | null) ?? null };
}

/** A TCP connection from `ns` (from `sport`, 0 = any) to host:port; reads until the server closes. */
export async function tcpExchange(lab: Lab, ns: string, host: string, port: number, sport: number, timeoutMs = 2000): Promise<OwnExchange> {
  const r = await runTool(lab, ns, { mode: "tcp-connect", host, port, sport, timeoutMs }, timeoutMs + 10_000);
  return { sport: Number(r["sport"]), reply: (r["reply"] as string | null) ?? null, error: (r["error"] as string | null) ?? null };
}

/**
 * UDP datagrams from one socket (from `sport`: the same flow every time) to host:port every
 * `intervalMs` for `durationMs`; when each was sent and when each answer came, in ms from the start.
 */
export async function udpPaced(
  lab: Lab, ns: string, host: string, port: number, sport: number, intervalMs: number, durationMs: number,
): Promise<{ sent: number[]; answered: number[] }> {
  const r = await runTool(lab, ns, { mode: "udp-paced", host, port, sport, intervalMs, durationMs }, durationMs + 15_000);
  return { sent: r["sent"] as number[], answered: r["answered"] as number[] };
}

// ---------------------------------------------------------------------------------------------
// Frames.

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

export function macBytes(mac: string): Uint8Array {
  const parts = mac.split(":");
  if (parts.length !== 6) throw new TypeError(`not a MAC address: "${mac}"`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export interface TcpFrameSpec extends FrameSpec {
  seq: number;
  ack?: number;
  /** TCP flags byte (TCP_SYN | TCP_ACK ...). */
  tcpFlags: number;
  window?: number;
}

/** A TCP segment with the given sequence, acknowledgement, flags and window, every checksum right. */
export function tcpFrame(spec: TcpFrameSpec): Uint8Array {
  const f = buildFrame({ ...spec, protocol: IPPROTO_TCP, checksum: "none" });
  const l4 = ETH_HEADER_LEN + (f[ETH_HEADER_LEN]! & 0x0f) * 4;
  put32(f, l4 + 4, spec.seq >>> 0);
  put32(f, l4 + 8, (spec.ack ?? 0) >>> 0);
  f[l4 + 13] = spec.tcpFlags;
  put16(f, l4 + 14, spec.window ?? 0xffff);
  refreshTransportChecksum(f, spec.src, spec.dst);
  return f;
}

/** A UDP datagram, checksums right. */
export function udpFrame(spec: FrameSpec): Uint8Array {
  return buildFrame({ ...spec, protocol: IPPROTO_UDP, checksum: "complete" });
}

/** Recomputes the TCP/UDP checksum in place over what the IP header says the segment is. */
export function refreshTransportChecksum(f: Uint8Array, src: string, dst: string): void {
  const ihl = (f[ETH_HEADER_LEN]! & 0x0f) * 4;
  const protocol = f[ETH_HEADER_LEN + 9]!;
  const total = (f[ETH_HEADER_LEN + 2]! << 8) | f[ETH_HEADER_LEN + 3]!;
  const l4 = ETH_HEADER_LEN + ihl;
  const segment = f.subarray(l4, ETH_HEADER_LEN + total);
  const field = protocol === IPPROTO_TCP ? 16 : 6;
  let value = transportChecksum(src, dst, protocol, segment);
  if (protocol === IPPROTO_UDP && value === 0) value = 0xffff;
  put16(f, l4 + field, value);
  refreshIpChecksum(f);
}

export interface ArpSpec {
  op: "request" | "reply";
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
  /** Ethernet destination; default broadcast. */
  dstMac?: string;
}

/** An Ethernet ARP frame (padded to 60 bytes); the Ethernet source is the sender's MAC. */
export function arpFrame(spec: ArpSpec): Uint8Array {
  const f = new Uint8Array(60);
  f.set(macBytes(spec.dstMac ?? "ff:ff:ff:ff:ff:ff"), 0);
  f.set(macBytes(spec.senderMac), 6);
  put16(f, 12, 0x0806);
  put16(f, 14, 1); // Ethernet
  put16(f, 16, 0x0800); // IPv4
  f[18] = 6;
  f[19] = 4;
  put16(f, 20, spec.op === "request" ? 1 : 2);
  f.set(macBytes(spec.senderMac), 22);
  f.set(spec.senderIp.split(".").map(Number), 28);
  f.set(macBytes(spec.targetMac), 32);
  f.set(spec.targetIp.split(".").map(Number), 38);
  return f;
}

/** A random 32-bit number (a sequence or acknowledgement number a blind attacker guesses). */
export function randomU32(): number {
  return Math.floor(Math.random() * 2 ** 32) >>> 0;
}

/**
 * `count` sequence numbers drawn at random from the whole 32-bit space, as a blind attacker's are,
 * leaving out the band of ±`band` around `avoid` (where a real connection's window could lie), so the
 * test does not depend on a 1-in-a-thousand chance hit.
 */
export function blindSequences(count: number, avoid: number, band = 2 ** 28): number[] {
  const out: number[] = [];
  while (out.length < count) {
    const seq = randomU32();
    const offset = (seq - avoid) | 0; // signed 32-bit distance
    if (Math.abs(offset) > band) out.push(seq);
  }
  return out;
}
