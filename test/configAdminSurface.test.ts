// Configuration of the admin surface: `control` (the roles' groups) and `metrics` (loopback unless
// allowNonLoopback). Absent, both keep what a config without them always meant.
import test from "ava";
import { diffConfig } from "../src/config";
import { configField } from "./support/configField";

const control = configField("control");
const metrics = configField("metrics");

test("absent, control names no groups: root and natlb's user only", (t) => {
  t.deepEqual(control.parsed(undefined).control, { readGroup: undefined, adminGroup: undefined });
});

test("control takes group names and numeric gids", (t) => {
  t.deepEqual(control.parsed({ readGroup: "natlb-read", adminGroup: 0 }).control, { readGroup: "natlb-read", adminGroup: 0 });
  t.deepEqual(control.parsed({ adminGroup: "wheel" }).control, { readGroup: undefined, adminGroup: "wheel" });
});

test("control refuses bad group names, gids and unknown fields at their path", (t) => {
  const cases: Array<[unknown, string, RegExp]> = [
    [{ readGroup: "natlb read" }, "control.readGroup", /a group name like "natlb-read" or a numeric gid/],
    [{ adminGroup: -1 }, "control.adminGroup", /a group name like "natlb-admin" or a numeric gid/],
    [{ adminGroup: 1.5 }, "control.adminGroup", /numeric gid/],
    [{ readGroup: "x".repeat(40) }, "control.readGroup", /group name/],
    [{ writeGroup: "natlb" }, "control.writeGroup", /unknown field/],
    ["natlb", "control", /an object like/],
  ];
  for (const [value, path, message] of cases) {
    const error = control.refusal(value);
    t.is(error.path, path, JSON.stringify(value));
    t.regex(error.message, message);
  }
});

test("a control change is listed in the reload diff", (t) => {
  t.deepEqual(diffConfig(control.parsed(undefined), control.parsed({ readGroup: "natlb-read" })).settings, ["control"]);
  t.deepEqual(diffConfig(control.parsed({ readGroup: "a" }), control.parsed({ readGroup: "a" })).settings, []);
});

test("metrics on loopback are taken as written, allowNonLoopback false by default", (t) => {
  t.deepEqual(metrics.parsed({ listen: "127.0.0.1:9910" }).metrics, { listen: "127.0.0.1:9910", allowNonLoopback: false });
  t.deepEqual(metrics.parsed({ listen: "127.3.2.1:9910" }).metrics?.listen, "127.3.2.1:9910");
  t.is(metrics.parsed(undefined).metrics, undefined);
});

test("metrics on a non-loopback address are refused unless allowNonLoopback is true", (t) => {
  for (const listen of ["0.0.0.0:9910", "198.18.0.1:9910", "10.0.0.1:80"]) {
    const error = metrics.refusal({ listen });
    t.is(error.path, "metrics.listen");
    t.regex(error.message, new RegExp(`${listen.replace(/[.]/g, "\\.")} is not a loopback address: the metrics have no authentication`));
    t.regex(error.message, /GET \/metrics on the control socket|metrics\.allowNonLoopback/);
    t.deepEqual(metrics.parsed({ listen, allowNonLoopback: true }).metrics, { listen, allowNonLoopback: true });
  }
  t.regex(metrics.refusal({ listen: "127.0.0.1:9910", allowNonLoopback: "yes" }).message, /metrics\.allowNonLoopback: expected true or false/);
});
