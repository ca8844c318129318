// The bench's BPF run-time measurement (bench/bpfRunTime.c, bench/bpfRunTime.ts): parsing the tool's
// lines, the run time between two samples of the balancer's own programs only, the program names
// against natlb's BPF sources, and end to end: natlb with the kernel fast path moves a download, and
// the tool sees the programs natlb holds run (count and time up), while the statistics are off again
// after the tool exits.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { blobUrl, runDownload } from "../lab/download";
import { REPO_ROOT } from "../lab/nativeTools";
import {
  NATLB_PROGRAM_PREFIXES,
  bpfProgramIdsOf,
  bpfRunTimeBetween,
  fdinfoProgramId,
  parseBpfSample,
  startBpfRunTime,
  type BpfProgramSample,
} from "../bench/bpfRunTime";
import { SERVICE_PORT, tcpService, withNatLab } from "./support/lab";

const program = (id: number, runTimeNs: number, runCount: number, name = "forward_establi"): BpfProgramSample => ({ id, name, runTimeNs, runCount });

test("a sample line parses into its programs; anything else is refused", (t) => {
  const line = JSON.parse(
    '{"event":"sample","programs":[{"id":41,"name":"forward_establi","runTimeNs":123456789,"runCount":1000},' +
      '{"id":42,"name":"steer_to_socket","runTimeNs":0,"runCount":0}]}',
  ) as Record<string, unknown>;
  t.deepEqual(parseBpfSample(line), [program(41, 123456789, 1000), program(42, 0, 0, "steer_to_socket")]);
  t.deepEqual(parseBpfSample({ event: "sample", programs: [] }), []);
  t.throws(() => parseBpfSample({ event: "enabled" }), { message: /expected a sample line/ });
  t.throws(() => parseBpfSample({ event: "sample", programs: [{ id: 1, name: "x", runTimeNs: 5 }] }), { message: /runCount/ });
  t.throws(() => parseBpfSample({ event: "sample", programs: [{ id: 1, name: "x", runTimeNs: -5, runCount: 1 }] }), { message: /runTimeNs/ });
  t.throws(() => parseBpfSample({ event: "sample", programs: [{ id: 0, name: "x", runTimeNs: 5, runCount: 1 }] }), { message: /without id/ });
  t.throws(() => parseBpfSample({ event: "sample", programs: [null] }), { message: /without id/ });
});

test("run time between two samples: only the balancer's programs, a program loaded in between from zero", (t) => {
  const before = [program(10, 1_000, 10), program(11, 5_000, 50), program(99, 1_000_000, 7)];
  const after = [program(10, 4_000, 40), program(11, 5_500, 55), program(12, 300, 3), program(99, 9_000_000, 70)];
  // 99 is another natlb's program (a test run): not the balancer's, not counted.
  const r = bpfRunTimeBetween(before, after, new Set([10, 11, 12]));
  t.is(r.runTimeNs, 3_000 + 500 + 300);
  t.is(r.runCount, 30 + 5 + 3);
  t.deepEqual(r.programs.map((p) => [p.id, p.runTimeNs, p.runCount]), [[10, 3_000, 30], [11, 500, 5], [12, 300, 3]]);
  // No program of the balancer's: nothing ran for it (0, a measured value, not a missing one).
  t.deepEqual(bpfRunTimeBetween(before, after, new Set()), { runTimeNs: 0, runCount: 0, programs: [] });
  // Counters lower than before: not the same program; its counters count from zero.
  t.is(bpfRunTimeBetween([program(10, 9_000, 90)], [program(10, 100, 1)], new Set([10])).runTimeNs, 100);
});

test("fdinfo: the program id of a bpf_link and of a bpf-prog fd", (t) => {
  const link = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1061\nlink_type:\ttcx\nlink_id:\t7\nprog_tag:\ta04f5eef06a7f555\nprog_id:\t58\nifindex:\t2\nattach_type:\t46\n";
  const prog = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1061\nprog_type:\t3\nprog_jited:\t1\nprog_tag:\ta04f5eef06a7f555\nmemlock:\t4096\nprog_id:\t58\nrun_time_ns:\t0\nrun_cnt:\t0\n";
  t.is(fdinfoProgramId(link), 58);
  t.is(fdinfoProgramId(prog), 58);
  t.is(fdinfoProgramId("pos:\t0\nmap_type:\t1\nmap_id:\t3\n"), null, "a map fd has no program");
  t.is(bpfProgramIdsOf(2 ** 22 + 1), null, "no such process");
});

test("the name prefixes are natlb's BPF programs' names as the kernel keeps them (15 characters)", (t) => {
  const dir = join(REPO_ROOT, "native", "bpf");
  const names = readdirSync(dir)
    .filter((f) => f.endsWith(".bpf.c"))
    .flatMap((f) => [...readFileSync(join(dir, f), "utf8").matchAll(/SEC\("(?:tc|xdp)[^"]*"\)\s*int\s+(\w+)\s*\(/g)].map((m) => m[1]!));
  t.true(names.length >= 2, `programs found: ${names.join(", ")}`);
  t.deepEqual([...names.map((n) => n.slice(0, 15))].sort(), [...NATLB_PROGRAM_PREFIXES].sort());
});

test("end to end: natlb's fast-path programs run for a download, counted while the tool runs and not after it exits", async (t) => {
  const first = await startBpfRunTime(120);
  if (!first.ok) {
    t.fail(`the BPF run-time tool did not start: ${first.reason}`);
    return;
  }
  const stops = [first.sampler.stop];
  try {
    await withNatLab(
      t,
      { offloads: true, prefix: "bp", reals: 1, config: (lab) => ({ services: [tcpService(lab, [1])], kernelFastPath: true }) },
      async ({ lab, natlb }) => {
        const ids = bpfProgramIdsOf(natlb!.child.pid!);
        t.truthy(ids !== null && ids.size > 0, "natlb holds its fast-path programs");
        const download = async (bytes: number, seed: string): Promise<void> => {
          const d = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, seed), conns: 2, timeoutMs: 60_000, sha: false });
          t.is(d.failed, 0, JSON.stringify(d).slice(0, 500));
        };
        const before = await first.sampler.sample();
        t.true(
          before.some((p) => ids!.has(p.id) && p.name === "forward_establi"),
          `the tool lists natlb's programs (${JSON.stringify(before)}, natlb's ids ${[...ids!].join(",")})`,
        );
        await download(16 * 1024 * 1024, "bpf-run-time-1");
        const after = await first.sampler.sample();
        const r = bpfRunTimeBetween(before, after, ids!);
        t.log(`natlb's programs ${JSON.stringify(r.programs)} for 32 MiB`);
        // 32 MiB over the fast path: hundreds of frames at least (64 KB GSO frames and their ACKs).
        t.true(r.runCount >= 500, `run count ${r.runCount}`);
        t.true(r.runTimeNs > 0, `run time ${r.runTimeNs} ns`);
        t.is(readFileSync("/proc/sys/kernel/bpf_stats_enabled", "utf8").trim(), "0", "the global sysctl stays off");

        // The tool gone, the kernel stops counting: a download in between leaves the counters as they were.
        await first.sampler.stop();
        await download(4 * 1024 * 1024, "bpf-run-time-2");
        const second = await startBpfRunTime(120);
        if (!second.ok) {
          t.fail(`the BPF run-time tool did not start again: ${second.reason}`);
          return;
        }
        stops.push(second.sampler.stop);
        const again = await second.sampler.sample();
        t.deepEqual(bpfRunTimeBetween(after, again, ids!).runCount, 0, "nothing counted while no tool held the statistics");
        await download(4 * 1024 * 1024, "bpf-run-time-3");
        t.true(bpfRunTimeBetween(again, await second.sampler.sample(), ids!).runCount > 0, "counting again with the tool back");
      },
    );
  } finally {
    for (const stop of stops) await stop();
  }
});
