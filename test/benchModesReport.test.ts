// The modes lab's arithmetic and options (issue #11): which variants it runs, each mode against plain
// forwarding and natlb nat (paired by round), balancer CPU against nat with the kernel fast path and in
// user space, the goals' verdicts, and the table with modes that were not available. No traffic
// here (bench/ measures); these check that the report says what the samples say.
import test from "ava";
import { variantRunsIn, type LabRunResult, type MetricId, type Sample } from "../bench/labRounds";
import { buildModes, formatModesReport, modesTargets } from "../bench/modesReport";
import { BenchUsageError, DEFAULT_VARIANT_IDS, resolveOptions, type LabKind } from "../bench/options";
import { parseBenchArgs } from "../bench/run";
import { ALL_VARIANTS, type VariantId } from "../bench/variants";

function lab(kind: LabKind, samples: Array<[VariantId, MetricId, number[]]>, unavailable: Partial<Record<VariantId, string>> = {}): LabRunResult {
  const all: Sample[] = samples.flatMap(([variant, metric, values]) => values.map((value, round) => ({ lab: kind, round, variant, metric, value })));
  return { lab: kind, labId: null, unavailable, samples: all, runs: [], errors: [], stoppedEarly: null };
}

const ran = (ids: VariantId[]) => ids.map((id) => ({ id, skipped: null }));

test("modes options: a default lab, --labs modes, and which variants run there", (t) => {
  t.true(resolveOptions({}, "/tmp/x.json").labs.includes("modes"));
  t.true(resolveOptions({ quick: true }, "/tmp/x.json").labs.includes("modes"), "--quick runs it too");
  t.true(DEFAULT_VARIANT_IDS.includes("natlbDr") && DEFAULT_VARIANT_IDS.includes("natlbFullnat"));
  t.deepEqual(parseBenchArgs(["--labs", "modes", "--rounds", "2", "--mib", "256"]), { labs: ["modes"], rounds: 2, bulkBytes: 256 * 1024 * 1024 });
  t.deepEqual(resolveOptions({ labs: ["modes"], variants: ["natlbDr", "plain"] }, "/tmp/x.json").variants, ["plain", "natlbDr"]);
  t.throws(() => resolveOptions({ labs: ["mode" as never] }, "/tmp/x.json"), { instanceOf: BenchUsageError, message: /"modes"/ });
  const runsIn = (kind: LabKind) => ALL_VARIANTS.filter((v) => variantRunsIn(v, kind)).map((v) => v.id);
  t.deepEqual(runsIn("modes"), ["plain", "kernelNat", "haproxy", "natlb", "natlbUserSpace", "natlbDr", "natlbFullnat"]);
  t.false(runsIn("gso").includes("natlbDr"), "dr needs the direct-routing topology");
  t.false(runsIn("mtu").includes("natlbFullnat"));
  t.true(runsIn("mtu").includes("natlbAfPacket") && !runsIn("gso").includes("natlbAfPacket"), "the other labs' rules stay");
});

test("modes: rates against plain and nat, balancer CPU against both kinds of nat, paired by round; kernel paths have no balancer CPU", (t) => {
  // Rounds vary 2x; in every round dr moves as fast as plain and twice as fast as nat, at a twentieth of
  // nat's CPU with the fast path and a fortieth of nat's in user space; fullnat costs as much as nat.
  const modes = lab("modes", [
    ["plain", "dl4Gbps", [4, 8]],
    ["kernelNat", "dl4Gbps", [2, 4]],
    ["natlb", "dl4Gbps", [2, 4]],
    ["natlbUserSpace", "dl4Gbps", [1, 2]],
    ["natlbDr", "dl4Gbps", [4, 8]],
    ["natlbFullnat", "dl4Gbps", [2, 4]],
    ["natlb", "dl4CpuBalancer", [2, 4]],
    ["natlbUserSpace", "dl4CpuBalancer", [4, 8]],
    ["natlbDr", "dl4CpuBalancer", [0.1, 0.2]],
    ["natlbFullnat", "dl4CpuBalancer", [2, 4]],
    ["kernelNat", "dl4CpuMachine", [3, 3]],
  ]);
  const report = buildModes([modes], ran(["plain", "kernelNat", "natlb", "natlbUserSpace", "natlbDr", "natlbFullnat"]));
  const row = (id: VariantId) => report!.rows.find((r) => r.variant === id)!;
  t.deepEqual(report!.rows.map((r) => r.variant), ["plain", "kernelNat", "natlb", "natlbUserSpace", "natlbDr", "natlbFullnat"]);
  t.is(row("natlbDr").dl4VsPlain!.median, 1);
  t.is(row("natlbDr").dl4VsPlain!.min, 1, "paired: the slow round is slow for both");
  t.is(row("natlbDr").dl4VsNat!.median, 2);
  t.is(row("natlbDr").cpuBalancerVsNat!.median, 0.05);
  t.is(row("natlbDr").cpuBalancerVsNatUserSpace!.median, 0.025);
  t.is(row("natlbFullnat").cpuBalancerVsNat!.median, 1);
  t.is(row("natlbFullnat").cpuBalancerVsNatUserSpace!.median, 0.5);
  t.is(row("natlbUserSpace").dl4VsNat!.median, 0.5);
  t.is(row("kernelNat").dl4VsPlain!.median, 0.5);
  t.is(row("kernelNat").cpuBalancerPerGiB, null);
  t.regex(row("kernelNat").balancerNote ?? "", /N\/A: kernel/);
  const verdicts = Object.fromEntries(modesTargets([modes]).map((r) => [r.id, r.status]));
  t.deepEqual(verdicts, { "modes-dr-speed": "pass", "modes-dr-cpu": "pass", "modes-dr-cpu-user-space": "pass" });
  const text = formatModesReport(report!).join("\n");
  t.regex(text, /\| natlb dr +\| n\/a +\| 6\.00 \(4\.00\.\.8\.00\) +\| 1\.0 \(1\.0\.\.1\.0\) +\| 2\.0 \(2\.0\.\.2\.0\) +\|/);
  t.regex(text, /\| natlb fullnat +\| n\/a +\| 3\.00 .*\| 1\.0 \(1\.0\.\.1\.0\) +\| 0\.50 \(0\.50\.\.0\.50\) +\|$/m);
  t.regex(text, /natlb dr: 6\.00 Gbit\/s = 1\.0 x plain forwarding; balancer 0\.150 CPU-s\/GiB, 0\.050 x nat \(fast path\), 0\.025 x nat \(user space\)$/m);
  t.regex(text, /natlb nat \(user space, no fast path\): 1\.50 Gbit\/s = 0\.25 x plain forwarding; balancer 6\.00 CPU-s\/GiB, 2\.0 x nat \(fast path\)$/m);
});

test("modes: goals fail when dr is slower or too costly, each nat judged on its own; modes not available are listed", (t) => {
  // dr costs 0.15 of nat with the fast path (fail) but 0.075 of nat in user space (pass).
  const modes = lab(
    "modes",
    [
      ["plain", "dl4Gbps", [4, 8]],
      ["natlbDr", "dl4Gbps", [3, 7]],
      ["natlb", "dl4CpuBalancer", [2, 2]],
      ["natlbUserSpace", "dl4CpuBalancer", [4, 4]],
      ["natlbDr", "dl4CpuBalancer", [0.3, 0.3]],
    ],
    { natlbFullnat: "not available: natlb refuses to start here: natlb: config: fullnat.localAddresses[0] ..." },
  );
  const report = buildModes([modes], ran(["plain", "natlb", "natlbUserSpace", "natlbDr", "natlbFullnat"]));
  const targets = modesTargets([modes]);
  t.deepEqual(targets.map((r) => [r.id, r.status]), [["modes-dr-speed", "fail"], ["modes-dr-cpu", "fail"], ["modes-dr-cpu-user-space", "pass"]]);
  t.regex(targets[1]!.target, /with the kernel fast path/);
  t.regex(targets[2]!.target, /in user space/);
  t.is(targets[2]!.value, 0.075);
  const gso = lab("gso", [["natlb", "dl4CpuBalancer", [2, 3, 4]]]);
  t.deepEqual(modesTargets([gso]).map((r) => r.status), ["n/a", "n/a", "n/a"], "no modes lab: not measured");
  t.is(buildModes([gso], ran(["natlbDr"])), null);
  const noUserSpace = lab("modes", [["natlb", "dl4CpuBalancer", [2]], ["natlbDr", "dl4CpuBalancer", [0.1]]]);
  t.deepEqual(modesTargets([noUserSpace]).map((r) => r.status), ["n/a", "pass", "n/a"], "a nat that did not run judges nothing");
  const text = formatModesReport(report!).join("\n");
  t.regex(text, /\| natlb fullnat +\| not available +\|/);
  t.regex(text, /natlb fullnat: not available: natlb refuses to start here/);
});
