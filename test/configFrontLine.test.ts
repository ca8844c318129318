// Configuration of the front line: `floodProtection` (how the flow map gives way to floods) and each
// service's `deadRealFlows` (what happens to a dead real's flows): defaults, refusals at their own
// path with what to write, and the reload diff.

import test from "ava";
import { DEFAULT_FLOOD_PROTECTION, diffConfig, parseConfig } from "../src/config";
import { SERVICE, configField } from "./support/configField";

const { parsed, refusal } = configField("floodProtection");

test("absent, floodProtection takes its defaults: half the map per unassured class, pressure from half full, 5 s", (t) => {
  t.deepEqual(parsed(undefined).floodProtection, { halfOpenShare: 0.5, unassuredUdpShare: 0.5, pressureAt: 0.5, pressureTimeout: 5 });
  t.deepEqual(parsed(undefined).floodProtection, DEFAULT_FLOOD_PROTECTION);
  t.deepEqual(parsed({}).floodProtection, DEFAULT_FLOOD_PROTECTION);
});

test("floodProtection fields are taken as written, the others keep their defaults", (t) => {
  const config = parsed({ halfOpenShare: 0.25, pressureTimeout: 2 });
  t.deepEqual(config.floodProtection, { ...DEFAULT_FLOOD_PROTECTION, halfOpenShare: 0.25, pressureTimeout: 2 });
  t.is(parsed({ pressureAt: 0 }).floodProtection.pressureAt, 0, "0: always under pressure");
  t.is(parsed({ unassuredUdpShare: 1 }).floodProtection.unassuredUdpShare, 1);
});

test("bad floodProtection values are refused at their path, saying what to write", (t) => {
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ halfOpenShare: 0 }, "floodProtection.halfOpenShare", /expected a share of the flow map 0\.05\.\.1, like 0\.5, got 0/],
    [{ halfOpenShare: 1.5 }, "floodProtection.halfOpenShare", /got 1\.5/],
    [{ unassuredUdpShare: "half" }, "floodProtection.unassuredUdpShare", /got "half"/],
    [{ pressureAt: -0.1 }, "floodProtection.pressureAt", /0\.\.1/],
    [{ pressureTimeout: 0 }, "floodProtection.pressureTimeout", /an integer 1\.\.3600, got 0/],
    [{ pressureTimeout: 2.5 }, "floodProtection.pressureTimeout", /an integer 1\.\.3600/],
    [{ pressureTimeOut: 5 }, "floodProtection.pressureTimeOut", /unknown field/],
  ];
  for (const [value, path, message] of cases) {
    const error = refusal(value);
    t.is(error.path, path, JSON.stringify(value));
    t.regex(error.message, message, JSON.stringify(value));
  }
  t.regex(refusal(0.5).message, /^config: floodProtection: expected an object like/);
});

test("deadRealFlows defaults to keep for TCP services and drop for UDP ones", (t) => {
  const config = parseConfig({
    services: [SERVICE, { ...SERVICE, port: 53, protocol: "udp" }],
  });
  t.deepEqual(config.services.map((s) => s.deadRealFlows), ["keep", "drop"]);
});

test("deadRealFlows takes keep, drop or reset, and refuses anything else at its path", (t) => {
  for (const value of ["keep", "drop", "reset"] as const) {
    t.is(parseConfig({ services: [{ ...SERVICE, deadRealFlows: value }] }).services[0]!.deadRealFlows, value);
  }
  for (const value of ["expire", "RESET", true, 1]) {
    const error = t.throws(() => parseConfig({ services: [{ ...SERVICE, deadRealFlows: value }] }));
    t.regex(error!.message, /^config: services\[0\]\.deadRealFlows: expected one of "keep", "drop", "reset"/, JSON.stringify(value));
  }
});

test("the reload diff names floodProtection and a service's deadRealFlows", (t) => {
  const before = parseConfig({ services: [SERVICE] });
  const after = parseConfig({ services: [{ ...SERVICE, deadRealFlows: "reset" }], floodProtection: { pressureTimeout: 3 } });
  const diff = diffConfig(before, after);
  t.deepEqual(diff.settings, ["floodProtection"]);
  t.deepEqual(diff.changed.map((c) => c.fields), [["deadRealFlows"]]);
  t.deepEqual(diffConfig(before, parseConfig({ services: [SERVICE] })).settings, []);
});
