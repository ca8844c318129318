// The benchmark's arithmetic: medians, per-round paired ratios and the target verdicts. Speed itself is
// never measured in a test (bench/ does that); these check that the report says what the samples say.
import test from "ava";
import type { LabRunResult, MetricId, Sample } from "../bench/labRounds";
import { buildCases, evaluateTargets } from "../bench/report";
import { median, summarize } from "../bench/stats";
import type { VariantId } from "../bench/variants";

function lab(kind: "gso" | "mtu", samples: Array<[VariantId, MetricId, number[]]>): LabRunResult {
  const all: Sample[] = samples.flatMap(([variant, metric, values]) =>
    values.map((value, round) => ({ lab: kind, round, variant, metric, value })),
  );
  return { lab: kind, labId: null, samples: all, runs: [] } as unknown as LabRunResult;
}

test("median and spread", (t) => {
  t.is(median([3, 1, 2]), 2);
  t.is(median([4, 1, 2, 3]), 2.5);
  t.deepEqual(summarize([5, 1, 3]), { median: 3, min: 1, max: 5, n: 3, values: [5, 1, 3] });
  t.is(summarize([]), null);
});

test("ratios are paired by round, so a slow round hits both sides", (t) => {
  // natlb is exactly half of kernel NAT in every round, while the rounds themselves vary 10x.
  const result = lab("mtu", [
    ["kernelNat", "dl4Gbps", [4, 40, 8]],
    ["natlb", "dl4Gbps", [2, 20, 4]],
  ]);
  const [dl4] = buildCases([result], ["kernelNat", "natlb"]).filter((c) => c.id === "mtu.dl4Gbps");
  t.is(dl4!.natlbVsKernelNat!.median, 0.5);
  t.is(dl4!.natlbVsKernelNat!.min, 0.5);
  t.is(dl4!.byVariant.kernelNat!.median, 8);
});

test("target verdicts: >= and <= limits, the serial difference in ms, n/a when not measured", (t) => {
  const gso = lab("gso", [
    ["kernelNat", "dl4Gbps", [20, 20, 20]],
    ["natlb", "dl4Gbps", [15, 16, 14]], // 0.75 median: passes >= 0.75
    ["haproxy", "dl4Gbps", [10, 10, 10]], // 1.5 x: fails >= 2
    ["kernelNat", "serialMs", [0.1, 0.1, 0.1]],
    ["natlb", "serialMs", [0.25, 0.15, 0.2]], // +0.1 median: passes <= +0.1
    ["kernelNat", "dl4CpuMachine", [1, 1, 1]],
    ["natlb", "dl4CpuMachine", [1.6, 1.6, 1.6]], // 1.6 x: fails <= 1.5
  ]);
  const verdicts = Object.fromEntries(evaluateTargets([gso], { bytesFor1M: 100 * 2 ** 20 } as never).map((r) => [r.id, r.status]));
  t.is(verdicts["gso-4conns-nat"], "pass");
  t.is(verdicts["gso-4conns-haproxy"], "fail");
  t.is(verdicts["serial-gso"], "pass");
  t.is(verdicts["cpu-gso"], "fail");
  t.is(verdicts["mtu-4conns"], "n/a", "the mtu lab did not run");
  t.is(verdicts["flows-1m"], "pass");
});

test("balancer CPU cases: the process, its BPF programs' run time, and both together, each compared per round", (t) => {
  // natlb's process hardly works (the fast path), its BPF program does; HAProxy has no BPF program.
  const gso = lab("gso", [
    ["natlb", "dl4CpuBalancer", [0.02, 0.04]],
    ["natlb", "dl4CpuBpf", [0.5, 1]],
    ["natlb", "dl4CpuBalancerTotal", [0.52, 1.04]],
    ["haproxy", "dl4CpuBalancer", [1.3, 2.6]],
    ["haproxy", "dl4CpuBpf", [0, 0]],
    ["haproxy", "dl4CpuBalancerTotal", [1.3, 2.6]],
  ]);
  const cases = buildCases([gso], ["natlb", "haproxy"]);
  const byId = (id: string) => cases.find((c) => c.id === id);
  t.deepEqual(
    cases.map((c) => c.id),
    ["gso.dl4CpuBalancer", "gso.dl4CpuBpf", "gso.dl4CpuBalancerTotal"],
    "cases in METRICS order, only the measured ones",
  );
  t.is(byId("gso.dl4CpuBpf")!.title, "balancer BPF programs' run time, 4 conns");
  t.is(byId("gso.dl4CpuBalancerTotal")!.title, "balancer CPU (process + BPF), 4 conns");
  t.is(Number(byId("gso.dl4CpuBalancer")!.natlbVsHaproxy!.median.toFixed(4)), 0.0154, "the process alone: 1/65 of HAProxy's");
  t.is(byId("gso.dl4CpuBalancerTotal")!.natlbVsHaproxy!.median, 0.4);
  t.is(byId("gso.dl4CpuBpf")!.byVariant.natlb!.median, 0.75);
  t.is(byId("gso.dl4CpuBpf")!.natlbVsHaproxy, null, "a ratio to 0 is no ratio");
});
