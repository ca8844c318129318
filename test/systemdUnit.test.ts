// systemd/natlb.service: systemd accepts it (`systemd-analyze verify`, warnings included), every natlb
// command line in it is one the CLI accepts, and it grants the capabilities the data plane needs.
// verify checks that ExecStart's program exists, so it runs on a copy whose /usr/local/bin/natlb is this
// checkout's bin/natlb.js.
import test from "ava";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Command } from "commander";
import { buildProgram } from "../src/cli";

const root = join(__dirname, "..", "..");
const unitPath = join(root, "systemd", "natlb.service");
const INSTALLED_NATLB = "/usr/local/bin/natlb";

/** The unit's `Key=value` lines of one section, in order (comments and blank lines left out). */
function sectionEntries(text: string, section: string): [string, string][] {
  const entries: [string, string][] = [];
  let current = "";
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const header = /^\[(.+)\]$/.exec(trimmed);
    if (header) current = header[1]!;
    else if (current === section) {
      const at = trimmed.indexOf("=");
      entries.push([trimmed.slice(0, at), trimmed.slice(at + 1)]);
    }
  }
  return entries;
}

test("systemd-analyze verify accepts the unit without a warning", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "natlb-unit-"));
  try {
    const unit = readFileSync(unitPath, "utf8");
    t.true(unit.includes(INSTALLED_NATLB), `the unit runs ${INSTALLED_NATLB}`);
    const copy = join(dir, "natlb.service");
    writeFileSync(copy, unit.replaceAll(INSTALLED_NATLB, join(root, "bin", "natlb.js")));
    let stderr: string;
    try {
      ({ stderr } = await promisify(execFile)("systemd-analyze", ["verify", copy], { timeout: 60_000 }));
    } catch (error) {
      const failed = error as { code?: unknown; stderr?: string };
      if (failed.code === "ENOENT") throw new Error("systemd-analyze is missing: install the systemd package (scripts/bootstrap.sh does)");
      return t.fail(`systemd-analyze verify refused the unit:\n${failed.stderr ?? String(error)}`);
    }
    // verify exits 0 on unknown keys and bad values, which it only warns about.
    t.is(stderr.trim(), "", "no warnings");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("every natlb command line in the unit is one the CLI accepts", (t) => {
  const service = sectionEntries(readFileSync(unitPath, "utf8"), "Service");
  const natlbLines = service
    .filter(([key]) => key.startsWith("Exec"))
    .map(([key, value]) => [key, value.replace(/^[-+@:!]+/, "").split(/\s+/)] as const)
    .filter(([, words]) => words[0] === INSTALLED_NATLB);
  t.deepEqual(
    natlbLines.map(([key, words]) => `${key} ${words[1]}`),
    ["ExecStartPre kernel-setup", "ExecStart run", "ExecReload kernel-setup", "ExecStopPost kernel-undo"],
  );
  const program = buildProgram();
  for (const [key, words] of natlbLines) {
    const command = program.commands.find((c: Command) => c.name() === words[1]);
    if (!command) {
      t.fail(`${key}: natlb has no command ${words[1]}`);
      continue;
    }
    for (const word of words.slice(2).filter((w) => w.startsWith("-"))) {
      t.true(command.options.some((o) => o.long === word || o.short === word), `${key}: natlb ${words[1]} has no option ${word}`);
    }
  }
  // The daemon runs without the kernel set-up (ExecStartPre made it), with the same file.
  const start = natlbLines.find(([key]) => key === "ExecStart")![1];
  t.true(start.includes("--no-kernel-setup"));
  const setup = natlbLines.find(([key]) => key === "ExecStartPre")![1];
  t.is(setup[setup.indexOf("--config") + 1], start[start.indexOf("--config") + 1]);
});

test("the unit grants the data plane's capabilities, privileges the kernel set-up, reloads by SIGHUP, restarts on failure", (t) => {
  const service = sectionEntries(readFileSync(unitPath, "utf8"), "Service");
  const values = (key: string) => service.filter(([k]) => k === key).map(([, v]) => v);
  // CAP_NET_RAW: the packet rings; CAP_BPF and CAP_NET_ADMIN: the kernel fast path (balancer.ts dataPlaneFailure).
  const capabilities = ["CAP_BPF", "CAP_NET_ADMIN", "CAP_NET_RAW"];
  t.deepEqual(values("AmbientCapabilities").join(" ").split(/\s+/).sort(), capabilities);
  t.deepEqual(values("CapabilityBoundingSet").join(" ").split(/\s+/).sort(), capabilities);
  for (const key of ["ExecStartPre", "ExecStopPost"]) t.true(values(key).every((v) => v.startsWith("+")), `${key} runs privileged`);
  t.true(values("ExecReload").includes("/bin/kill -HUP $MAINPID"));
  t.deepEqual(values("Restart"), ["on-failure"]);
  t.deepEqual(values("RuntimeDirectory"), ["natlb"]);
  for (const key of ["NoNewPrivileges", "ProtectHome", "PrivateTmp"]) t.deepEqual(values(key), ["yes"], key);
  t.deepEqual(values("ProtectSystem"), ["strict"]);
});
