// Persistence templates in the flow map (native/flow/persistence_templates.h), driven without an
// engine: the masked key, binding and rebinding, the control count that keeps a template while its
// flows live, its expiry only after the last of them plus its timeout, templates kept out of the
// connection counts and listings, and the flood defences covering them.

import test from "ava";
import { FlowMap, type Connection } from "../src/flows/flowMap";
import { loadNative, type NativeFloodProtection } from "../src/native";

const native = loadNative();
const layout = native.flowLayout();
const DEFAULTS: NativeFloodProtection = { halfOpenSharePermille: 500, udpSharePermille: 500, pressureAtPermille: 500, pressureTimeoutSeconds: 5 };
const VIP = "198.18.0.100";
const REAL_A = { realIp: "198.18.1.11", realPort: 8080, realId: 1 };
const REAL_B = { realIp: "198.18.1.12", realPort: 8080, realId: 2 };

function table(capacity: number, defences: Partial<NativeFloodProtection> = {}) {
  const map = new FlowMap(capacity);
  const flows = new native.FlowTableForTests(map.bytes);
  flows.setFloodProtection({ ...DEFAULTS, ...defences });
  const bind = (clientIp: string, real = REAL_A, options: { netmask?: string; timeoutS?: number; nowMs?: number; protocol?: "tcp" | "udp"; stale?: number } = {}) =>
    flows.bindTemplate(
      { protocol: options.protocol ?? "tcp", clientIp, netmask: options.netmask ?? "255.255.255.255", vip: VIP, vport: 80, ...real },
      options.timeoutS ?? 10,
      options.nowMs ?? 1000,
      options.stale,
    );
  const flow = (clientIp: string, clientPort: number, templateRef: number, real = REAL_A, nowMs = 1000, protocol: "tcp" | "udp" = "tcp") =>
    flows.insert({ protocol, clientIp, clientPort, vip: VIP, vport: 80, ...real }, nowMs, { templateRef });
  const templates = (): Connection[] => map.page({ templates: true }, 0, 10_000).connections.filter((c) => c.template !== undefined);
  const serialOf = (ref: number) =>
    new DataView(map.buffer).getUint32(map.buffer.byteLength - capacity * layout.entryBytes + (ref - 1) * layout.entryBytes + layout.entry.templateSerial, true);
  return { map, flows, bind, flow, templates, serialOf };
}

test("a template's key is the client address under the netmask: one /24 shares it, /32 does not", (t) => {
  const { bind, templates } = table(64);
  const wide = bind("198.19.0.1", REAL_A, { netmask: "255.255.255.0" });
  t.not(wide, 0);
  t.is(bind("198.19.0.77", REAL_B, { netmask: "255.255.255.0" }), wide, "the same /24: the same template, its real unchanged");
  t.not(bind("198.19.1.77", REAL_B, { netmask: "255.255.255.0" }), wide, "another /24: another template");
  const narrow = bind("198.19.0.1");
  t.not(narrow, wide, "a /32 key differs from the /24 one");
  t.not(bind("198.19.0.2"), narrow);
  const listed = templates();
  t.is(listed.length, 4);
  const first = listed.find((c) => c.client.ip === "198.19.0.0");
  t.truthy(first, JSON.stringify(listed.map((c) => c.client)));
  t.is(first!.client.port, 0);
  t.is(first!.real.ip, REAL_A.realIp, "the first binding holds");
});

test("templates are no connections: not in the real's counts or the default listing", (t) => {
  const { map, bind, flow, templates } = table(64);
  const ref = bind("198.19.0.1");
  t.deepEqual(map.realCounts(REAL_A.realId), { active: 0, inactive: 0, templates: 1 });
  t.is(map.connections().length, 0);
  t.not(flow("198.19.0.1", 40000, ref), 0);
  t.deepEqual(map.realCounts(REAL_A.realId), { active: 0, inactive: 1, templates: 1 });
  t.deepEqual(map.connections().map((c) => c.client.port), [40000]);
  t.is(templates().length, 1);
  t.is(map.stats().live, 2);
});

test("a template counts the flows it controls and outlives the last of them by its timeout", (t) => {
  const { map, flows, bind, flow, templates } = table(64);
  const template = bind("198.19.0.1", REAL_A, { timeoutS: 10, nowMs: 1000 });
  const first = flow("198.19.0.1", 40001, template, REAL_A, 1000);
  const second = flow("198.19.0.1", 40002, template, REAL_A, 2000);
  t.is(flows.templateOf(first), template);
  t.is(flows.templateOf(second), template);
  t.is(templates()[0]!.template!.controlledFlows, 2);
  t.is(flow("198.19.0.1", 40002, template, REAL_A, 2500), second, "an existing flow is not counted twice");
  t.is(templates()[0]!.template!.controlledFlows, 2);
  // Long past its timeout, but it controls live flows (flows time out after 300 s here).
  t.is(flows.sweep(60_000, 300), 0);
  t.is(templates().length, 1);
  flows.remove(first, 61_000);
  t.is(templates()[0]!.template!.controlledFlows, 1);
  t.is(flows.sweep(90_000, 300), 0, "still one controlled flow");
  flows.remove(second, 100_000);
  t.is(templates()[0]!.template!.controlledFlows, 0);
  t.is(flows.sweep(100_000 + 9_000, 300), 0, "its 10 s timeout runs from the last flow's end");
  t.is(templates().length, 1);
  t.is(flows.sweep(100_000 + 10_500, 300), 1);
  t.is(templates().length, 0);
  t.deepEqual(map.realCounts(REAL_A.realId), { active: 0, inactive: 0, templates: 0 });
  t.is(map.stats().live, 0);
});

test("a new connection through a template restarts its timeout", (t) => {
  const { flows, bind, flow, templates } = table(64);
  const template = bind("198.19.0.1", REAL_A, { timeoutS: 10, nowMs: 1000 });
  flows.remove(flow("198.19.0.1", 40001, template, REAL_A, 1000), 1000);
  t.not(flow("198.19.0.1", 40002, template, REAL_A, 8000), 0);
  t.is(flows.sweep(8000 + 301_000, 300), 1, "the second flow times out (300 s idle)");
  t.is(templates().length, 1, "the template's timeout runs from then");
  t.is(flows.sweep(8000 + 301_000 + 10_500, 300), 1, "then the template, 10 s later");
  t.is(templates().length, 0);
});

test("a flow that outlived its template leaves the next template in that entry alone", (t) => {
  const { map, flows, bind, flow, templates } = table(16);
  const first = bind("198.19.0.1");
  const orphan = flow("198.19.0.1", 40001, first);
  flows.assure(orphan);
  const others: number[] = [];
  for (let port = 1; port <= 14; port++) {
    others.push(flow("198.19.9.9", port, 0)); // the map fills with assured flows (none evicted)
    flows.assure(others.at(-1)!);
  }
  t.is(map.stats().live, 16);
  flows.remove(first, 1000); // gone under its flow (as the removal of its service's state would)
  t.is(flows.templateOf(orphan), 0);
  flows.leaveBatch();
  flows.enterBatch();
  const second = bind("198.19.0.2");
  t.is(second, first, "the freed entry is reused");
  flows.remove(others[0]!, 1000); // room for a controlled flow, short of the map's last reserve (which
  flows.remove(others[1]!, 1000); // would evict the unassured template to make room)
  flows.leaveBatch();
  flows.enterBatch();
  t.not(flow("198.19.0.2", 40002, second), 0);
  t.is(templates()[0]!.template!.controlledFlows, 1);
  flows.remove(orphan, 2000);
  t.is(templates()[0]!.template!.controlledFlows, 1, "the orphan's end does not count against the new template");
});

test("a stale template is rebound to the new real in place; a fresh one keeps its real", (t) => {
  const { map, bind, flow, templates, serialOf } = table(64);
  const template = bind("198.19.0.1", REAL_A);
  const onA = flow("198.19.0.1", 40001, template, REAL_A);
  t.is(bind("198.19.0.1", REAL_B, { stale: serialOf(template) + 1 }), template, "another serial: not the template judged stale");
  t.is(templates()[0]!.real.ip, REAL_A.realIp);
  t.is(bind("198.19.0.1", REAL_B, { stale: serialOf(template) }), template);
  t.is(templates()[0]!.real.ip, REAL_B.realIp);
  t.deepEqual(map.realCounts(REAL_A.realId), { active: 0, inactive: 1, templates: 0 }, "its flow on the old real goes on");
  t.is(map.realCounts(REAL_B.realId).templates, 1);
  t.is(templates()[0]!.template!.controlledFlows, 1, "and is still controlled");
  t.not(onA, 0);
});

test("a spoofed SYN flood's templates are evicted with its flows: the map keeps room, a real client gets in", (t) => {
  const capacity = 256;
  const { map, flows, bind, flow, templates } = table(capacity, { halfOpenSharePermille: 500 });
  let refused = 0;
  for (let i = 0; i < 5000; i++) {
    flows.leaveBatch(); // each spoofed SYN in a batch of its own, as a worker's frames come
    flows.enterBatch();
    const clientIp = `198.19.${(i >> 8) & 0xff}.${i & 0xff}`;
    const template = bind(clientIp, REAL_A, { timeoutS: 300 });
    if (template === 0 || flow(clientIp, 1000 + (i % 60000), template) === 0) refused += 1;
  }
  flows.leaveBatch();
  const stats = map.stats();
  t.is(refused, 0);
  t.true(stats.unassured.halfOpenTcp <= capacity / 2, `half-open share (templates included): ${stats.unassured.halfOpenTcp}`);
  t.true(stats.evicted.halfOpenTcpShare + stats.evicted.halfOpenTcpRoom > 5000, JSON.stringify(stats.evicted));
  t.true(templates().length <= capacity / 2, `templates bounded: ${templates().length}`);
  // A real client: its flow proves itself, and so does its template.
  flows.enterBatch();
  const template = bind("198.19.200.1", REAL_B, { timeoutS: 300 });
  const real = flow("198.19.200.1", 5555, template, REAL_B);
  t.not(template, 0);
  t.not(real, 0);
  const before = map.stats().unassured.halfOpenTcp;
  flows.assure(real);
  t.is(map.stats().unassured.halfOpenTcp, before - 2, "the flow and its template are assured together");
  flows.leaveBatch();
  // More flood cannot take them away.
  for (let i = 0; i < 2000; i++) {
    flows.leaveBatch();
    flows.enterBatch();
    const clientIp = `198.19.${100 + ((i >> 8) & 0xff)}.${i & 0xff}`;
    flow(clientIp, 2000, bind(clientIp, REAL_A));
  }
  flows.leaveBatch();
  const kept = templates().find((c) => c.client.ip === "198.19.200.1");
  t.truthy(kept);
  t.is(kept!.real.ip, REAL_B.realIp);
  t.is(flows.templateOf(real), template);
});

test("under pressure, unassured templates without flows expire after the short timeout", (t) => {
  const { map, flows, bind, templates } = table(100, { halfOpenSharePermille: 1000 });
  for (let i = 0; i < 60; i++) bind(`198.19.0.${i + 1}`, REAL_A, { timeoutS: 300, nowMs: 1000 });
  t.is(map.stats().unassured.halfOpenTcp, 60, "templates count in their protocol's unassured class");
  t.is(flows.sweep(1000 + 4000, 300), 0);
  t.is(flows.sweep(1000 + 6000, 300), 60, "past the 5 s pressure timeout");
  t.is(map.stats().expiredUnderPressure, 60);
  t.is(templates().length, 0);
});

test("UDP templates belong to the UDP class", (t) => {
  const { map, bind, flow } = table(64);
  const template = bind("198.19.0.1", REAL_A, { protocol: "udp" });
  t.not(flow("198.19.0.1", 5353, template, REAL_A, 1000, "udp"), 0);
  t.deepEqual(map.stats().unassured, { halfOpenTcp: 0, udp: 2 });
  t.is(bind("198.19.0.1", REAL_A, { protocol: "tcp" }) === template, false, "a TCP service's template is another");
});
