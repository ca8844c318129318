// The failover lab's report (bench/failoverReport.ts) from made-up rounds, and its place in the options:
// only when asked for.
import test from "ava";
import { buildFailoverReport, formatFailoverReport } from "../bench/failoverReport";
import type { FailoverLabResult } from "../bench/failoverLab";
import { resolveOptions } from "../bench/options";

const SETTINGS: FailoverLabResult["settings"] = { advertIntervalS: 0.2, notify: "fifo", realRate: "400mbit", bytes: 256 * 1024 * 1024 };

test("failover report: medians and spreads of the gap and of the takeover, intact downloads counted", (t) => {
  const report = buildFailoverReport({
    settings: SETTINGS,
    rounds: [
      { round: 1, gapMs: 1200, resolutionMs: 40, masterAfterMs: 800, downloadIntact: true },
      { round: 2, gapMs: 900, resolutionMs: 50, masterAfterMs: 700, downloadIntact: true },
      { round: 3, gapMs: 1600, resolutionMs: 45, masterAfterMs: 900, downloadIntact: false },
    ],
    errors: [],
    stoppedEarly: null,
  });
  t.like(report.gapMs, { median: 1200, min: 900, max: 1600, n: 3 });
  t.like(report.masterAfterMs, { median: 800, min: 700, max: 900 });
  t.is(report.intactDownloads, 2);
  const text = formatFailoverReport(report).join("\n");
  t.regex(text, /advert_int 0\.2 s, notify fifo, reals at 400mbit/);
  t.regex(text, /gap \(kill -> bytes moving again\) 1200 \(900\.\.1600\) ms; backup master after 800 \(700\.\.900\) ms; downloads intact 2\/3/);
});

test("failover report: no round, no numbers", (t) => {
  const report = buildFailoverReport({ settings: SETTINGS, rounds: [], errors: ["failover round 1: boom"], stoppedEarly: null });
  t.is(report.gapMs, null);
  t.regex(formatFailoverReport(report).join("\n"), /gap \(kill -> bytes moving again\) n\/a ms; .* downloads intact 0\/0/);
});

test("the failover lab runs only when asked for", (t) => {
  t.false(resolveOptions({}, "/tmp/x.json").labs.includes("failover"));
  t.deepEqual(resolveOptions({ labs: ["failover"] }, "/tmp/x.json").labs, ["failover"]);
});
