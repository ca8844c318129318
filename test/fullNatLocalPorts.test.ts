// Full NAT's local ports (native/flow/local_ports.h, FlowTable::insert), driven without an engine: one
// port per live flow per (local address, real, protocol), the next address when one is full, a counted
// refusal when all are, the port free again with its flow, the reply index keyed by the rewritten tuple,
// and ports handed out in turn, so a freed one (in TIME_WAIT at the real) comes back as late as possible.
import test from "ava";
import { FlowMap } from "../src/flows/flowMap";
import { loadNative, type NativeFloodProtection } from "../src/native";

const native = loadNative();
const DEFENCES: NativeFloodProtection = { halfOpenSharePermille: 1000, udpSharePermille: 1000, pressureAtPermille: 1000, pressureTimeoutSeconds: 5 };

function table(capacity = 4096) {
  const map = new FlowMap(capacity);
  const flows = new native.FlowTableForTests(map.bytes);
  flows.setFloodProtection(DEFENCES);
  let clientPort = 1;
  const add = (pool: { localAddresses: string[]; firstPort: number; lastPort: number }, start: number, realIp = "198.18.1.11", protocol: "tcp" | "udp" = "tcp") =>
    flows.insertFullNat({ protocol, clientIp: "198.19.0.1", clientPort: clientPort++, vip: "198.18.0.100", vport: 80, realIp, realPort: 8080 }, 1000, pool, start);
  return { flows, add };
}

test("each live flow gets its own local port; a full address passes to the next; all full is refused, not shared", (t) => {
  const { flows, add } = table();
  const pool = { localAddresses: ["198.18.1.2", "198.18.1.3"], firstPort: 2000, lastPort: 2009 };
  const taken = new Set<string>();
  for (let i = 0; i < 20; i++) {
    // The same start every time: the allocator must walk past the ports live flows hold.
    const flow = add(pool, 0);
    t.not(flow.ref, 0, `flow ${i} refused: ${JSON.stringify(flow)}`);
    t.true(flow.localPort! >= 2000 && flow.localPort! <= 2009, `port ${flow.localPort}`);
    const tuple = `${flow.localIp}:${flow.localPort}`;
    t.false(taken.has(tuple), `${tuple} given twice`);
    taken.add(tuple);
    t.is(flows.findReverse({ protocol: "tcp", realIp: "198.18.1.11", realPort: 8080, ip: flow.localIp!, port: flow.localPort! }), flow.ref);
  }
  t.deepEqual(new Set([...taken].map((x) => x.split(":")[0])), new Set(pool.localAddresses), "both addresses used");
  const refused = add(pool, 7);
  t.deepEqual(refused, { ref: 0, refused: "localPortsExhausted" });
  // Another real (or protocol) has ports of its own on the same addresses.
  t.not(add(pool, 0, "198.18.1.12").ref, 0);
  t.not(add(pool, 0, "198.18.1.11", "udp").ref, 0);
});

test("a removed flow's port is free again, and its reply tuple gone", (t) => {
  const { flows, add } = table();
  const pool = { localAddresses: ["198.18.1.2"], firstPort: 3000, lastPort: 3001 };
  const a = add(pool, 0);
  const b = add(pool, 0);
  t.deepEqual([a.localPort, b.localPort].sort(), [3000, 3001]);
  t.is(add(pool, 0).refused, "localPortsExhausted");
  flows.remove(a.ref, 2000);
  t.is(flows.findReverse({ protocol: "tcp", realIp: "198.18.1.11", realPort: 8080, ip: "198.18.1.2", port: a.localPort! }), 0);
  const c = add(pool, 0);
  t.not(c.ref, 0);
  t.is(c.localPort, a.localPort, "the freed port is taken again");
});

test("the start picks the first address; a one-port range works", (t) => {
  const { add } = table();
  const pool = { localAddresses: ["198.18.1.2", "198.18.1.3", "198.18.1.4"], firstPort: 1024, lastPort: 32767 };
  t.is(add(pool, 0).localIp, "198.18.1.2");
  t.is(add(pool, 1 + 100 * 2 ** 32).localIp, "198.18.1.3");
  t.is(add(pool, 5).localIp, "198.18.1.4");
  const single = add({ localAddresses: ["198.18.1.5"], firstPort: 65535, lastPort: 65535 }, 12345);
  t.is(single.localPort, 65535);
  t.is(add({ localAddresses: ["198.18.1.5"], firstPort: 65535, lastPort: 65535 }, 1).refused, "localPortsExhausted");
});

// The real closed first and holds a freed (local address, port) in TIME_WAIT: the same pair must come
// back as late as possible, so ports go out in turn and a freed one waits for the rest of the range.
test("ports go out in turn: a freed port comes back only after every other free port of the range was used", (t) => {
  const { flows, add } = table();
  const pool = { localAddresses: ["198.18.1.2"], firstPort: 4000, lastPort: 4015 };
  const size = 16;
  const handedOut: number[] = [];
  // Each flow ends before the next begins: every port is free at every allocation, and the same
  // start every time (a random pick with it would return the same port again and again).
  for (let i = 0; i < 2 * size; i++) {
    const flow = add(pool, 0);
    t.not(flow.ref, 0);
    handedOut.push(flow.localPort!);
    flows.remove(flow.ref, 2000);
  }
  t.is(new Set(handedOut.slice(0, size)).size, size, `the first ${size} are the whole range: ${handedOut}`);
  t.deepEqual(handedOut.slice(size), handedOut.slice(0, size), "then the same turn again");
  for (let i = 1; i < handedOut.length; i++) t.is(handedOut[i], 4000 + ((handedOut[i - 1]! - 4000 + 1) % size), "in order");

  // A port held by a live flow is skipped in every turn; the others still go round before any repeats.
  const held = add(pool, 0);
  const seen: number[] = [];
  for (let i = 0; i < 2 * (size - 1); i++) {
    const flow = add(pool, 0);
    t.not(flow.localPort, held.localPort, "a live flow's port is never given twice");
    seen.push(flow.localPort!);
    flows.remove(flow.ref, 2000);
  }
  t.is(new Set(seen.slice(0, size - 1)).size, size - 1);
  t.deepEqual(seen.slice(size - 1), seen.slice(0, size - 1));
  t.is(seen[0], 4000 + ((held.localPort! - 4000 + 1) % size), "the turn goes on past the held port");
});

test("each real has its own turn: flows to another real do not skip this real's ports", (t) => {
  const { flows, add } = table();
  const pool = { localAddresses: ["198.18.1.2"], firstPort: 5000, lastPort: 5999 };
  const first = add(pool, 0, "198.18.1.11");
  flows.remove(first.ref, 2000);
  for (let i = 0; i < 10; i++) flows.remove(add(pool, 0, "198.18.1.12").ref, 2000);
  const second = add(pool, 0, "198.18.1.11");
  // Another real's allocations could only move a shared cursor on (a hash collision), never back.
  t.not(second.localPort, first.localPort);
  const after = (port: number, steps: number) => 5000 + ((port - 5000 + steps) % 1000);
  t.true(second.localPort === after(first.localPort!, 1) || second.localPort === after(first.localPort!, 11), `${first.localPort} then ${second.localPort}`);
});
