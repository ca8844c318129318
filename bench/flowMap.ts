// The flow-map case of issue #3: 1 M concurrent flows in <= 256 MiB with O(1) lookups. The size comes
// from the addon (flowTableBytes). Lookup rates come from bench/flowLookup.cc, built with g++ against
// the data plane's own flow table sources and run outside the lab: no JavaScript call per lookup.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { runIn } from "../lab/netns";
import { loadNative } from "../src/native";
import { REPO_ROOT, buildNativeTool } from "../lab/nativeTools";

export const ONE_MILLION = 1_000_000;
export const SIZE_TARGET_BYTES = 256 * 1024 * 1024;

export interface FlowLookupSize {
  entries: number;
  insertNs: number;
  forwardLookupsPerSec: number;
  reverseLookupsPerSec: number;
  misses: number;
}

export interface FlowMapResult {
  /** flowTableBytes(1 000 000) from the addon. */
  bytesFor1M: number | null;
  /** Bytes per flow at that capacity. */
  bytesPerFlow: number | null;
  /** The lookup measurement, or null with `lookupNote` saying why not. */
  lookups: { capacity: number; tableBytes: number; sizes: FlowLookupSize[] } | null;
  lookupNote: string;
  error?: string;
}

export async function measureFlowMap(options: { secondsPerSize: number; log: (line: string) => void }): Promise<FlowMapResult> {
  const result: FlowMapResult = { bytesFor1M: null, bytesPerFlow: null, lookups: null, lookupNote: "" };
  try {
    result.bytesFor1M = loadNative().flowTableBytes(ONE_MILLION);
    result.bytesPerFlow = result.bytesFor1M / ONE_MILLION;
  } catch (e) {
    result.error = `flowTableBytes: ${(e as Error).message}`;
  }
  if (options.secondsPerSize <= 0) {
    result.lookupNote = "lookup rate not measured (flowLookupSeconds = 0)";
    return result;
  }
  // The flow map is every source of native/flow (the table, and its persistence templates).
  const flowDir = join(REPO_ROOT, "native", "flow");
  const flowSources = readdirSync(flowDir).filter((f) => f.endsWith(".cc")).sort().map((f) => `native/flow/${f}`);
  const flowHeaders = readdirSync(flowDir).filter((f) => f.endsWith(".h")).sort().map((f) => `native/flow/${f}`);
  options.log(`flow map: building bench/flowLookup.cc with g++ -O2 against ${flowSources.join(", ")}`);
  const build = await buildNativeTool({
    name: "flowlookup",
    compiler: "g++",
    sources: ["bench/flowLookup.cc", ...flowSources],
    dependsOn: flowHeaders,
    flags: ["-O2", "-std=c++20", "-I", join(REPO_ROOT, "native")],
  });
  if (!build.ok) {
    result.lookupNote = `lookup rate not measured: ${build.reason}; size only`;
    return result;
  }
  const capacity = 1 << 20;
  const run = await runIn(null, build.path, [String(capacity), String(options.secondsPerSize), "1000", String(ONE_MILLION)], {
    timeoutMs: 60_000 + options.secondsPerSize * 4000,
  });
  if (run.code !== 0) {
    result.lookupNote = `lookup rate not measured: flowlookup failed (${run.stderr.trim().slice(0, 300)}); size only`;
    return result;
  }
  result.lookups = JSON.parse(run.stdout) as FlowMapResult["lookups"];
  result.lookupNote = `random lookups of live keys in one table of capacity ${capacity}, one thread, C++ calling native/flow's flow table (no JS per lookup)`;
  return result;
}
