// Configuration field `workerThreads`: "auto", "one" or "perInterface", "auto" when left out,
// anything else refused at its own path with what to write, and the reload diff.

import test from "ava";
import { diffConfig } from "../src/config";
import { configField } from "./support/configField";

const { parsed, refusal } = configField("workerThreads");

test("absent, workerThreads is \"auto\"; the three settings are taken as written", (t) => {
  t.is(parsed(undefined).workerThreads, "auto");
  for (const value of ["auto", "one", "perInterface"] as const) t.is(parsed(value).workerThreads, value);
  t.deepEqual(parsed("auto"), parsed(undefined), "\"auto\" is the default: the same configuration");
  t.deepEqual({ ...parsed("one"), workerThreads: "auto" }, parsed(undefined), "it changes no other setting");
});

test("anything else is refused at its path, saying what to write", (t) => {
  const cases: Array<[unknown, string]> = [
    ["One", '"One"'],
    ["per-interface", '"per-interface"'],
    [2, "2"],
    [true, "true"],
    [null, "null"],
  ];
  for (const [value, shown] of cases) {
    const error = refusal(value);
    t.is(error.path, "workerThreads", JSON.stringify(value));
    t.is(error.message, `config: workerThreads: expected one of "auto", "one", "perInterface", got ${shown}`, JSON.stringify(value));
  }
});

test("a reload diff names workerThreads when it changes, and only then", (t) => {
  t.deepEqual(diffConfig(parsed("auto"), parsed("one")).settings, ["workerThreads"]);
  t.deepEqual(diffConfig(parsed("perInterface"), parsed("perInterface")).settings, []);
});
