// Configuration field `receivePath`: the string and object forms, defaults, errors named by their
// field path, unknown keys, and the reload diff.

import test from "ava";
import { RECEIVE_PATHS, diffConfig, parseConfig, parseConfigText } from "../src/config";
import { ConfigError } from "../src/errors";
import { SERVICE, configField } from "./support/configField";

const { withValue: withPath, parsed, refusal } = configField("receivePath");

test("the receive paths are exactly af_packet and af_xdp", (t) => {
  t.deepEqual([...RECEIVE_PATHS], ["af_packet", "af_xdp"]);
});

test("absent, receivePath is af_packet on every interface", (t) => {
  t.deepEqual(parsed(undefined).receivePath, { default: "af_packet", interfaces: {} });
});

test("the string form sets the default for every interface", (t) => {
  t.deepEqual(parsed("af_xdp").receivePath, { default: "af_xdp", interfaces: {} });
  t.deepEqual(parsed("af_packet").receivePath, { default: "af_packet", interfaces: {} });
});

test("the object form: default and interfaces each take their default when left out", (t) => {
  t.deepEqual(parsed({}).receivePath, { default: "af_packet", interfaces: {} });
  t.deepEqual(parsed({ default: "af_xdp" }).receivePath, { default: "af_xdp", interfaces: {} });
  t.deepEqual(parsed({ interfaces: { eth1: "af_xdp" } }).receivePath, { default: "af_packet", interfaces: { eth1: "af_xdp" } });
  t.deepEqual(parsed({ default: "af_xdp", interfaces: { eth0: "af_packet", eth1: "af_xdp" } }).receivePath, {
    default: "af_xdp",
    interfaces: { eth0: "af_packet", eth1: "af_xdp" },
  });
});

test("the string form and the equivalent object form parse to the same configuration", (t) => {
  t.deepEqual(parsed("af_xdp"), parsed({ default: "af_xdp" }));
  t.deepEqual(parsed("af_xdp"), parsed({ default: "af_xdp", interfaces: {} }));
  t.deepEqual(parsed(undefined), parsed("af_packet"));
});

test("receivePath from JSON text (as natlb check-config reads a file)", (t) => {
  const text = JSON.stringify(withPath({ default: "af_packet", interfaces: { eth1: "af_xdp" } }), null, 2);
  t.deepEqual(parseConfigText(text, "natlb.json").receivePath, { default: "af_packet", interfaces: { eth1: "af_xdp" } });
  const bad = t.throws(() => parseConfigText(JSON.stringify(withPath({ interfaces: { eth1: "xdp" } })), "natlb.json"), {
    instanceOf: ConfigError,
  });
  t.is(bad!.path, "receivePath.interfaces.eth1");
  t.regex(bad!.message, /\(in natlb\.json\)$/);
});

test("a bad default is named receivePath.default, in both forms, with the accepted values", (t) => {
  for (const value of ["xdp", "AF_XDP", "af-packet", ""]) {
    for (const form of [value, { default: value }]) {
      const error = refusal(form);
      t.is(error.path, "receivePath.default", JSON.stringify(form));
      t.regex(error.message, /^config: receivePath\.default: expected one of "af_packet", "af_xdp", got /, JSON.stringify(form));
      t.true(error.message.includes(JSON.stringify(value)), error.message);
    }
  }
  for (const value of [1, true, null, ["af_xdp"], { mode: "af_xdp" }]) {
    const error = refusal({ default: value });
    t.is(error.path, "receivePath.default", JSON.stringify(value));
  }
});

test("a bad per-interface path is named receivePath.interfaces.<name>, every bad one listed", (t) => {
  const one = refusal({ interfaces: { eth1: "xdp" } });
  t.is(one.path, "receivePath.interfaces.eth1");
  t.is(one.message, 'config: receivePath.interfaces.eth1: expected one of "af_packet", "af_xdp", got "xdp"');

  const several = refusal({ default: "af_xdp", interfaces: { eth0: "af_xdp", eth1: null, eth2: 3 } });
  t.deepEqual(
    several.issues.map((i) => i.path),
    ["receivePath.interfaces.eth1", "receivePath.interfaces.eth2"],
  );
  t.regex(several.message, /receivePath\.interfaces\.eth1: .*got null/);
  t.regex(several.message, /receivePath\.interfaces\.eth2: .*got 3/);
});

test("interface names in receivePath.interfaces follow the Linux rules", (t) => {
  for (const name of ["a/b", "eth 0", "eth:0", "abcdefghijklmnop", ""]) {
    const error = refusal({ interfaces: { [name]: "af_xdp" } });
    t.true(error.path.startsWith("receivePath.interfaces"), `${JSON.stringify(name)}: path ${error.path}`);
    t.true(error.message.includes(JSON.stringify(name)), `${JSON.stringify(name)}: ${error.message}`);
  }
  // 15 bytes is the longest Linux name (IFNAMSIZ - 1).
  t.deepEqual(parsed({ interfaces: { abcdefghijklmno: "af_xdp" } }).receivePath.interfaces, { abcdefghijklmno: "af_xdp" });
});

test("receivePath of the wrong type is named receivePath and says what to write", (t) => {
  for (const value of [5, null, true, ["af_xdp"]]) {
    const error = refusal(value);
    t.is(error.path, "receivePath", JSON.stringify(value));
    t.regex(error.message, /"af_packet", "af_xdp", or an object like/, JSON.stringify(value));
  }
  const list = refusal({ interfaces: ["eth1"] });
  t.is(list.path, "receivePath.interfaces");
  t.regex(list.message, /expected an object of interface names and paths/);
  const text = refusal({ interfaces: "eth1" });
  t.is(text.path, "receivePath.interfaces");
});

test("unknown keys in receivePath are refused at their own path", (t) => {
  const typo = refusal({ defualt: "af_xdp" });
  t.is(typo.path, "receivePath.defualt");
  t.regex(typo.message, /unknown field/);
  const extra = refusal({ default: "af_xdp", interfaces: {}, queues: 4 });
  t.is(extra.path, "receivePath.queues");
  const caps = refusal({ Default: "af_xdp" });
  t.is(caps.path, "receivePath.Default");
  // The top-level name is case-sensitive too.
  const top = t.throws(() => parseConfig({ services: [SERVICE], receivepath: "af_xdp" }), { instanceOf: ConfigError });
  t.is(top!.path, "receivepath");
});

test("a receivePath problem is reported beside problems elsewhere in the file", (t) => {
  const error = t.throws(
    () => parseConfig({ services: [{ ...SERVICE, port: 0 }], receivePath: { default: "xdp" } }),
    { instanceOf: ConfigError },
  );
  const paths = error!.issues.map((i) => i.path);
  t.true(paths.includes("services[0].port"), paths.join(", "));
  t.true(paths.includes("receivePath.default"), paths.join(", "));
});

test("diffConfig lists receivePath in settings when it changes, and only then", (t) => {
  const settings = (a: unknown, b: unknown) => diffConfig(parsed(a), parsed(b)).settings;
  t.deepEqual(settings(undefined, "af_xdp"), ["receivePath"]);
  t.deepEqual(settings("af_xdp", "af_packet"), ["receivePath"]);
  t.deepEqual(settings("af_packet", { interfaces: { eth1: "af_xdp" } }), ["receivePath"]);
  t.deepEqual(settings({ interfaces: { eth1: "af_xdp" } }, { interfaces: { eth1: "af_packet" } }), ["receivePath"]);
  t.deepEqual(settings({ interfaces: { eth1: "af_xdp" } }, { interfaces: { eth0: "af_xdp" } }), ["receivePath"]);
  t.deepEqual(settings({ default: "af_xdp", interfaces: { eth1: "af_xdp" } }, { interfaces: { eth1: "af_xdp" } }), ["receivePath"]);

  // The same setting written in another form is no change.
  t.deepEqual(settings(undefined, "af_packet"), []);
  t.deepEqual(settings(undefined, {}), []);
  t.deepEqual(settings("af_xdp", { default: "af_xdp" }), []);
  t.deepEqual(settings({ interfaces: { eth1: "af_xdp" } }, { default: "af_packet", interfaces: { eth1: "af_xdp" } }), []);
  // Key order, and naming an interface with the default path, change nothing either.
  t.deepEqual(settings({ interfaces: { eth0: "af_xdp", eth1: "af_packet" } }, { interfaces: { eth1: "af_packet", eth0: "af_xdp" } }), []);
  t.deepEqual(settings("af_packet", { interfaces: { eth1: "af_packet" } }), []);
});

test("a bad interface name in receivePath.interfaces is reported as a name, at its own path", (t) => {
  t.regex(refusal({ interfaces: { "a/b": "af_xdp" } }).message, /receivePath\.interfaces\.a\/b: expected an interface name/);
  t.regex(refusal({ interfaces: { "": "af_xdp" } }).message, /receivePath\.interfaces\[""\]: expected an interface name/);
});

test("diffConfig reports receivePath beside the other settings and the service changes", (t) => {
  const old = parseConfig({ services: [SERVICE], flowCapacity: 1024 });
  const next = parseConfig({ services: [{ ...SERVICE, scheduler: "rr" }], flowCapacity: 2048, receivePath: "af_xdp" });
  const diff = diffConfig(old, next);
  t.deepEqual([...diff.settings].sort(), ["flowCapacity", "receivePath"]);
  t.is(diff.changed.length, 1);
  t.deepEqual(diff.changed[0]!.fields, ["scheduler"]);
});
