// The modes lab's arithmetic and options (issue #11): which variants it runs, each mode against plain
// forwarding and natlb nat (paired by round), the nat CPU reference from the gso lab where the modes
// lab has none, the two goals' verdicts, and the table with modes that were not available. No traffic
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
  t.deepEqual(runsIn("modes"), ["plain", "kernelNat", "haproxy", "natlb", "natlbDr", "natlbFullnat"]);
  t.false(runsIn("gso").includes("natlbDr"), "dr needs the direct-routing topology");
  t.false(runsIn("mtu").includes("natlbFullnat"));
  t.true(runsIn("mtu").includes("natlbAfPacket") && !runsIn("gso").includes("natlbAfPacket"), "the other labs' rules stay");
});

test("modes: rates against plain and nat, balancer CPU against nat, paired by round; kernel paths have no balancer CPU", (t) => {
  // Rounds vary 2x; in every round dr moves as fast as plain and twice as fast as nat, at a twentieth of its CPU.
  const modes = lab("modes", [
    ["plain", "dl4Gbps", [4, 8]],
    ["kernelNat", "dl4Gbps", [2, 4]],
    ["natlb", "dl4Gbps", [2, 4]],
    ["natlbDr", "dl4Gbps", [4, 8]],
    ["natlb", "dl4CpuBalancer", [2, 4]],
    ["natlbDr", "dl4CpuBalancer", [0.1, 0.2]],
    ["kernelNat", "dl4CpuMachine", [3, 3]],
  ]);
  const report = buildModes([modes], ran(["plain", "kernelNat", "natlb", "natlbDr"]));
  const row = (id: VariantId) => report!.rows.find((r) => r.variant === id)!;
  t.deepEqual(report!.rows.map((r) => r.variant), ["plain", "kernelNat", "natlb", "natlbDr"]);
  t.is(row("natlbDr").dl4VsPlain!.median, 1);
  t.is(row("natlbDr").dl4VsPlain!.min, 1, "paired: the slow round is slow for both");
  t.is(row("natlbDr").dl4VsNat!.median, 2);
  t.is(row("natlbDr").cpuBalancerVsNat!.median, 0.05);
  t.is(row("kernelNat").dl4VsPlain!.median, 0.5);
  t.is(row("kernelNat").cpuBalancerPerGiB, null);
  t.regex(row("kernelNat").balancerNote ?? "", /N\/A: kernel/);
  t.is(report!.natCpuReference!.lab, "modes");
  const verdicts = Object.fromEntries(modesTargets([modes]).map((r) => [r.id, r.status]));
  t.deepEqual(verdicts, { "modes-dr-speed": "pass", "modes-dr-cpu": "pass" });
  const text = formatModesReport(report!).join("\n");
  t.regex(text, /\| natlb dr +\| n\/a +\| 6\.00 \(4\.00\.\.8\.00\) +\| 1\.0 \(1\.0\.\.1\.0\) +\| 2\.0 \(2\.0\.\.2\.0\) +\|/);
  t.regex(text, /natlb dr: 6\.00 Gbit\/s = 1\.0 x plain forwarding; balancer 0\.150 CPU-s\/GiB = 0\.050 x natlb nat$/m);
});

test("modes: goals fail when dr is slower or too costly; nat's CPU from the gso lab when natlb could not run nat one-armed", (t) => {
  const modes = lab(
    "modes",
    [
      ["plain", "dl4Gbps", [4, 8]],
      ["natlbDr", "dl4Gbps", [3, 7]],
      ["natlbDr", "dl4CpuBalancer", [0.3, 0.5]],
    ],
    { natlb: "not available: natlb refuses to start here: natlb: config: interfaces.backend[0] ..." },
  );
  const gso = lab("gso", [
    ["natlb", "dl4CpuBalancer", [2, 3, 4]],
    ["natlbUserSpace", "dl4CpuBalancer", [4, 4, 4]],
  ]);
  const report = buildModes([gso, modes], [...ran(["plain", "natlb", "natlbDr"]), { id: "natlbFullnat", skipped: "not available: fullnat refused" }]);
  t.deepEqual(report!.natCpuReference, { lab: "gso", cpuPerGiB: { median: 3, min: 2, max: 4, n: 3, values: [2, 3, 4] } });
  const dr = report!.rows.find((r) => r.variant === "natlbDr")!;
  t.is(dr.cpuBalancerVsNat!.median, 0.4 / 3, "a ratio of medians when the reference is the gso lab");
  const targets = modesTargets([gso, modes]);
  t.deepEqual(targets.map((r) => r.status), ["fail", "fail"]);
  t.regex(targets[1]!.basis, /gso lab/);
  t.deepEqual(modesTargets([gso]).map((r) => r.status), ["n/a", "n/a"], "no modes lab: not measured");
  t.is(buildModes([gso], ran(["natlbDr"])), null);
  const text = formatModesReport(report!).join("\n");
  t.regex(text, /\| natlb nat +\| not available +\|/);
  t.regex(text, /natlb nat: not available: natlb refuses to start here/);
  t.regex(text, /natlb fullnat: not available: fullnat refused/);
  t.regex(text, /against natlb nat in the gso lab/);
  t.is(report!.natUserSpaceCpuPerGiB!.median, 4);
  t.regex(text, /natlb dr: 5\.00 Gbit\/s = 0\.81 x plain forwarding; balancer 0\.400 CPU-s\/GiB = 0\.13 x natlb nat \(gso lab\), 0\.10 x nat user space/);
});
