// The frames natlb originates (native/packet): ICMP errors as a router, resets for the ends of a dead
// real's connections, and the control frames of the reply claims. Every checksum is checked from
// scratch by the independent reference code in ./support/checksum.

import test from "ava";
import { loadNative } from "../src/native";
import { IPPROTO_TCP, internetChecksum, ipv4HeaderChecksum, ipv4Text, transportVerifies } from "./support/checksum";
import { buildFrame } from "./support/frames";

const packet = loadNative().packet;
const L3 = 14;
const u16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;
const u32 = (b: Uint8Array, at: number) => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

test("fragmentation needed: back to the sender, from the given address, with the MTU, quoting the header and 8 bytes", (t) => {
  const original = buildFrame({
    src: "198.18.0.2", dst: "198.18.0.100", protocol: 17, sport: 40000, dport: 53, flags: 0b010, ttl: 63,
    payload: new Uint8Array(1472).fill(0x61), checksum: "complete",
  });
  const error = packet.icmpError(original, { type: 3, code: 4, nextHopMtu: 1400, source: "198.18.0.1" })!;
  t.truthy(error);
  t.is(u16(error, 12), 0x0800);
  t.is(ipv4Text(error, L3 + 12), "198.18.0.1");
  t.is(ipv4Text(error, L3 + 16), "198.18.0.2");
  t.is(error[L3 + 9], 1);
  t.is(error[L3 + 8], 64, "a fresh TTL");
  t.is(u16(error, L3 + 10), ipv4HeaderChecksum(error, L3, 20));
  t.is(u16(error, L3 + 2), 20 + 8 + 20 + 8, "IP header + ICMP header + quoted header + 8 bytes");
  const icmp = error.subarray(L3 + 20);
  t.deepEqual([icmp[0], icmp[1], u16(icmp, 6)], [3, 4, 1400]);
  t.is(internetChecksum(icmp), 0, "the ICMP checksum verifies");
  t.deepEqual(icmp.subarray(8, 8 + 28), original.subarray(L3, L3 + 28), "the original header and its first 8 bytes");
});

test("time exceeded quotes the packet as it arrived; no error about an ICMP error, but one about an echo", (t) => {
  const original = buildFrame({ src: "198.18.0.2", dst: "198.18.0.100", sport: 1, dport: 80, ttl: 1, checksum: "complete" });
  const error = packet.icmpError(original, { type: 11, code: 0, nextHopMtu: 0, source: "198.18.0.1" })!;
  t.deepEqual([error[L3 + 20], error[L3 + 21]], [11, 0]);
  t.is(error[L3 + 20 + 8 + 8], 1, "the quoted TTL is the original's");
  const icmpError = buildFrame({ src: "198.18.1.11", dst: "198.18.0.2", protocol: 1, payload: Uint8Array.of(3, 3, 0, 0, 0, 0, 0, 0) });
  t.is(packet.icmpError(icmpError, { type: 11, code: 0, nextHopMtu: 0, source: "198.18.0.1" }), null);
  const echo = buildFrame({ src: "198.18.0.2", dst: "198.18.0.100", protocol: 1, ttl: 1, payload: Uint8Array.of(8, 0, 0, 0, 0, 1, 0, 1) });
  t.truthy(packet.icmpError(echo, { type: 11, code: 0, nextHopMtu: 0, source: "198.18.0.1" }));
  t.is(packet.icmpError(new Uint8Array(20), { type: 11, code: 0, nextHopMtu: 0, source: "198.18.0.1" }), null, "no IPv4 header to quote");
});

test("a reset carries exactly the sequence number its receiver expects, with valid checksums", (t) => {
  const frame = packet.tcpReset({ sourceIp: "198.18.0.100", sourcePort: 80, destinationIp: "198.18.0.2", destinationPort: 40000, sequence: 0xfffffff0 });
  t.is(frame.length, 54);
  t.is(u16(frame, L3 + 10), ipv4HeaderChecksum(frame, L3, 20));
  const tcp = frame.subarray(L3 + 20);
  t.deepEqual([u16(tcp, 0), u16(tcp, 2), u32(tcp, 4), tcp[13]], [80, 40000, 0xfffffff0, 0x04]);
  t.true(transportVerifies("198.18.0.100", "198.18.0.2", IPPROTO_TCP, tcp));
});

test("a claim's control frame: the request's tuple, addressed to the sender itself, TTL 1, a wrong IP checksum", (t) => {
  const mac = "02:aa:bb:cc:dd:ee";
  const tcp = packet.claimSignal(mac, { protocol: "tcp", realIp: "198.18.1.11", realPort: 8080, clientIp: "198.18.0.2", clientPort: 40000 });
  const macBytes = Uint8Array.of(0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee);
  t.deepEqual(tcp.subarray(0, 6), macBytes);
  t.deepEqual(tcp.subarray(6, 12), macBytes);
  t.is(ipv4Text(tcp, L3 + 12), "198.18.0.2");
  t.is(ipv4Text(tcp, L3 + 16), "198.18.1.11");
  t.deepEqual([u16(tcp, L3 + 20), u16(tcp, L3 + 22)], [40000, 8080]);
  t.is(tcp[L3 + 8], 1);
  t.not(u16(tcp, L3 + 10), ipv4HeaderChecksum(tcp, L3, 20), "any receiver drops it");
  t.is(tcp[L3 + 20 + 13], 0, "no TCP flag: a receiver would drop it too");
  const udp = packet.claimSignal(mac, { protocol: "udp", realIp: "198.18.1.12", realPort: 5353, clientIp: "198.18.0.3", clientPort: 5000 });
  t.is(udp[L3 + 9], 17);
  t.is(u16(udp, L3 + 2), 28);
  t.deepEqual([u16(udp, L3 + 20), u16(udp, L3 + 22)], [5000, 5353]);
});
