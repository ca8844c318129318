// The pair's role without packets: keepalived's notify arguments, the config block, the role as the
// control plane keeps it and hands it to the engine, and the engine's own surface. The packets (ARP
// silence, takeover announcements, failover) are test/e2e-ha-pair.test.ts.
import test from "ava";
import { parseConfig } from "../src/config";
import { ConfigError, NatlbError } from "../src/errors";
import { FlowMap } from "../src/flows/flowMap";
import { parseKeepalivedNotify, parseNotifyFifoLine, noticeText } from "../src/ha/keepalivedNotify";
import { PairRole } from "../src/ha/pairRole";
import { loadNative, type GatewayRole } from "../src/native";

const SERVICES = [{ vip: "198.18.0.100", port: 80, reals: [{ ip: "198.18.1.11" }] }];

test("keepalived's notify arguments: each state gives its role; anything else is a usage error naming the part", (t) => {
  t.like(parseKeepalivedNotify(["INSTANCE", "VI_1", "MASTER", "100"]), { type: "INSTANCE", name: "VI_1", role: "master", priority: 100 });
  t.like(parseKeepalivedNotify(["GROUP", "G1", "BACKUP"]), { role: "backup", priority: undefined });
  for (const state of ["FAULT", "STOP", "DELETED"]) t.is(parseKeepalivedNotify(["INSTANCE", "VI_1", state, "90"]).role, "fault", state);
  t.is(noticeText(parseKeepalivedNotify(["INSTANCE", "VI_1", "MASTER", "100"])), "keepalived notify INSTANCE VI_1 MASTER 100");
  const refused: Array<[string[], RegExp]> = [
    [["INSTANCE", "VI_1"], /2 argument/],
    [["INSTANCE", "VI_1", "MASTER", "100", "extra"], /5 argument/],
    [["VRRP", "VI_1", "MASTER", "100"], /TYPE "VRRP"/],
    [["INSTANCE", "VI_1", "master", "100"], /STATE "master"/],
    [["INSTANCE", "VI_1", "MASTER", "256"], /PRIORITY "256"/],
    [["INSTANCE", "VI_1", "MASTER", "-1"], /PRIORITY "-1"/],
  ];
  for (const [args, message] of refused) {
    const error = t.throws(() => parseKeepalivedNotify(args), { instanceOf: NatlbError, message });
    t.is(error?.code, "E_USAGE");
  }
});

test("keepalived's notify FIFO lines: the name quoted; priority-only lines change no role; anything else is refused", (t) => {
  t.like(parseNotifyFifoLine('INSTANCE "VI_1" MASTER 100'), { type: "INSTANCE", name: "VI_1", role: "master", priority: 100 });
  t.like(parseNotifyFifoLine('GROUP "G 1" BACKUP'), { type: "GROUP", name: "G 1", role: "backup" });
  t.like(parseNotifyFifoLine('INSTANCE "a\\"b" FAULT 0\n'), { name: 'a"b', role: "fault" });
  for (const line of ['INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100', 'INSTANCE "VI_1" MASTER_PRIORITY 120', 'INSTANCE "VI_1" BACKUP_PRIORITY 90']) {
    t.is(parseNotifyFifoLine(line), undefined, line);
  }
  for (const line of ["INSTANCE VI_1 MASTER 100", 'INSTANCE "VI_1" PRIMARY 100', "", 'VS "x" UP']) {
    t.throws(() => parseNotifyFifoLine(line), { instanceOf: NatlbError }, line);
  }
});

test("config ha: defaults to a backup with 3 announcement rounds 100 ms apart; left out it is absent; bad values are refused", (t) => {
  t.is(parseConfig({ services: SERVICES }).ha, undefined);
  t.deepEqual(parseConfig({ services: SERVICES, ha: {} }).ha, { initialRole: "backup", gratuitousArpRounds: 3, gratuitousArpIntervalMs: 100 });
  t.is(parseConfig({ services: SERVICES, ha: { initialRole: "master" } }).ha?.initialRole, "master");
  for (const ha of [{ initialRole: "fault" }, { gratuitousArpRounds: 0 }, { gratuitousArpIntervalMs: 5 }, { peer: "198.18.0.2" }, "master"]) {
    t.throws(() => parseConfig({ services: SERVICES, ha }), { instanceOf: ConfigError, message: /ha/ }, JSON.stringify(ha));
  }
});

test("PairRole: sets the initial role before start, hands changes to the engine with the announcement settings, ignores repeats", (t) => {
  const calls: Array<[GatewayRole, { rounds: number; intervalMs: number }]> = [];
  const engine = { setGatewayRole: (role: GatewayRole, announcement: { rounds: number; intervalMs: number }) => void calls.push([role, announcement]) };
  const role = new PairRole(engine, { initialRole: "backup", gratuitousArpRounds: 5, gratuitousArpIntervalMs: 200 });
  t.deepEqual(calls, [["backup", { rounds: 5, intervalMs: 200 }]]);
  t.like(role.status(), { role: "backup", transitions: 0, reason: "config ha.initialRole" });
  t.deepEqual(role.apply("master", "keepalived notify INSTANCE VI_1 MASTER 100"), { previous: "backup", role: "master", changed: true });
  t.deepEqual(role.apply("master", "again"), { previous: "master", role: "master", changed: false });
  t.is(calls.length, 2);
  role.reconfigure({ initialRole: "backup", gratuitousArpRounds: 2, gratuitousArpIntervalMs: 50 });
  role.apply("fault", "natlb ha fault");
  t.deepEqual(calls[2], ["fault", { rounds: 2, intervalMs: 50 }]);
  t.like(role.status(), { role: "fault", transitions: 2, reason: "natlb ha fault" });
});

test("the engine's gateway role: master by default, set and read back; a bad role or announcement is a TypeError/RangeError", (t) => {
  const native = loadNative();
  const flows = new FlowMap(16);
  const engine = new native.Engine({
    flowTable: flows.bytes,
    interfaces: [{ name: "lo", ifindex: 1, mac: "00:00:00:00:00:00", role: "client", addresses: [], receivePath: "af_packet" }],
  });
  t.is(engine.gatewayRole(), "master");
  engine.setGatewayRole("backup", { rounds: 3, intervalMs: 100 });
  t.is(engine.gatewayRole(), "backup");
  engine.setGatewayRole("fault", { rounds: 3, intervalMs: 100 });
  t.is(engine.gatewayRole(), "fault");
  t.throws(() => engine.setGatewayRole("primary" as GatewayRole, { rounds: 3, intervalMs: 100 }), { instanceOf: TypeError, message: /master/ });
  t.throws(() => engine.setGatewayRole("master", { rounds: 101, intervalMs: 100 }), { instanceOf: RangeError, message: /rounds/ });
  t.throws(() => engine.setGatewayRole("master", { rounds: 3, intervalMs: 0 }), { instanceOf: RangeError, message: /intervalMs/ });
  t.is(engine.gatewayRole(), "fault");
});
