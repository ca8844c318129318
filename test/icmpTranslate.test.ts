// ICMP errors about NAT flows, translated by the pure packet function the workers use; every field
// and checksum checked from scratch.
import test from "ava";
import { loadNative } from "../src/native";
import { internetChecksum, ipv4Bytes, ipv4HeaderChecksum, ipv4Text, transportChecksum } from "./support/checksum";
import { buildFrame, get16 } from "./support/frames";

const packet = loadNative().packet;
const ETH = 14;
const IP = 20;

/** An ICMP error frame (outer src -> dst) quoting the first `quoteBytes` of `quotedFrame`'s IP packet. */
function icmpError(src: string, dst: string, type: number, code: number, quotedFrame: Uint8Array, quoteBytes: number): Uint8Array {
  const quote = quotedFrame.subarray(ETH, ETH + quoteBytes);
  const frame = buildFrame({ src, dst, protocol: 1, payload: new Uint8Array(8 + quote.length), ttl: 60 });
  const icmp = ETH + IP;
  frame[icmp] = type;
  frame[icmp + 1] = code;
  frame.set(quote, icmp + 8);
  frame[icmp + 2] = 0;
  frame[icmp + 3] = 0;
  const sum = internetChecksum(frame, icmp, frame.length);
  frame[icmp + 2] = sum >> 8;
  frame[icmp + 3] = sum & 0xff;
  return frame;
}

function verifyChecksums(t: import("ava").ExecutionContext, frame: Uint8Array) {
  t.is(get16(frame, ETH + 10), ipv4HeaderChecksum(frame, ETH, IP), "outer IP checksum");
  t.is(internetChecksum(frame, ETH + IP, frame.length), 0, "ICMP checksum");
  const inner = ETH + IP + 8;
  t.is(get16(frame, inner + 10), ipv4HeaderChecksum(frame, inner, IP), "quoted IP checksum");
}

test("an error from the client's path about VIP:vport -> client is sent to the real, quoting RIP:rport", (t) => {
  const reply = buildFrame({ src: "198.18.0.100", dst: "198.18.0.2", protocol: 17, sport: 53, dport: 40000, payload: new Uint8Array(100), checksum: "complete" });
  const frame = icmpError("198.18.0.254", "198.18.0.100", 3, 4, reply, IP + 108);
  const result = packet.translateIcmpError(frame, { outerDestination: "198.18.1.11", side: "source", ip: "198.18.1.11", port: 5353 });
  t.true(result.ok);
  t.is(ipv4Text(frame, ETH + 16), "198.18.1.11");
  t.is(ipv4Text(frame, ETH + 12), "198.18.0.254", "the router's address stays");
  t.is(frame[ETH + 8], 59, "TTL decremented");
  const inner = ETH + IP + 8;
  t.is(ipv4Text(frame, inner + 12), "198.18.1.11");
  t.is(get16(frame, inner + IP), 5353);
  t.is(ipv4Text(frame, inner + 16), "198.18.0.2", "the client side of the quote stays");
  const quotedUdp = frame.slice(inner + IP, inner + IP + 108);
  const field = get16(quotedUdp, 6);
  quotedUdp[6] = 0;
  quotedUdp[7] = 0;
  t.is(field, transportChecksum("198.18.1.11", "198.18.0.2", 17, quotedUdp), "the quoted UDP checksum matches the RIP-side packet");
  verifyChecksums(t, frame);
});

test("an error the real sends about client -> RIP:rport reaches the client from VIP, quoting VIP:vport", (t) => {
  const request = buildFrame({ src: "198.18.0.2", dst: "198.18.1.11", protocol: 6, sport: 40000, dport: 8080, payload: new Uint8Array(32), checksum: "complete" });
  const frame = icmpError("198.18.1.11", "198.18.0.2", 3, 3, request, IP + 8);
  const result = packet.translateIcmpError(frame, { outerSource: "198.18.0.100", side: "destination", ip: "198.18.0.100", port: 80 });
  t.true(result.ok);
  t.is(ipv4Text(frame, ETH + 12), "198.18.0.100");
  t.is(ipv4Text(frame, ETH + 16), "198.18.0.2");
  const inner = ETH + IP + 8;
  t.is(ipv4Text(frame, inner + 16), "198.18.0.100");
  t.is(get16(frame, inner + IP + 2), 80);
  t.is(get16(frame, inner + IP), 40000, "the client's port stays");
  verifyChecksums(t, frame);
  t.deepEqual([...frame.subarray(inner + 12, inner + 16)], [...ipv4Bytes("198.18.0.2")]);
});

test("malformed and non-error ICMP is refused without a change", (t) => {
  const request = buildFrame({ src: "198.18.0.2", dst: "198.18.1.11", protocol: 6, sport: 40000, dport: 8080, payload: new Uint8Array(8) });
  const echo = icmpError("198.18.0.2", "198.18.0.100", 8, 0, request, IP + 8);
  const before = echo.slice();
  t.false(packet.translateIcmpError(echo, { side: "source", ip: "198.18.1.11", port: 1 }).ok);
  t.deepEqual(echo, before);
  const short = icmpError("198.18.1.11", "198.18.0.2", 3, 3, request, IP + 4);
  t.false(packet.translateIcmpError(short, { side: "destination", ip: "198.18.0.100", port: 80 }).ok, "a quote without ports");
});
