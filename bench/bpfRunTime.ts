// The balancer's BPF programs' run time, the part of its CPU its process ticks do not show: natlb's
// kernel fast path (native/bpf/forward_established.bpf.c, tcx) and AF_XDP steering
// (native/bpf/steer_to_socket.bpf.c) handle packets that never reach the daemon. bench/bpfRunTime.c
// holds bpf(BPF_ENABLE_STATS) open for a lab's whole run and prints each program's run_time_ns and
// run_cnt on request; this file runs it, parses its lines, and counts only the programs the balancer
// itself holds (its bpf-prog and bpf_link fds in /proc/<pid>/fdinfo), so any other natlb on the host
// (a test run) is left out. Without a C compiler, or without the permission, nothing is measured and
// the report says "not measured".
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { buildNativeTool } from "../lab/nativeTools";
import { ToolError, ToolProcess, type ToolEvent } from "../lab/toolProcess";

/**
 * Name prefixes of natlb's BPF programs as the kernel shows them: the programs' function names in
 * native/bpf/*.bpf.c, cut to 15 characters (BPF_OBJ_NAME_LEN - 1). test/benchBpfRunTime.test.ts checks
 * them against the sources.
 */
export const NATLB_PROGRAM_PREFIXES = ["forward_establi", "steer_to_socket"] as const;

/** One program's counters as the kernel keeps them since it was loaded (while statistics are on). */
export interface BpfProgramSample {
  id: number;
  name: string;
  runTimeNs: number;
  runCount: number;
}

/** What the balancer's programs did between two samples. */
export interface BpfRunTime {
  runTimeNs: number;
  runCount: number;
  /** Per program: its run time and count in the window. */
  programs: BpfProgramSample[];
}

function isCount(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/** The programs of one `{"event":"sample",...}` line of bench/bpfRunTime.c; throws ToolError on anything else. */
export function parseBpfSample(event: ToolEvent): BpfProgramSample[] {
  if (event.event !== "sample" || !Array.isArray(event["programs"])) {
    throw new ToolError(`bpfruntime: expected a sample line, got ${JSON.stringify(event).slice(0, 200)}`);
  }
  return (event["programs"] as unknown[]).map((p) => {
    const o = (p ?? {}) as Record<string, unknown>;
    const { id, name, runTimeNs, runCount } = o;
    if (!isCount(id) || id === 0 || typeof name !== "string" || !isCount(runTimeNs) || !isCount(runCount)) {
      throw new ToolError(`bpfruntime: a program entry without id, name, runTimeNs and runCount: ${JSON.stringify(p).slice(0, 200)}`);
    }
    return { id, name, runTimeNs, runCount };
  });
}

/**
 * The run time of the programs in `ids` from `before` to `after`. A program loaded in between counts
 * from zero (its counters start at its load); one gone by `after` is not counted (its counters went with it).
 */
export function bpfRunTimeBetween(before: readonly BpfProgramSample[], after: readonly BpfProgramSample[], ids: ReadonlySet<number>): BpfRunTime {
  const start = new Map(before.map((p) => [p.id, p]));
  const programs = after
    .filter((p) => ids.has(p.id))
    .map((p) => {
      const b = start.get(p.id);
      // A smaller counter means another program took the id (ids are not reused while one lives).
      const fresh = b === undefined || b.runCount > p.runCount || b.runTimeNs > p.runTimeNs;
      return { ...p, runTimeNs: p.runTimeNs - (fresh ? 0 : b.runTimeNs), runCount: p.runCount - (fresh ? 0 : b.runCount) };
    });
  return {
    runTimeNs: programs.reduce((s, p) => s + p.runTimeNs, 0),
    runCount: programs.reduce((s, p) => s + p.runCount, 0),
    programs,
  };
}

/** The `prog_id:` of a bpf-prog or bpf_link fd's /proc/<pid>/fdinfo text, or null. */
export function fdinfoProgramId(text: string): number | null {
  const m = /^prog_id:\s+(\d+)$/m.exec(text);
  return m === null ? null : Number(m[1]);
}

/** Bound on the fds looked at (natlb holds a few dozen). */
const MAX_FDS = 65_536;

/**
 * The ids of the BPF programs process `pid` holds (loaded programs and attachment links), or null
 * when it does not exist. A program attached by a process and then closed would not be found: natlb
 * keeps its tcx links and programs open until it stops.
 */
export function bpfProgramIdsOf(pid: number): Set<number> | null {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`).slice(0, MAX_FDS);
  } catch {
    return null;
  }
  const ids = new Set<number>();
  for (const fd of fds) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target !== "anon_inode:bpf-prog" && target !== "anon_inode:bpf_link") continue;
      const id = fdinfoProgramId(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "latin1"));
      if (id !== null) ids.add(id);
    } catch {
      // closed meanwhile
    }
  }
  return ids;
}

/** Samples the BPF programs' counters; the statistics stay on until stop(). */
export interface BpfRunTimeSampler {
  sample(): Promise<BpfProgramSample[]>;
  stop(): Promise<void>;
}

export type BpfSampling = { ok: true; sampler: BpfRunTimeSampler } | { ok: false; reason: string };

const SAMPLE_TIMEOUT_MS = 10_000;

/** Builds bench/bpfRunTime.c and starts it for natlb's programs; `maxSeconds` bounds its life. */
export async function startBpfRunTime(maxSeconds: number): Promise<BpfSampling> {
  const built = await buildNativeTool({ name: "bpfruntime", compiler: "cc", sources: ["bench/bpfRunTime.c"], flags: ["-O2", "-Wall"] });
  if (!built.ok) return { ok: false, reason: built.reason };
  const child = spawn(built.path, ["--max-seconds", String(Math.ceil(maxSeconds)), ...NATLB_PROGRAM_PREFIXES], { stdio: ["pipe", "pipe", "pipe"] });
  const tool = new ToolProcess(child, "bpfruntime");
  let samples = 0;
  tool.onEvent((e) => {
    if (e.event === "sample") samples++;
  });
  const stop = async (): Promise<void> => {
    child.stdin?.end();
    await Promise.race([tool.exit, new Promise((r) => setTimeout(r, 2000).unref())]);
    if (tool.running) await tool.stop();
  };
  const first = await tool
    .waitForEvent((e) => e.event === "enabled" || e.event === "unavailable", SAMPLE_TIMEOUT_MS, "the enabled line")
    .catch((e: unknown) => ({ event: "unavailable", reason: (e as Error).message }) as ToolEvent);
  if (first.event !== "enabled") {
    await stop();
    return { ok: false, reason: String(first["reason"] ?? "bpfruntime did not start") };
  }
  return {
    ok: true,
    sampler: {
      sample: async () => {
        const seen = samples;
        child.stdin?.write("\n");
        await tool.waitForEvent(() => samples > seen, SAMPLE_TIMEOUT_MS, "a sample line");
        // One request at a time: the newest sample line answers this one.
        const last = tool.events.filter((e) => e.event === "sample").at(-1);
        if (last === undefined) throw new ToolError("bpfruntime: no sample line");
        return parseBpfSample(last);
      },
      stop,
    },
  };
}
