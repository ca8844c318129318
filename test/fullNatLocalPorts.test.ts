// Full NAT's local ports (native/flow/local_ports.h, FlowTable::insert), driven without an engine: one
// port per live flow per (local address, real, protocol), the next address when one is full, a counted
// refusal when all are, the port free again with its flow, and the reply index keyed by the rewritten tuple.
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

test("the start spreads flows over the range and the addresses; a one-port range works", (t) => {
  const { add } = table();
  const pool = { localAddresses: ["198.18.1.2", "198.18.1.3", "198.18.1.4"], firstPort: 1024, lastPort: 32767 };
  const first = add(pool, 0);
  t.is(`${first.localIp}:${first.localPort}`, "198.18.1.2:1024");
  const shifted = add(pool, 1 + 100 * 2 ** 32);
  t.is(`${shifted.localIp}:${shifted.localPort}`, "198.18.1.3:1124");
  const single = add({ localAddresses: ["198.18.1.5"], firstPort: 65535, lastPort: 65535 }, 12345);
  t.is(single.localPort, 65535);
  t.is(add({ localAddresses: ["198.18.1.5"], firstPort: 65535, lastPort: 65535 }, 1).refused, "localPortsExhausted");
});
