// `natlb import`: ipvsadm-save and keepalived.conf into natlb configs. The fixtures are a director's
// files as the tools write and read them (test/fixtures/import/keepalived.conf passes keepalived
// 2.2's `keepalived -t` in a namespace with an eth1); every part without a natlb equivalent must be
// listed.
import test from "ava";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../src/config";
import { ConfigError } from "../src/errors";
import { importText } from "../src/import/importFile";
import { importIpvsadmSave } from "../src/import/ipvsadmSave";
import { importKeepalivedConf } from "../src/import/keepalivedConf";
import { parseKeepalivedBlocks } from "../src/import/keepalivedBlocks";

const FIXTURES = join(__dirname, "..", "..", "test", "fixtures", "import");
const CLI = join(__dirname, "..", "..", "bin", "natlb.js");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");

const notesAbout = (notes: ReadonlyArray<{ where: string; note: string }>, where: string) => notes.filter((n) => n.where === where).map((n) => n.note);

test("ipvsadm-save: services, reals, weights and schedulers; everything else listed by line", (t) => {
  const { config, notes } = importIpvsadmSave(fixture("ipvsadm.save"));
  t.deepEqual(config.services, [
    { vip: "198.18.0.100", port: 80, protocol: "tcp", scheduler: "wrr", reals: [{ ip: "198.18.1.11", port: 8080, weight: 3 }, { ip: "198.18.1.12", port: 8080, weight: 1 }] },
    {
      vip: "198.18.0.100", port: 443, protocol: "tcp", scheduler: "mh", schedulerFlags: ["mh-fallback", "mh-port"],
      reals: [{ ip: "198.18.1.11", port: 8443, weight: 1 }, { ip: "198.18.1.12", port: 8443, weight: 1, maxConns: 1000, minConnsToResume: 800 }],
    },
    { vip: "198.18.0.100", port: 53, protocol: "udp", scheduler: "rr", reals: [{ ip: "198.18.1.21", port: 53, weight: 1 }, { ip: "198.18.1.22", port: 53, weight: 0 }] },
    {
      vip: "198.18.0.101", port: 25, protocol: "tcp", scheduler: "wlc", persistence: { timeoutS: 300, netmask: "255.255.255.0" },
      reals: [{ ip: "198.18.1.31", port: 25, weight: 1 }], forwarding: "dr",
    },
  ]);
  t.deepEqual(notesAbout(notes, "line 4"), [], "-b mh-fallback,mh-port is imported");
  t.deepEqual(notesAbout(notes, "line 6"), [], "-x 1000 -y 800 are imported");
  t.notRegex(notesAbout(notes, "line 10").join(), /persist/, "-p 300 -M 255.255.255.0 is imported");
  t.deepEqual(notesAbout(notes, "line 11"), [], "-g is imported as forwarding dr");
  t.regex(notesAbout(notes, "line 12").join(), /firewall-mark/);
  t.regex(notesAbout(notes, "line 13").join(), /firewall-mark/);
  t.notRegex(notesAbout(notes, "line 10").join(), /scheduler/, "wlc is natlb's too");
  t.notThrows(() => parseConfig(config));
});

test("ipvsadm-save: malformed lines are errors that name the line", (t) => {
  const cases: Array<[string, RegExp]> = [
    ["-A -t www.example.net:http -s rr", /line 1.*ipvsadm-save -n/],
    ["-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:81 -r 198.18.1.1:80 -m -w 1", /line 2.*no earlier -A/],
    ["-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.1:80 -m -w 70000", /line 2.*0\.\.65535/],
    ["-A -t 198.18.0.100:80 -s", /line 1.*-s needs a value/],
  ];
  for (const [text, pattern] of cases) {
    const error = t.throws(() => importIpvsadmSave(text));
    t.true(error instanceof ConfigError);
    t.regex(error!.message, pattern);
  }
});

test("keepalived.conf: virtual servers, reals, checkers, thresholds, persistence and sorry servers; VRRP, fwmark and DR listed", (t) => {
  const { config, notes } = importText("keepalived", fixture("keepalived.conf"));
  const [web, dns, mail] = config.services;
  t.is(config.services.length, 3);
  t.like(web, { vip: "198.18.0.100", port: 80, protocol: "tcp", scheduler: "wrr" });
  t.deepEqual(web!.reals, [{ ip: "198.18.1.11", port: 8080, weight: 3, maxConns: 2000, minConnsToResume: 1500 }, { ip: "198.18.1.12", port: 8080, weight: 1 }]);
  t.deepEqual(web!.healthCheck, {
    type: "http", intervalMs: 5000, timeoutMs: 2000, rise: 1, fall: 3, path: "/healthz", expectStatus: "200-299", host: "www.example.net",
  });
  t.like(dns, { port: 53, protocol: "udp", scheduler: "rr" });
  t.deepEqual(dns!.healthCheck, { type: "udp", intervalMs: 2000, timeoutMs: 1000, rise: 1, payloadHex: "00", expect: "" });
  t.like(mail, {
    vip: "198.18.0.101", port: 25, forwarding: "dr", fallback: { ip: "198.18.1.99", port: 25 }, persistence: { timeoutS: 300, netmask: "255.255.255.255" },
  });
  t.is(web!.forwarding, undefined, "lb_kind NAT is natlb's default, left out");
  t.deepEqual(mail!.reals, [{ ip: "198.18.1.31", port: 25, weight: 1 }, { ip: "198.18.1.32", port: 25, weight: 0 }]);
  t.deepEqual(mail!.healthCheck, {
    type: "exec", intervalMs: 10_000, timeoutMs: 4000, rise: 1, command: ["/usr/local/bin/check_smtp", "--host", "198.18.1.31"],
  });
  const all = notes.map((n) => `${n.where}: ${n.note}`).join("\n");
  for (const expected of [
    /line 4: global_defs is not a load-balancing block/,
    /line 12: vrrp_instance .* keep keepalived running/,
    /delay_before_retry has no natlb equivalent/,
    /inhibit_on_failure has no natlb equivalent/,
    /checked differently; natlb has one check per service/,
    /virtual_server fwmark has no natlb equivalent/,
  ]) {
    t.regex(all, expected);
  }
  t.notThrows(() => parseConfig(config));
});

test("forwarding methods: -g and lb_kind DR become dr (with the service port for every real), -m and NAT nat, -i and TUN nat with a note; a real whose method differs from its service's first real's gets its own forwarding", (t) => {
  const ipvs = importIpvsadmSave(
    [
      "-A -t 198.18.0.100:80 -s rr",
      "-a -t 198.18.0.100:80 -r 198.18.1.11:80 -g -w 1",
      "-a -t 198.18.0.100:80 -r 198.18.1.12:8080 -g -w 1",
      "-a -t 198.18.0.100:80 -r 198.18.1.13:80 -m -w 1",
      "-A -u 198.18.0.100:53 -s rr",
      "-a -u 198.18.0.100:53 -r 198.18.1.11:53 -w 1",
      "-A -t 198.18.0.100:81 -s rr",
      "-a -t 198.18.0.100:81 -r 198.18.1.11:8081 -m -w 1",
      "-a -t 198.18.0.100:81 -r 198.18.1.12:9000 -g -w 1",
      "-A -t 198.18.0.100:82 -s rr",
      "-a -t 198.18.0.100:82 -r 198.18.1.11:82 -i -w 1",
    ].join("\n"),
  );
  const [web, dns, nat, tun] = ipvs.config.services;
  t.is(web!.forwarding, "dr");
  t.deepEqual(web!.reals.map((r) => r.port), [80, 80, 80], "a dr real serves the service port");
  t.is(dns!.forwarding, "dr", "without a method flag ipvsadm gateways");
  t.is(nat!.forwarding, undefined);
  t.is(nat!.reals[0]!.port, 8081, "a NAT real keeps its port");
  t.like(nat!.reals[1], { ip: "198.18.1.12", port: 81, forwarding: "dr" }, "a dr real in a nat service: its own forwarding, the service port");
  t.is(tun!.forwarding, undefined);
  const ipvsNotes = ipvs.notes.map((n) => `${n.where}: ${n.note}`).join("\n");
  t.regex(ipvsNotes, /service 198\.18\.0\.100:80\/tcp: 198\.18\.1\.12:8080 is a direct-routing real: .* imported with port 80/);
  t.deepEqual(web!.reals.map((r) => r.forwarding), [undefined, undefined, "nat"], "a real with another method gets its own forwarding");
  t.regex(ipvsNotes, /198\.18\.1\.12:9000 is a direct-routing real: .* imported with port 81/);
  t.regex(ipvsNotes, /line 11: IP tunnelling \(LVS-TUN\) has no natlb equivalent: imported as NAT/);
  t.notThrows(() => parseConfig(ipvs.config));

  const keepalived = importKeepalivedConf(
    [
      "virtual_server 198.18.0.100 80 {", "  protocol TCP", "  lb_kind DR", "  real_server 198.18.1.11 8080 {", "  }", "  sorry_server 198.18.1.99 8080", "}",
      "virtual_server 198.18.0.100 81 {", "  protocol TCP", "  lb_kind TUN", "  real_server 198.18.1.11 8081 {", "  }", "}",
      "virtual_server 198.18.0.100 82 {", "  protocol TCP", "  lb_kind BOGUS", "  real_server 198.18.1.11 8082 {", "  }", "}",
    ].join("\n"),
  );
  const [dr, tunnel, bogus] = keepalived.config.services;
  t.like(dr, { forwarding: "dr", fallback: { ip: "198.18.1.99", port: 80 } });
  t.deepEqual(dr!.reals.map((r) => r.port), [80]);
  t.is(tunnel!.forwarding, undefined);
  t.is(tunnel!.reals[0]!.port, 8081);
  t.is(bogus!.forwarding, undefined);
  const keepalivedNotes = keepalived.notes.map((n) => `${n.where}: ${n.note}`).join("\n");
  t.regex(keepalivedNotes, /198\.18\.1\.11:8080 is a direct-routing real/);
  t.regex(keepalivedNotes, /198\.18\.1\.99:8080 is a direct-routing real/);
  t.regex(keepalivedNotes, /line 10: IP tunnelling/);
  t.regex(keepalivedNotes, /line 16: lb_kind BOGUS is not NAT, DR or TUN: imported as NAT/);
  t.notThrows(() => parseConfig(keepalived.config));
});

test("scheduler flags and thresholds: imported where natlb has them, listed where not", (t) => {
  const ipvs = importIpvsadmSave(
    [
      "-A -t 198.18.0.100:80 -s sh -b flag-1,flag-2",
      "-A -t 198.18.0.100:81 -s wlc -b sh-port",
      "-a -t 198.18.0.100:81 -r 198.18.1.11:80 -m -w 1 -x 10 -y 20",
      "-a -t 198.18.0.100:81 -r 198.18.1.12:80 -m -w 1 -y 5",
      "-a -t 198.18.0.100:81 -r 198.18.1.13:80 -m -w 1 -x 0 -y 0",
    ].join("\n"),
  );
  t.deepEqual(ipvs.config.services[0]!.schedulerFlags, ["sh-fallback", "sh-port"], "flag-1 and flag-2 are sh's fallback and port");
  t.is(ipvs.config.services[1]!.schedulerFlags, undefined);
  t.regex(notesAbout(ipvs.notes, "line 2").join(), /sh-port belongs to sh, and the scheduler is wlc: not imported/);
  t.deepEqual(ipvs.config.services[1]!.reals.map((r) => [r.maxConns, r.minConnsToResume]), [[10, undefined], [undefined, undefined], [undefined, undefined]]);
  t.regex(notesAbout(ipvs.notes, "line 3").join(), /-y 20 is above -x 10: IPVS refuses that/);
  t.regex(notesAbout(ipvs.notes, "line 4").join(), /-y 5 without -x/);
  t.deepEqual(notesAbout(ipvs.notes, "line 5"), [], "0 is IPVS's no limit");
  t.notThrows(() => parseConfig(ipvs.config));

  const keepalived = importKeepalivedConf(
    "virtual_server 198.18.0.100 80 {\n lb_algo mh\n mh-port\n sh-fallback\n sorry_server 198.18.1.99\n real_server 198.18.1.11 80 {\n  uthreshold 7\n }\n}\n",
  );
  const [service] = keepalived.config.services;
  t.deepEqual(service!.schedulerFlags, ["mh-port"]);
  t.deepEqual(service!.fallback, { ip: "198.18.1.99", port: 80 }, "sorry_server's port defaults to the service's");
  t.deepEqual(service!.reals, [{ ip: "198.18.1.11", port: 80, weight: 1, maxConns: 7 }]);
  t.regex(notesAbout(keepalived.notes, "line 3").join(), /sh-fallback belongs to sh, and the scheduler is mh/);
  t.notThrows(() => parseConfig(keepalived.config));
});

test("keepalived.conf syntax: comments, quotes, blocks on one line or the next, and unbalanced braces", (t) => {
  const tree = parseKeepalivedBlocks('a 1 # c\nb "x y" ! c\n{\n  url { path /p }\n}\n');
  t.deepEqual(tree.map((s) => [s.keyword, s.args]), [["a", ["1"]], ["b", ["x y"]]]);
  t.deepEqual(tree[1]!.block!.map((s) => [s.keyword, s.block!.map((c) => [c.keyword, c.args])]), [["url", [["path", ["/p"]]]]]);
  t.regex(t.throws(() => parseKeepalivedBlocks("virtual_server 1.2.3.4 80 {\n real_server 1.2.3.5 80 {\n}"))!.message, /line 1.*never closed/);
  t.regex(t.throws(() => parseKeepalivedBlocks("}"))!.message, /closes no block/);
  t.regex(t.throws(() => parseKeepalivedBlocks('misc_path "/bin/x\n'))!.message, /quoted word/);
});

test("an import natlb would refuse is an error naming the problem, not a config", (t) => {
  const text = "virtual_server 198.18.0.100 53 {\n protocol UDP\n real_server 198.18.1.1 53 {\n  UDP_CHECK {\n   payload abc\n  }\n }\n}\n";
  const error = t.throws(() => importText("keepalived", text));
  t.true(error instanceof ConfigError);
  t.regex(error!.message, /payloadHex.*in the imported configuration/);
  t.deepEqual(importKeepalivedConf("virtual_server 198.18.0.100 80 {\n real_server 198.18.1.1 {\n }\n}\n").config.services[0]!.reals, [
    { ip: "198.18.1.1", port: 80, weight: 1 },
  ]);
});

test("natlb import: the config on stdout loads with check-config; notes on stderr; --output refuses to overwrite", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "natlb-import-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const printed = spawnSync(process.execPath, [CLI, "import", "--keepalived", join(FIXTURES, "keepalived.conf")], { encoding: "utf8" });
  t.is(printed.status, 0, printed.stderr);
  t.is(JSON.parse(printed.stdout).services.length, 3);
  t.regex(printed.stderr, /natlb import: .*keepalived\.conf: line 12: vrrp_instance/);
  const out = join(dir, "natlb.json");
  const written = spawnSync(process.execPath, [CLI, "import", "--ipvsadm", join(FIXTURES, "ipvsadm.save"), "-o", out], { encoding: "utf8" });
  t.is(written.status, 0, written.stderr);
  const checked = spawnSync(process.execPath, [CLI, "check-config", out], { encoding: "utf8" });
  t.is(checked.status, 0, checked.stderr);
  t.is(JSON.parse(checked.stdout).services.length, 4);
  const again = spawnSync(process.execPath, [CLI, "import", "--ipvsadm", join(FIXTURES, "ipvsadm.save"), "-o", out], { encoding: "utf8" });
  t.not(again.status, 0);
  t.regex(again.stderr, /EEXIST|exists/);
  const neither = spawnSync(process.execPath, [CLI, "import"], { encoding: "utf8" });
  t.is(neither.status, 2, neither.stderr);
});

test("keepalived.conf: global_defs' lvs_timeouts become natlb's global timeouts (tcp, tcpfin, udp); the rest of global_defs is listed", (t) => {
  const text = [
    "global_defs {",
    "  router_id LVS_1",
    "  lvs_timeouts tcp 7200 tcpfin 30 udp 0",
    "}",
    "virtual_server 198.18.0.100 80 {",
    "  real_server 198.18.1.11 8080 {",
    "  }",
    "}",
    "",
  ].join("\n");
  const { config, notes } = importKeepalivedConf(text);
  t.deepEqual(config.timeouts, { tcpEstablished: 7200, tcpFinWait: 30 }, "udp 0 (IPVS: unchanged) is left to natlb's default");
  t.regex(notes.map((n) => `${n.where}: ${n.note}`).join("\n"), /line 1: global_defs \(but its lvs_timeouts\) is not a load-balancing block/);
  const parsed = parseConfig(config);
  t.like(parsed.timeouts, { tcpEstablished: 7200, tcpFinWait: 30, udp: 300 });

  const only = importKeepalivedConf("global_defs {\n  lvs_timeouts udp 60 tcpsyn 5 tcpfin x\n}\n");
  t.deepEqual(only.config.timeouts, { udp: 60 });
  t.deepEqual(only.notes.map((n) => n.note), [
    "lvs_timeouts tcpsyn is not tcp, tcpfin or udp: not imported",
    "lvs_timeouts tcpfin x is not a number of seconds 0..2147483: not imported",
  ], "a global_defs with nothing but lvs_timeouts is not listed as skipped");
  t.is(importKeepalivedConf("virtual_server 198.18.0.100 80 {\n}\n").config.timeouts, undefined);
});

test("keepalived.conf: a virtual_server without protocol is UDP, as keepalived takes it (keepalived -t: \"no protocol set - defaulting to UDP\"), with a note", (t) => {
  const { config, notes } = importText("keepalived", "virtual_server 198.18.0.100 80 {\n lb_algo rr\n real_server 198.18.1.11 80 {\n  weight 1\n }\n}\n");
  t.like(config.services[0], { vip: "198.18.0.100", port: 80, protocol: "udp", scheduler: "rr" });
  t.regex(notes.map((n) => n.note).join("\n"), /no protocol: imported as UDP/);
});
