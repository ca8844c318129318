// The short-connection tools: bench/connLoad.c when a C compiler is present (a few microseconds per
// connection), else the Node versions in lab/benchTools.ts (slower: they dilute the path's own
// cost, and the report says which one ran).
import {
  runConnLoad as runNodeConnLoad,
  startSmallServer as startNodeSmallServer,
  type ConnLoadOptions,
  type ConnRunSummary,
} from "../lab/benchTools";
import { realByIndex, type Lab } from "../lab/topology";
import { ToolError, ToolProcess } from "../lab/toolProcess";
import { buildNativeTool } from "../lab/nativeTools";

export interface ConnTool {
  kind: "c" | "node";
  /** Why the C tool is not used (kind "node"). */
  note: string | null;
  startServer(lab: Lab, realIndex: number, port: number, maxSeconds: number): Promise<{ stop(): Promise<void> }>;
  run(lab: Lab, options: ConnLoadOptions): Promise<ConnRunSummary>;
}

export async function prepareConnTool(log: (line: string) => void): Promise<ConnTool> {
  const built = await buildNativeTool({ name: "connload", compiler: "cc", sources: ["bench/connLoad.c"], flags: ["-O2", "-Wall"] });
  if (!built.ok) {
    log(`short connections: using the Node tools (${built.reason})`);
    return {
      kind: "node",
      note: built.reason,
      startServer: (lab, realIndex, port, maxSeconds) => startNodeSmallServer(lab, realIndex, port, maxSeconds),
      run: runNodeConnLoad,
    };
  }
  const binary = built.path;
  return {
    kind: "c",
    note: null,
    startServer: async (lab, realIndex, port, maxSeconds) => {
      const real = realByIndex(lab, realIndex);
      const args = ["server", "--port", String(port), "--ip", real.ip, "--max-seconds", String(maxSeconds)];
      const tool = new ToolProcess(lab.spawn(real.ns, binary, args), `connload server (r${realIndex}:${port})`);
      await tool.waitUntilListening(10_000);
      return { stop: async () => void (await tool.stop()) };
    },
    run: async (lab, o) => {
      const args = ["client", "--targets", o.targets.map((t) => `${t.ip}:${t.port}`).join(","), "--concurrency", String(o.concurrency)];
      args.push("--count", String(o.count), "--duration-ms", String(o.durationMs));
      if (o.localAddress !== undefined) args.push("--local-address", o.localAddress);
      if (o.connTimeoutMs !== undefined) args.push("--conn-timeout-ms", String(o.connTimeoutMs));
      if (o.latencies === true) args.push("--latencies");
      const tool = new ToolProcess(lab.spawn(o.ns ?? lab.client.ns, binary, args), "connload client");
      const exit = await tool.waitForExit(o.durationMs + (o.connTimeoutMs ?? 2000) + 15_000);
      const summary = tool.events.find((e) => e.event === "summary");
      if (summary === undefined) {
        throw new ToolError(`connload client printed no summary (exit code ${exit.code}, signal ${exit.signal})${tool.stderrSuffix()}`);
      }
      const { event: _event, ...rest } = summary;
      return rest as unknown as ConnRunSummary;
    },
  };
}
