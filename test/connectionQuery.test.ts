// GET /conns and Balancer.connections(query): filters by service, real, client and state, pages with
// a cursor, and clear errors for malformed queries - checked against a full scan of a flow map filled
// through the flow table's own inserts.

import test from "ava";
import { connectionQueryFromParams, type ConnectionQuery } from "../src/flows/connectionQuery";
import { flowFilterOf } from "../src/flows/connectionQuery";
import { FlowMap, type Connection } from "../src/flows/flowMap";
import { ApiError } from "../src/errors";
import { loadNative } from "../src/native";

const native = loadNative();
const ESTABLISHED = native.flowLayout().states.indexOf("ESTABLISHED");

function filledMap(): FlowMap {
  const map = new FlowMap(4096);
  const flows = new native.FlowTableForTests(map.bytes);
  flows.setFloodProtection({ halfOpenSharePermille: 1000, udpSharePermille: 1000, pressureAtPermille: 1000, pressureTimeoutSeconds: 5 });
  for (let i = 0; i < 3000; i++) {
    const ref = flows.insert(
      {
        protocol: i % 3 === 0 ? "udp" : "tcp",
        clientIp: `198.19.${i % 4}.${1 + (i % 200)}`, clientPort: 10_000 + i,
        vip: `198.18.0.${100 + (i % 2)}`, vport: i % 5 === 0 ? 443 : 80,
        realIp: `198.18.1.${11 + (i % 3)}`, realPort: 8080 + (i % 2), realId: i % 6,
      },
      1000,
    );
    if (i % 4 === 0) flows.raiseState(ref, ESTABLISHED);
  }
  return map;
}

function everyPage(map: FlowMap, query: ConnectionQuery): { all: Connection[]; pages: number } {
  const all: Connection[] = [];
  let pages = 0;
  for (let cursor: number | undefined = 0; cursor !== undefined; pages++) {
    const page = map.page(flowFilterOf(query), cursor, query.limit ?? 100);
    t_assertPageSize(page.connections.length, query.limit ?? 100, page.more);
    all.push(...page.connections);
    cursor = page.next;
  }
  return { all, pages };
}

function t_assertPageSize(size: number, limit: number, more: boolean): void {
  if (size > limit || (more && size !== limit)) throw new Error(`page of ${size} with limit ${limit}, more ${more}`);
}

const cases: Array<[string, ConnectionQuery, (c: Connection) => boolean]> = [
  ["no filter", {}, () => true],
  ["service with protocol", { service: "198.18.0.100:80/tcp" }, (c) => c.vip.ip === "198.18.0.100" && c.vip.port === 80 && c.protocol === "tcp"],
  ["service without protocol", { service: "198.18.0.101:443" }, (c) => c.vip.ip === "198.18.0.101" && c.vip.port === 443],
  ["real ip", { real: "198.18.1.12" }, (c) => c.real.ip === "198.18.1.12"],
  ["real ip:port", { real: "198.18.1.12:8081" }, (c) => c.real.ip === "198.18.1.12" && c.real.port === 8081],
  ["client prefix", { client: "198.19.2.0/24" }, (c) => c.client.ip.startsWith("198.19.2.")],
  ["client ip:port", { client: "198.19.1.6:10005" }, (c) => c.client.ip === "198.19.1.6" && c.client.port === 10005],
  ["state, any case", { state: "established" }, (c) => c.state === "ESTABLISHED"],
  ["all at once", { service: "198.18.0.100:80/tcp", real: "198.18.1.12", client: "198.19.0.0/16", state: "SYN_RECV" },
    (c) => c.vip.ip === "198.18.0.100" && c.vip.port === 80 && c.protocol === "tcp" && c.real.ip === "198.18.1.12" && c.state === "SYN_RECV"],
];

for (const [name, query, matches] of cases) {
  test(`pages of ${name} stitch together to exactly the matching connections`, (t) => {
    const map = filledMap();
    const expected = map.connections().filter(matches).map((c) => `${c.client.ip}:${c.client.port}`);
    t.true(expected.length > 0 || name === "client ip:port", "the filter matches something");
    const { all, pages } = everyPage(map, { ...query, limit: 97 });
    t.deepEqual(all.map((c) => `${c.client.ip}:${c.client.port}`), expected);
    t.is(pages, Math.max(1, Math.ceil(expected.length / 97)));
  });
}

test("the default page is 100 connections, and says there are more", (t) => {
  const map = filledMap();
  const page = map.page(flowFilterOf({}), 0, connectionQueryFromParams(new URLSearchParams()).limit ?? 100);
  t.is(page.connections.length, 100);
  t.true(page.more);
  t.is(typeof page.next, "number");
});

const badQueries: Array<[string, RegExp]> = [
  ["limit=0", /limit must be an integer 1\.\.10000, got 0/],
  ["limit=abc", /query parameter limit must be a non-negative integer, got "abc"/],
  ["limit=10001", /limit must be an integer 1\.\.10000/],
  ["cursor=-3", /query parameter cursor must be a non-negative integer/],
  ["service=198.18.0.100", /service: "198\.18\.0\.100" is not a service: VIP:PORT or VIP:PORT\/tcp\|udp/],
  ["service=198.18.0.100:80/sctp", /service: .* is not a service/],
  ["service=198.18.0.300:80", /service: .* is not a service/],
  ["real=198.18.1.11:0", /real: "198\.18\.1\.11:0" is not a real server: IP or IP:PORT/],
  ["client=198.19.0.0/33", /client: .* is not a client: IP, IP\/PREFIX or IP:PORT/],
  ["client=somewhere", /client: .* is not a client/],
  ["state=OPEN", /state: "OPEN" is not a flow state: one of NONE, SYN_RECV, ESTABLISHED/],
  ["colour=red", /unknown query parameter "colour": GET \/conns takes service, real, client, state, templates, limit, cursor/],
  ["templates=yes", /query parameter templates must be true or false, got "yes"/],
  ["limit=5&limit=6", /query parameter limit given more than once/],
];

for (const [text, message] of badQueries) {
  test(`GET /conns?${text} is refused with a 400 that says why`, (t) => {
    const error = t.throws(() => connectionQueryFromParams(new URLSearchParams(text)), { instanceOf: ApiError });
    t.regex(error.message, message);
    t.is(error.status, 400);
  });
}
