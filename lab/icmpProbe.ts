// ICMP probes sent with raw-socket from inside a lab namespace (the test instrument for natlb's ICMP
// handling): echo requests to an address, and a crafted "fragmentation needed" error that quotes a
// UDP packet, as a router on the client's path would send it.
//   node dist/lab/icmpProbe.js echo --to IP [--count N] [--timeout-ms T]
//   node dist/lab/icmpProbe.js frag-needed --to IP --quote SRC:SPORT-DST:DPORT [--mtu 1400]
// Prints one JSON line: {"sent":n,"received":n,"from":[ips]} (echo) or {"sent":1} (frag-needed).
import raw from "raw-socket";
import type { Lab } from "./topology";

function checksum(bytes: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += bytes.readUInt16BE(i);
  if (bytes.length % 2) sum += bytes[bytes.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ipBytes(ip: string): Buffer {
  return Buffer.from(ip.split(".").map(Number));
}

/** An IPv4 + UDP header (8 bytes of UDP) as the balancer would have sent it to the client. */
function quotedUdp(source: string, sourcePort: number, destination: string, destinationPort: number): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(1500, 2);
  ip[8] = 63;
  ip[9] = 17;
  ipBytes(source).copy(ip, 12);
  ipBytes(destination).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sourcePort, 0);
  udp.writeUInt16BE(destinationPort, 2);
  udp.writeUInt16BE(1480, 4);
  return Buffer.concat([ip, udp]);
}

function icmpMessage(type: number, code: number, rest: Buffer, body: Buffer): Buffer {
  const message = Buffer.concat([Buffer.from([type, code, 0, 0]), rest, body]);
  message.writeUInt16BE(checksum(message), 2);
  return message;
}

async function main(argv: string[]): Promise<void> {
  const [mode, ...rest] = argv;
  const option = (name: string, fallback?: string) => {
    const index = rest.indexOf(`--${name}`);
    const value = index >= 0 ? rest[index + 1] : fallback;
    if (value === undefined) throw new Error(`icmpProbe: --${name} is required`);
    return value;
  };
  const to = option("to");
  const socket = raw.createSocket({ protocol: raw.Protocol.ICMP });
  const send = (message: Buffer) =>
    new Promise<void>((resolve, reject) => socket.send(message, 0, message.length, to, (error) => (error ? reject(error) : resolve())));
  if (mode === "echo") {
    const count = Number(option("count", "3"));
    const timeoutMs = Number(option("timeout-ms", "1000"));
    const from: string[] = [];
    socket.on("message", (buffer: Buffer, source: string) => {
      const headerLength = (buffer[0]! & 0x0f) * 4;
      if (buffer[headerLength] === 0 && buffer.readUInt16BE(headerLength + 4) === 0x4e4c) from.push(source);
    });
    for (let seq = 0; seq < count; seq++) {
      const rest4 = Buffer.alloc(4);
      rest4.writeUInt16BE(0x4e4c, 0); // identifier "NL"
      rest4.writeUInt16BE(seq, 2);
      await send(icmpMessage(8, 0, rest4, Buffer.from("natlb-probe")));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, timeoutMs));
    console.log(JSON.stringify({ sent: count, received: from.length, from }));
  } else if (mode === "frag-needed") {
    const match = /^([\d.]+):(\d+)-([\d.]+):(\d+)$/.exec(option("quote"));
    if (!match) throw new Error("icmpProbe: --quote is SRC:SPORT-DST:DPORT");
    const mtu = Buffer.alloc(4);
    mtu.writeUInt16BE(Number(option("mtu", "1400")), 2);
    await send(icmpMessage(3, 4, mtu, quotedUdp(match[1]!, Number(match[2]), match[3]!, Number(match[4]))));
    console.log(JSON.stringify({ sent: 1 }));
  } else {
    throw new Error("icmpProbe: mode is echo or frag-needed");
  }
  socket.close();
}

export async function pingFrom(lab: Lab, ns: string, to: string, count = 3): Promise<{ sent: number; received: number; from: string[] }> {
  const result = await lab.exec(ns, process.execPath, [__filename, "echo", "--to", to, "--count", String(count)], { timeoutMs: 20_000 });
  return JSON.parse(result.stdout.trim().split("\n").pop()!) as { sent: number; received: number; from: string[] };
}

export async function sendFragmentationNeeded(lab: Lab, ns: string, to: string, quote: string, mtu = 1400): Promise<void> {
  await lab.exec(ns, process.execPath, [__filename, "frag-needed", "--to", to, "--quote", quote, "--mtu", String(mtu)], { timeoutMs: 20_000 });
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error((error as Error).message);
    process.exit(2);
  });
}
