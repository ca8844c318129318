// The flood case's arithmetic: when a step passes, how the rate ladder is climbed, natlb's ratio to
// kernel NAT with its bound, the table, and the flood options. No flood runs here (bench/ does that);
// these check that the report says what the steps say.
import test from "ava";
import { newFloodStep, type FloodStep } from "../bench/floodLab";
import { compareFlood, floodVerdict, formatFloodReport, stepPassed, type FloodReport } from "../bench/floodReport";
import { BenchUsageError, resolveOptions } from "../bench/options";
import { parseBenchArgs } from "../bench/run";
import type { FloodKind, FloodSummary } from "../lab/flood";
import type { ProbeCounts, ProbeSummary } from "../lab/pacedProbes";
import type { VariantId } from "../bench/variants";

function counts(succeeded: number, attempted: number): ProbeCounts {
  return { attempted, succeeded, errors: attempted > succeeded ? { timeout: attempted - succeeded } : {}, latencyMs: null };
}

function probes(succeeded: number, attempted: number, udp?: [number, number]): ProbeSummary {
  return { seconds: 1, tcp: counts(succeeded, attempted), udp: udp === undefined ? null : counts(udp[0], udp[1]) };
}

/** A step with `during` and `after` as "succeeded/attempted" of the new connections (before: all 20 ok). */
function step(variant: VariantId, kind: FloodKind, pps: number, during: [number, number], after: [number, number], cores: number | null = null): FloodStep {
  return {
    ...newFloodStep(kind, variant, pps, 0, "198.18.0.25"),
    setUpMs: 100,
    before: probes(20, 20),
    during: probes(...during),
    after: probes(...after),
    flood: { rate: pps * 0.99, sent: pps * 4 } as FloodSummary,
    cpu: { seconds: 4, balancerCores: cores, machineBusy: 0.5 },
  };
}

test("a step passes with >= 95 % of new connections during the flood and all of them after", (t) => {
  t.true(stepPassed(step("natlb", "syn", 1000, [95, 100], [60, 60])));
  t.false(stepPassed(step("natlb", "syn", 1000, [94, 100], [60, 60])), "94 % during");
  t.false(stepPassed(step("natlb", "syn", 1000, [100, 100], [59, 60])), "one failed after the flood");
  const broken = step("natlb", "syn", 1000, [100, 100], [60, 60]);
  broken.before = probes(19, 20);
  t.is(stepPassed(broken), null, "the path did not work before the flood: the step measured nothing");
  const unset = step("natlb", "syn", 1000, [100, 100], [60, 60]);
  unset.during = null;
  t.is(stepPassed(unset), null);
  // UDP requests are reported, the verdict is on new connections.
  const udp = step("natlb", "udp", 1000, [100, 100], [60, 60]);
  udp.during = probes(100, 100, [10, 100]);
  t.true(stepPassed(udp));
});

test("the ladder is climbed up to the first failure; CPU and sent rate come from that step", (t) => {
  const steps = [
    step("natlb", "syn", 50_000, [40, 100], [0, 60], 1.0),
    step("natlb", "syn", 12_500, [100, 100], [60, 60], 0.3),
    step("natlb", "syn", 25_000, [99, 100], [60, 60], 0.6),
    step("natlb", "syn", 100_000, [100, 100], [60, 60], 1.9), // passes again, but above a failure: not counted
    step("kernelNat", "syn", 12_500, [100, 100], [60, 60]),
  ];
  const v = floodVerdict(steps, "natlb", "syn");
  t.deepEqual(v?.ladder, [12_500, 25_000, 50_000, 100_000]);
  t.is(v?.highestOkPps, 25_000);
  t.is(v?.firstFailPps, 50_000);
  t.is(v?.balancerCores, 0.6);
  t.is(v?.sentPps, 25_000 * 0.99);
  t.is(floodVerdict(steps, "natlb", "udp"), null, "no UDP steps ran");
  const none = floodVerdict([step("natlb", "udp", 12_500, [10, 100], [60, 60])], "natlb", "udp");
  t.is(none?.highestOkPps, null);
  t.is(none?.firstFailPps, 12_500);
});

test("natlb / kernel NAT: exact, or bounded when a side passed every step or failed the lowest", (t) => {
  const ladder = [12_500, 25_000, 50_000, 100_000];
  const run = (variant: VariantId, passUpTo: number): FloodStep[] =>
    ladder.map((pps) => (pps <= passUpTo ? step(variant, "syn", pps, [100, 100], [60, 60]) : step(variant, "syn", pps, [0, 100], [0, 60])));
  const exact = compareFlood([...run("kernelNat", 50_000), ...run("natlb", 25_000)], "syn");
  t.is(exact.ratio, 0.5);
  t.is(exact.ratioText, "0.50");
  const natlbLowest = compareFlood([...run("kernelNat", 50_000), ...run("natlb", 0)], "syn");
  t.is(natlbLowest.ratio, null);
  t.is(natlbLowest.ratioText, "< 0.25 (natlb failed the lowest rate)");
  const kernelTop = compareFlood([...run("kernelNat", 100_000), ...run("natlb", 12_500)], "syn");
  t.is(kernelTop.ratio, 0.125);
  t.regex(kernelTop.ratioText, /^<= 0\.13 \(kernel NAT passed every step\)$/);
  const natlbTop = compareFlood([...run("kernelNat", 25_000), ...run("natlb", 100_000)], "syn");
  t.is(natlbTop.ratio, 4);
  t.regex(natlbTop.ratioText, /^>= 4\.0 \(natlb passed every step\)$/);
  t.regex(compareFlood([...run("kernelNat", 100_000), ...run("natlb", 100_000)], "syn").ratioText, /both passed every step/);
  t.regex(compareFlood([...run("kernelNat", 0), ...run("natlb", 0)], "syn").ratioText, /both failed the lowest rate/);
  t.is(compareFlood(run("natlb", 0), "syn").ratioText, "n/a", "kernel NAT did not run");
});

test("a generator that fell short of the asked rate is marked, and the ratio compares the rates sent", (t) => {
  const kernelSteps = [12_500, 50_000, 200_000].map((pps) => step("kernelNat", "syn", pps, [100, 100], [60, 60]));
  kernelSteps[2]!.flood = { rate: 100_000, sent: 400_000 } as FloodSummary; // asked 200 k, the path slowed the sender to 100 k
  const natlbSteps = [step("natlb", "syn", 12_500, [100, 100], [60, 60], 0.3), step("natlb", "syn", 50_000, [100, 100], [60, 60], 0.7), step("natlb", "syn", 200_000, [90, 100], [0, 60], 0.8)];
  natlbSteps[1]!.flood = { rate: 50_000, sent: 200_000 } as FloodSummary;
  const c = compareFlood([...kernelSteps, ...natlbSteps], "syn");
  t.is(c.kernelNat?.highestOkPps, 200_000);
  t.is(c.kernelNat?.sentPps, 100_000);
  t.true(c.kernelNat?.short);
  t.false(c.natlb?.short);
  t.is(c.ratio, 0.5, "50 k sent / 100 k sent, not 50 k / 200 k asked");
  t.is(c.ratioText, "<= 0.50 (kernel NAT passed every step)");
  const report: FloodReport = {
    settings: { rates: [12_500, 50_000, 200_000], floodSeconds: 4, recoverySeconds: 2, probeRate: 20, probeTimeoutMs: 1000, sources: "198.19.0.0/16", conntrackReset: "conntrack -F" },
    comparisons: [c],
    steps: [...kernelSteps, ...natlbSteps],
    stoppedEarly: null,
  };
  const text = formatFloodReport(report).join("\n");
  t.regex(text, /\| kernel NAT \| 200 k +\| 100 k \* +\|/);
  t.regex(text, /^\* the generator sent < 90 % of the asked rate/m);
  t.regex(text, /100 k \(asked 200 k: generator short, every step\)/);
});

test("the flood table shows every step and the verdicts", (t) => {
  const steps = [
    step("kernelNat", "syn", 12_500, [100, 100], [60, 60]),
    step("natlb", "syn", 12_500, [50, 100], [60, 60], 0.9),
    step("natlb", "udp", 12_500, [100, 100], [60, 60], 0.4),
  ];
  steps[2]!.during = probes(100, 100, [97, 100]);
  steps[2]!.after = probes(60, 60, [60, 60]);
  const report: FloodReport = {
    settings: { rates: [12_500], floodSeconds: 4, recoverySeconds: 2, probeRate: 20, probeTimeoutMs: 1000, sources: "198.19.0.0/16", conntrackReset: "conntrack -F" },
    comparisons: [compareFlood(steps, "syn"), compareFlood(steps, "udp")],
    steps,
    stoppedEarly: null,
  };
  const text = formatFloodReport(report).join("\n");
  t.regex(text, /spoofed SYN flood -> VIP:81/);
  t.regex(text, /\| natlb +\| 12\.5 k +\| 12\.4 k +\| 50\.0 % \(50\/100\) +\| 100 % \(60\/60\) +\| 0\.90 +\| 50\.0 % +\| FAIL \|/);
  t.regex(text, /UDP during/);
  t.regex(text, /97\.0 % \(97\/100\)/);
  t.regex(text, /\| spoofed SYN flood -> VIP:81 \| 12\.4 k \(asked 12\.5 k, every step\) +\| < 12\.4 k \(failed the lowest\) +\| - +\| < 1\.0 \(natlb failed/);
  t.regex(text, /\| spoofed UDP flood -> VIP:53 \| not run +\| 12\.4 k \(asked 12\.5 k, every step\)/);
  t.notRegex(text, /generator sent < 90 %/, "no step was short");
});

test("flood options: defaults, the --quick ladder, and refusals", (t) => {
  const full = resolveOptions({}, "/tmp/x.json");
  t.deepEqual(full.labs, ["gso", "mtu", "modes", "flood"]);
  t.deepEqual(full.floodRates, [12_500, 25_000, 50_000, 100_000, 200_000]);
  t.is(full.floodSeconds, 6);
  const quick = resolveOptions({ quick: true, labs: ["flood"] }, "/tmp/x.json");
  t.deepEqual(quick.floodRates, [12_500, 50_000, 200_000]);
  t.is(quick.floodSeconds, 4);
  t.deepEqual(resolveOptions({ floodRates: [50_000, 12_500, 50_000] }, "/tmp/x.json").floodRates, [12_500, 50_000], "sorted, once each");
  t.throws(() => resolveOptions({ floodSeconds: 11 }, "/tmp/x.json"), { instanceOf: BenchUsageError, message: /floodSeconds/ });
  t.throws(() => resolveOptions({ floodSeconds: 2 }, "/tmp/x.json"), { instanceOf: BenchUsageError, message: /floodSeconds/ });
  t.throws(() => resolveOptions({ floodRates: [5_000_000] }, "/tmp/x.json"), { instanceOf: BenchUsageError, message: /flood rate/ });
  t.throws(() => resolveOptions({ floodRates: [] }, "/tmp/x.json"), { instanceOf: BenchUsageError });
  t.throws(() => resolveOptions({ labs: ["storm" as never] }, "/tmp/x.json"), { instanceOf: BenchUsageError, message: /labs must be among/ });
  t.deepEqual(parseBenchArgs(["--labs", "flood", "--quick", "--flood-rates", "25000,100000", "--flood-seconds", "5"]), {
    labs: ["flood"],
    quick: true,
    floodRates: [25_000, 100_000],
    floodSeconds: 5,
  });
  t.throws(() => parseBenchArgs(["--flood-rates", "25k"]), { instanceOf: BenchUsageError });
});
