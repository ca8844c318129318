// natlb's TCP tracking (native/flow/tcp_window.h), the pure functions the workers run on every segment
// of a flow: what a side's sequence end and window become, and which segments may change a flow's
// state. A blind attacker guessing sequence numbers must fail; the connection's own segments must pass.

import test from "ava";
import { loadNative, type TcpSegmentFields, type TcpSide } from "../src/native";
import { buildFrame } from "./support/frames";
import { SeededRandom } from "./support/random";

const packet = loadNative().packet;
const FIN = 0x01, SYN = 0x02, RST = 0x04, ACK = 0x10;
const NONE = 255;

const unseen: TcpSide = { sequenceEnd: 0, windowBytes: 0, windowScale: NONE, seen: false };
const segment = (fields: Partial<TcpSegmentFields>): TcpSegmentFields => ({
  sequence: 0, acknowledgement: 0, window: 0, flags: ACK, payloadLength: 0, windowScale: NONE, ...fields,
});

/** A handshake as natlb sees it: the client's SYN (scale 7), the real's SYN-ACK (scale 9), the client's ACK. */
function handshake() {
  let client = packet.afterTcpSegment(unseen, unseen, segment({ sequence: 1000, flags: SYN, window: 64240, windowScale: 7 }));
  let real = packet.afterTcpSegment(unseen, client, segment({ sequence: 5000, acknowledgement: 1001, flags: SYN | ACK, window: 65160, windowScale: 9 }));
  client = packet.afterTcpSegment(client, real, segment({ sequence: 1001, acknowledgement: 5001, window: 502 }));
  return { client, real };
}

test("a SYN counts one, records its window unscaled and its shift; later windows are scaled when both sides offered one", (t) => {
  const { client, real } = handshake();
  t.deepEqual(real, { sequenceEnd: 5001, windowBytes: 65160, windowScale: 9, seen: true });
  t.is(client.sequenceEnd, 1001);
  t.is(client.windowBytes, 502 << 7, "the ACK's window, scaled by the client's shift: larger than its SYN's 64240");
  t.is(packet.afterTcpSegment(client, real, segment({ sequence: 1001, window: 1000 })).windowBytes, 1000 << 7);
  t.is(packet.afterTcpSegment(client, real, segment({ sequence: 1001, window: 10 })).windowBytes, 502 << 7, "the largest stays");
  // No scaling when the other side offered none: 4000 unscaled is less than what was seen.
  const plainReal = { ...real, windowScale: NONE };
  const fresh = { ...client, windowBytes: 0 };
  t.is(packet.afterTcpSegment(fresh, plainReal, segment({ sequence: 1001, window: 4000 })).windowBytes, 4000);
});

test("data and FIN move the sequence end forward, never back; sequence numbers wrap", (t) => {
  const { client, real } = handshake();
  const afterData = packet.afterTcpSegment(client, real, segment({ sequence: 1001, payloadLength: 1448 }));
  t.is(afterData.sequenceEnd, 2449);
  t.is(packet.afterTcpSegment(afterData, real, segment({ sequence: 1001, payloadLength: 100 })).sequenceEnd, 2449, "a retransmission");
  t.is(packet.afterTcpSegment(afterData, real, segment({ sequence: 2449, flags: FIN | ACK })).sequenceEnd, 2450, "FIN counts one");
  const nearWrap = { ...afterData, sequenceEnd: 0xfffffff0 };
  t.is(packet.afterTcpSegment(nearWrap, real, segment({ sequence: 0xfffffff0, payloadLength: 0x20 })).sequenceEnd, 0x10);
});

test("the connection's own RST and FIN act; an in-window inexact RST is only passed on", (t) => {
  const { client, real } = handshake();
  t.is(packet.judgeTcpSegment(client, real, segment({ sequence: client.sequenceEnd, flags: RST })), "track", "exact: closes");
  t.is(packet.judgeTcpSegment(client, real, segment({ sequence: client.sequenceEnd + 100, flags: RST })), "passOnly");
  t.is(packet.judgeTcpSegment(client, real, segment({ sequence: client.sequenceEnd - 100, flags: RST | ACK })), "passOnly");
  t.is(packet.judgeTcpSegment(client, real, segment({ sequence: client.sequenceEnd, flags: FIN | ACK })), "track");
  t.is(packet.judgeTcpSegment(real, client, segment({ sequence: real.sequenceEnd - 1000, flags: FIN | ACK, payloadLength: 1000 })), "track");
});

test("a blind attacker's RSTs and FINs with random sequence numbers are out of the window", (t) => {
  const { client, real } = handshake();
  const random = new SeededRandom(20261202);
  let outside = 0;
  const tries = 10_000;
  for (let i = 0; i < tries; i++) {
    const sequence = random.int(0, 0xffffffff);
    const flags = i % 2 === 0 ? RST : FIN | ACK;
    if (packet.judgeTcpSegment(client, real, segment({ sequence, flags })) === "outOfWindow") outside += 1;
  }
  // The window is the real's 65160 bytes on either side: 2 * 65160 / 2^32 = 0.003 % of guesses fit.
  t.true(outside >= tries - 5, `${tries - outside} of ${tries} random guesses fit`);
});

test("segments outside the window never move the tracking: they are passed on untracked", (t) => {
  const { client, real } = handshake();
  const far = segment({ sequence: (client.sequenceEnd + 0x40000000) >>> 0, payloadLength: 1000 });
  t.is(packet.judgeTcpSegment(client, real, far), "passOnly");
  const spoofedSyn = segment({ sequence: (client.sequenceEnd + 0x7000000) >>> 0, flags: SYN });
  t.is(packet.judgeTcpSegment(client, real, spoofedSyn), "passOnly", "a SYN on an established flow with a guessed sequence");
});

test("before the real has sent anything it may only refuse the client's SYN, acknowledging it exactly", (t) => {
  const client = packet.afterTcpSegment(unseen, unseen, segment({ sequence: 1000, flags: SYN, window: 64240 }));
  t.is(packet.judgeTcpSegment(unseen, client, segment({ flags: RST | ACK, acknowledgement: 1001 })), "track");
  t.is(packet.judgeTcpSegment(unseen, client, segment({ flags: RST | ACK, acknowledgement: 1002 })), "outOfWindow");
  t.is(packet.judgeTcpSegment(unseen, client, segment({ flags: RST, acknowledgement: 1001 })), "outOfWindow", "RST without ACK");
  t.is(packet.judgeTcpSegment(unseen, client, segment({ flags: FIN | ACK })), "outOfWindow");
  t.is(packet.judgeTcpSegment(unseen, client, segment({ flags: SYN | ACK, sequence: 77 })), "track", "its SYN-ACK");
  t.is(packet.judgeTcpSegment(unseen, client, segment({ flags: ACK, sequence: 77 })), "passOnly", "data before its SYN-ACK");
});

test("a TIME_WAIT's bare ACK to the client's SYN: only the client's RST carrying its acknowledgement passes outside the window", (t) => {
  const client = packet.afterTcpSegment(unseen, unseen, segment({ sequence: 1000, flags: SYN, window: 64240 }));
  // The real's TIME_WAIT took the SYN as old and answers with its last connection's ACK: far from 1001.
  const staleAck = segment({ sequence: 0x9000, acknowledgement: 0x80001234, window: 502 });
  t.is(packet.judgeTcpSegment(unseen, client, staleAck), "passOnly", "forwarded, untracked");
  const real = packet.afterUntrackedTcpSegment(unseen, staleAck);
  t.deepEqual(real, { ...unseen, strayAcknowledgement: 0x80001234 }, "the real is still unseen; the ACK's acknowledgement is kept");
  // RFC 793: the client in SYN_SENT resets with seq = that acknowledgement (no ACK flag). Passed on, it
  // ends the TIME_WAIT, but neither closes the flow nor moves the client's tracking: the client is
  // still in SYN_SENT, and its retransmitted SYN must go on in this flow (same real, same local port).
  const clientReset = segment({ sequence: 0x80001234, flags: RST });
  t.is(packet.judgeTcpSegment(client, real, clientReset), "passOnly");
  t.deepEqual(packet.afterUntrackedTcpSegment(client, clientReset), client, "the client's sequence end stays its SYN's");
  const retransmittedSyn = segment({ sequence: 1000, flags: SYN, window: 64240 });
  t.is(packet.judgeTcpSegment(client, real, retransmittedSyn), "track", "the retransmitted SYN continues the flow");
  t.deepEqual(packet.afterTcpSegment(client, real, retransmittedSyn), client);
  const synAck = segment({ sequence: 5000, acknowledgement: 1001, flags: SYN | ACK, window: 65160 });
  t.is(packet.judgeTcpSegment(real, client, synAck), "track", "and the real's SYN-ACK to it");
  t.is(packet.judgeTcpSegment(client, real, segment({ sequence: 0x80001235, flags: RST })), "outOfWindow", "one off");
  t.is(packet.judgeTcpSegment(client, unseen, segment({ sequence: 0x80001234, flags: RST })), "outOfWindow", "no bare ACK seen");
  t.is(packet.judgeTcpSegment(client, real, segment({ sequence: 0x80001234, flags: FIN | ACK })), "outOfWindow", "a FIN gets no such pass");
  // Only a bare ACK of a side not seen yet is kept.
  for (const flags of [SYN | ACK, RST | ACK, FIN | ACK, RST]) {
    t.is(packet.afterUntrackedTcpSegment(unseen, segment({ acknowledgement: 7, flags })).strayAcknowledgement, undefined);
  }
  const established = packet.afterTcpSegment(real, client, segment({ sequence: 5000, acknowledgement: 1001, flags: SYN | ACK, window: 65160 }));
  t.is(packet.afterUntrackedTcpSegment(established, staleAck).strayAcknowledgement, 0x80001234, "nothing new is kept once seen");
  t.is(packet.afterUntrackedTcpSegment({ ...established, strayAcknowledgement: undefined }, staleAck).strayAcknowledgement, undefined);
  // Once the real has answered with its SYN-ACK, a RST needs the window again.
  t.is(packet.judgeTcpSegment(client, established, segment({ sequence: 0x80001234, flags: RST })), "outOfWindow");
  t.is(packet.judgeTcpSegment(client, established, segment({ sequence: 1001, flags: RST })), "track");
});

test("readTcpHeader reads the window-scale option of a SYN, ignores it elsewhere, and refuses a header that does not fit", (t) => {
  const options = Uint8Array.of(0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07); // MSS 1460, NOP, WS 7
  const syn = buildFrame({ src: "198.18.0.2", dst: "198.18.0.100", sport: 40000, dport: 80, tcpOptions: options, checksum: "complete" });
  syn[14 + 20 + 13] = SYN;
  const fields = packet.readTcpHeader(syn);
  t.like(fields, { ok: true, flags: SYN, windowScale: 7, payloadLength: 0 });
  const ack = syn.slice();
  ack[14 + 20 + 13] = ACK;
  t.like(packet.readTcpHeader(ack), { ok: true, windowScale: NONE });
  const huge = Uint8Array.of(0x01, 0x03, 0x03, 0x2f); // WS 47: at most 14 counts (RFC 7323)
  const big = buildFrame({ src: "198.18.0.2", dst: "198.18.0.100", tcpOptions: huge, checksum: "complete" });
  big[14 + 20 + 13] = SYN;
  t.like(packet.readTcpHeader(big), { ok: true, windowScale: 14 });
  const bad = syn.slice();
  bad[14 + 20 + 12] = 0xf0; // data offset 60 bytes, past the segment
  t.like(packet.readTcpHeader(bad), { ok: false });
  bad[14 + 20 + 12] = 0x40; // data offset 16 bytes: below the minimum
  t.like(packet.readTcpHeader(bad), { ok: false });
});

// A flow whose handshake was not seen here (flags::kMidStreamStart): picked up mid-stream behind ECMP
// (its connection began on another instance) or synced from a peer. Each side's tracking starts at its
// first segment, a FIN included; a RST is passed on untracked. Without the flag, the same segments of an
// unseen side are not tracked and a FIN is dropped.
test("mid-stream start: each side's first segment starts its tracking (a FIN too); a RST passes untracked; later segments are judged as usual", (t) => {
  const data = segment({ sequence: 700_000, acknowledgement: 9_000, window: 502, payloadLength: 1448 });
  const midStream = { midStreamStart: true };
  t.is(packet.judgeTcpSegment(unseen, unseen, data, midStream), "track");
  t.is(packet.judgeTcpSegment(unseen, unseen, segment({ sequence: 700_000, flags: FIN | ACK }), midStream), "track");
  t.is(packet.judgeTcpSegment(unseen, unseen, segment({ sequence: 700_000, flags: RST }), midStream), "passOnly");
  t.is(packet.judgeTcpSegment(unseen, unseen, data), "passOnly", "an unseen side of an ordinary flow is not tracked");
  t.is(packet.judgeTcpSegment(unseen, unseen, segment({ sequence: 700_000, flags: FIN | ACK })), "outOfWindow");

  // From the first segment on, the side is tracked: its next segments fit, a blind RST far away does not.
  const client = packet.afterTcpSegment(unseen, unseen, data);
  t.deepEqual(client, { sequenceEnd: 701_448, windowBytes: 502, windowScale: NONE, seen: true });
  const real = packet.afterTcpSegment(unseen, client, segment({ sequence: 9_000, acknowledgement: 701_448, window: 30_000, payloadLength: 0 }));
  t.is(packet.judgeTcpSegment(client, real, segment({ sequence: 701_448, acknowledgement: 9_000, payloadLength: 1448 })), "track");
  t.is(packet.judgeTcpSegment(client, real, segment({ sequence: 701_448, flags: FIN | ACK })), "track");
  t.is(packet.judgeTcpSegment(client, real, segment({ sequence: 701_448 + 0x4000_0000, flags: RST })), "outOfWindow");
});

test("mid-stream start: a side's first segment starts its tracking, whatever it is; a first RST only passes; a seen side is judged as usual", (t) => {
  const midStream = { midStreamStart: true };
  // Mid-stream data, a FIN and an ACK from a side never seen: tracked (a flow created here would only pass them, or drop the FIN).
  for (const flags of [ACK, FIN | ACK, ACK | 0x08]) {
    const first = segment({ sequence: 123456789, acknowledgement: 987654321, flags, payloadLength: 1448, window: 500 });
    t.is(packet.judgeTcpSegment(unseen, unseen, first, midStream), "track", `flags ${flags}`);
    t.not(packet.judgeTcpSegment(unseen, unseen, first), "track", `flags ${flags}, without the flag`);
  }
  t.is(packet.judgeTcpSegment(unseen, unseen, segment({ sequence: 42, flags: RST })), "outOfWindow");
  t.is(packet.judgeTcpSegment(unseen, unseen, segment({ sequence: 42, flags: RST }), midStream), "passOnly", "the flow stays; the endpoint judges the RST");
  // Once a side is seen, the checks are the usual ones: a blind RST far from its sequence end is dropped.
  const side = packet.afterTcpSegment(unseen, unseen, segment({ sequence: 123456789, payloadLength: 1448, window: 500 }));
  t.deepEqual(side, { sequenceEnd: 123456789 + 1448, windowBytes: 500, windowScale: NONE, seen: true });
  t.is(packet.judgeTcpSegment(side, unseen, segment({ sequence: 123456789 + 1448 + 1_000_000, flags: RST }), midStream), "outOfWindow");
  t.is(packet.judgeTcpSegment(side, unseen, segment({ sequence: 123456789 + 1448, flags: RST }), midStream), "track");
});

test("direct routing: the client's segments alone give both resets' sequence numbers, its next sequence number and its latest acknowledgement", (t) => {
  // The client's side of a DR flow: SYN, the ACK of the real's SYN-ACK (never seen here), data, more ACKs.
  let client = unseen;
  let real = unseen;
  const step = (fields: Partial<TcpSegmentFields>) => ({ client, real } = packet.clientOnlyTcpSegment(client, real, segment(fields)));
  step({ sequence: 0xffff_fff0, flags: SYN, window: 64240, windowScale: 7 });
  t.deepEqual(client, { sequenceEnd: 0xffff_fff1, windowBytes: 0, windowScale: NONE, seen: true }, "the SYN counts one; no window is tracked");
  t.false(real.seen, "a SYN acknowledges nothing: no reset to the client yet");
  step({ sequence: 0xffff_fff1, acknowledgement: 5001, window: 502 });
  t.deepEqual([client.sequenceEnd, real.sequenceEnd, real.seen], [0xffff_fff1, 5001, true]);
  // 100 bytes of request, wrapping the client's sequence numbers; the real's answer is acknowledged.
  step({ sequence: 0xffff_fff1, acknowledgement: 5001, payloadLength: 100, flags: ACK | 0x08 });
  step({ sequence: 0x55, acknowledgement: 5001 + 70_000 });
  t.deepEqual([client.sequenceEnd, real.sequenceEnd], [0x55, 5001 + 70_000]);
  // A reordered older ACK moves neither number back.
  step({ sequence: (0x55 - 100) >>> 0, acknowledgement: 5001 + 1448 });
  t.deepEqual([client.sequenceEnd, real.sequenceEnd], [0x55, 5001 + 70_000], "never back");
  // A segment without ACK, and a RST (its acknowledgement means nothing), leave the acknowledgement alone.
  step({ sequence: 0x55, acknowledgement: 9, flags: RST });
  step({ sequence: 0x55, acknowledgement: 9, flags: 0 });
  t.is(real.sequenceEnd, 5001 + 70_000);
  // The resets natlb then sends (native/engine/engine.cc): to the client from the VIP with its latest
  // acknowledgement, to the real from the client with the client's next sequence number.
  const toClient = packet.tcpReset({ sourceIp: "198.18.0.100", sourcePort: 80, destinationIp: "198.18.0.2", destinationPort: 40000, sequence: real.sequenceEnd });
  const toReal = packet.tcpReset({ sourceIp: "198.18.0.2", sourcePort: 40000, destinationIp: "198.18.0.100", destinationPort: 80, sequence: client.sequenceEnd });
  const seqOf = (frame: Uint8Array) => new DataView(frame.buffer, frame.byteOffset).getUint32(14 + 20 + 4);
  t.deepEqual([seqOf(toClient), seqOf(toReal)], [5001 + 70_000, 0x55]);
});
