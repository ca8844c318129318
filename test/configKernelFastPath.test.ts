// Configuration field `kernelFastPath`: "auto", true or false, "auto" when left out, anything else
// refused at its own path with what to write, and the reload diff.

import test from "ava";
import { diffConfig, parseConfig, parseConfigText } from "../src/config";
import { ConfigError } from "../src/errors";
import { SERVICE, configField } from "./support/configField";

const { withValue: withFastPath, parsed, refusal } = configField("kernelFastPath");

test("absent, kernelFastPath is \"auto\"", (t) => {
  t.is(parsed(undefined).kernelFastPath, "auto");
});

test("\"auto\", true and false are taken as written", (t) => {
  t.is(parsed("auto").kernelFastPath, "auto");
  t.is(parsed(true).kernelFastPath, true);
  t.is(parsed(false).kernelFastPath, false);
  t.deepEqual(parsed("auto"), parsed(undefined), "\"auto\" is the default: the same configuration");
});

test("kernelFastPath does not change the other settings", (t) => {
  const on = parsed(true);
  const byDefault = parsed(undefined);
  t.deepEqual({ ...on, kernelFastPath: "auto" }, byDefault);
  t.deepEqual({ ...parsed(false), kernelFastPath: "auto" }, byDefault);
  t.deepEqual(on.receivePath, { default: "af_packet", interfaces: {} });
});

test("kernelFastPath with receivePath af_xdp is a valid configuration", (t) => {
  const config = parseConfig({ services: [SERVICE], kernelFastPath: true, receivePath: "af_xdp" });
  t.true(config.kernelFastPath);
  t.is(config.receivePath.default, "af_xdp");
});

test("anything but \"auto\", true or false is refused at its path, saying what to write", (t) => {
  const cases: Array<[unknown, string]> = [
    ["yes", '"yes"'],
    ["Auto", '"Auto"'],
    ["on", '"on"'],
    ["true", '"true"'],
    ["false", '"false"'],
    ["", '""'],
    [1, "1"],
    [0, "0"],
    [null, "null"],
    [["true"], "a list"],
    [{ enabled: true }, "an object"],
  ];
  for (const [value, shown] of cases) {
    const error = refusal(value);
    t.is(error.path, "kernelFastPath", JSON.stringify(value));
    t.is(error.message, `config: kernelFastPath: expected "auto", true or false, got ${shown}`, JSON.stringify(value));
  }
});

test("kernelFastPath from JSON text (as natlb check-config reads a file)", (t) => {
  t.is(parseConfigText(JSON.stringify(withFastPath(true), null, 2), "natlb.json").kernelFastPath, true);
  t.is(parseConfigText(JSON.stringify(withFastPath(false), null, 2), "natlb.json").kernelFastPath, false);
  t.is(parseConfigText(JSON.stringify(withFastPath(undefined)), "natlb.json").kernelFastPath, "auto");
  const bad = t.throws(() => parseConfigText(JSON.stringify(withFastPath("on")), "natlb.json"), { instanceOf: ConfigError });
  t.is(bad!.path, "kernelFastPath");
  t.regex(bad!.message, /^config: kernelFastPath: expected "auto", true or false, got "on" \(in natlb\.json\)$/);
});

test("the name is case-sensitive: other spellings are unknown fields", (t) => {
  for (const name of ["kernelfastpath", "KernelFastPath", "kernel_fast_path"]) {
    const error = t.throws(() => parseConfig({ services: [SERVICE], [name]: true }), { instanceOf: ConfigError });
    t.is(error!.path, name);
    t.regex(error!.message, /unknown field/);
  }
});

test("a kernelFastPath problem is reported beside problems elsewhere in the file", (t) => {
  const error = t.throws(() => parseConfig({ services: [{ ...SERVICE, port: 0 }], kernelFastPath: "yes" }), { instanceOf: ConfigError });
  const paths = error!.issues.map((i) => i.path);
  t.true(paths.includes("services[0].port"), paths.join(", "));
  t.true(paths.includes("kernelFastPath"), paths.join(", "));
});

test("diffConfig lists kernelFastPath in settings when it changes, and only then", (t) => {
  const settings = (a: unknown, b: unknown) => diffConfig(parsed(a), parsed(b)).settings;
  t.deepEqual(settings(undefined, true), ["kernelFastPath"]);
  t.deepEqual(settings(false, true), ["kernelFastPath"]);
  t.deepEqual(settings(true, false), ["kernelFastPath"]);
  t.deepEqual(settings(true, undefined), ["kernelFastPath"]);
  t.deepEqual(settings(false, undefined), ["kernelFastPath"]);
  t.deepEqual(settings("auto", false), ["kernelFastPath"]);
  t.deepEqual(settings(true, true), []);
  t.deepEqual(settings("auto", undefined), [], "\"auto\" written out is no change from the default");
  t.deepEqual(settings(undefined, undefined), []);
});

test("diffConfig reports kernelFastPath beside the other settings and the service changes", (t) => {
  const old = parseConfig({ services: [SERVICE], flowCapacity: 1024 });
  const next = parseConfig({ services: [{ ...SERVICE, scheduler: "rr" }], flowCapacity: 2048, kernelFastPath: true, receivePath: "af_xdp" });
  const diff = diffConfig(old, next);
  t.deepEqual([...diff.settings].sort(), ["flowCapacity", "kernelFastPath", "receivePath"]);
  t.is(diff.changed.length, 1);
  t.deepEqual(diff.changed[0]!.fields, ["scheduler"]);
});
