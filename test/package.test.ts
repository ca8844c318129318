// The npm package: what `npm pack` puts in it, and what installing it into an empty directory gives —
// a working `natlb` command, and the prebuilt addon loaded where nothing was compiled. Also the install
// script's choice between the prebuild and compiling (scripts/install.js).
//
// The pack runs the package's prepack step (scripts/prepack.js: stale-output check, prebuild refresh)
// but not its prepare step (`tsc -p .`): `npm test` compiled dist/ just before, and compiling again
// would rewrite files that the test files running beside this one are loading.
import test from "ava";
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { EXIT_CODES } from "../src/exitCodes";
import { PREBUILT_ADDON } from "../src/native";
import { startBalancer } from "../lab/balancerProcess";
import { blobUrl, runDownload } from "../lab/download";
import { SERVICE_PORT, tcpService, withNatLab } from "./support/lab";

const root = join(__dirname, "..", "..");
const version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; a non-zero status is a result, not an exception. */
async function run(file: string, args: string[], cwd: string, timeout = 60_000): Promise<Run> {
  try {
    const { stdout, stderr } = await promisify(execFile)(file, args, { cwd, timeout, maxBuffer: 16 << 20 });
    return { status: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string; message: string };
    if (typeof failed.code !== "number") throw error; // it did not run (ENOENT) or timed out
    return { status: failed.code, stdout: failed.stdout ?? "", stderr: failed.stderr ?? "" };
  }
}

async function runOk(file: string, args: string[], cwd: string, timeout?: number): Promise<string> {
  const result = await run(file, args, cwd, timeout);
  if (result.status !== 0) {
    throw new Error(`${file} ${args.join(" ")} exited with ${result.status}:\n${result.stderr}\n${result.stdout}`);
  }
  return result.stdout;
}

interface Packed {
  tarball: string;
  entries: string[];
  /** The directory the tarball was installed into (with node_modules/natlb). */
  installDir: string;
  /** What `npm install` printed, the install script's lines included. */
  installLog: string;
}

const scratch = mkdtempSync(join(tmpdir(), "natlb-package-"));
let packedOnce: Promise<Packed> | undefined;

/** Packs the package and installs the tarball into an empty directory, once for every test here. */
function packed(): Promise<Packed> {
  packedOnce ??= (async () => {
    await runOk(process.execPath, [join(root, "scripts", "prepack.js")], root);
    const packDir = join(scratch, "pack");
    mkdirSync(packDir);
    await runOk("nice", ["-n", "19", "npm", "pack", "--ignore-scripts", "--silent", "--pack-destination", packDir], root);
    const tarball = join(packDir, `natlb-${version}.tgz`);
    const entries = (await runOk("tar", ["-tzf", tarball], packDir)).split("\n").filter((line) => line !== "");
    const installDir = join(scratch, "install");
    mkdirSync(installDir);
    // --foreground-scripts: the install script's words (prebuild or compile) come out on stdout.
    const installLog = await runOk(
      "nice",
      ["-n", "19", "npm", "install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", "--foreground-scripts", tarball],
      installDir,
      240_000,
    );
    return { tarball, entries, installDir, installLog };
  })();
  return packedOnce;
}

test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

function natlbIn(installDir: string): string {
  return join(installDir, "node_modules", ".bin", "natlb");
}

test("the tarball has the runtime, the native sources, the prebuild, the unit and the licence, and no tests, lab or bench", async (t) => {
  const { tarball, entries } = await packed();
  const paths = entries.map((entry) => entry.replace(/^package\//, ""));
  for (const required of [
    "package.json", "LICENSE", "README.md", "bin/natlb.js", "dist/src/cli.js", "dist/src/index.js", "dist/src/index.d.ts",
    "dist/src/native.d.ts", "scripts/install.js", "scripts/addonLocations.js", "native/addon.cc", "CMakeLists.txt", PREBUILT_ADDON, "systemd/natlb.service",
  ]) {
    t.true(paths.includes(required), `${required} is in the package`);
  }
  const devOnly = paths.filter((path) =>
    /^(test|bench|lab|build|build-cmake|node_modules)\//.test(path) || /^dist\/(?!src\/)/.test(path) || path.endsWith(".map")
    || (path.startsWith("scripts/") && !["scripts/install.js", "scripts/addonLocations.js"].includes(path)),
  );
  t.deepEqual(devOnly, [], "nothing dev-only is packed");
  t.log(`${tarball}: ${(statSync(tarball).size / 1024).toFixed(0)} KiB, ${paths.length} files`);
});

test("the packed package.json is publishable, exports its types and names the MIT licence it carries", async (t) => {
  const { installDir } = await packed();
  const packageDir = join(installDir, "node_modules", "natlb");
  const manifest = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as Record<string, unknown> & {
    exports: Record<string, unknown>;
  };
  t.is(manifest.private, undefined);
  t.is(manifest.license, "MIT");
  t.regex(readFileSync(join(packageDir, "LICENSE"), "utf8"), /^MIT License\n/);
  t.deepEqual(Object.keys(manifest.exports).sort(), [".", "./package.json"]);
  t.true(existsSync(join(packageDir, manifest.types as string)), "types points at a packed file");
  // The export resolves from the installing project, and the API is there.
  const api = await runOk(process.execPath, ["-e", "const n = require('natlb'); console.log(typeof n.parseConfig, typeof n.Balancer)"], installDir);
  t.is(api.trim(), "function function");
  // ES modules import it too (the "default" condition), with named exports.
  const esm = await runOk(process.execPath, ["--input-type=module", "-e", "import { parseConfig } from 'natlb'; console.log(typeof parseConfig)"], installDir);
  t.is(esm.trim(), "function");
});

test("the installed natlb prints its version and its help", async (t) => {
  const { installDir } = await packed();
  // As a user would type it (npx finds node_modules/.bin/natlb; --no: never fetch another natlb).
  const versionRun = await run("npx", ["--no", "--", "natlb", "--version"], installDir);
  t.is(versionRun.status, 0, versionRun.stderr);
  t.is(versionRun.stdout.trim(), version);
  const help = await run(natlbIn(installDir), ["--help"], installDir);
  t.is(help.status, 0, help.stderr);
  for (const command of ["run", "check-config", "kernel-setup", "kernel-undo", "status"]) t.regex(help.stdout, new RegExp(`\\b${command}\\b`));
});

test("the installed natlb says that demo and bench need a git checkout", async (t) => {
  const { installDir } = await packed();
  for (const command of ["demo", "bench"]) {
    const result = await run(natlbIn(installDir), [command], installDir);
    t.not(result.status, 0, command);
    t.regex(result.stderr, new RegExp(`natlb ${command}\` runs from a git checkout`), command);
  }
});

test("the installed natlb checks a valid config (defaults filled in) and refuses an invalid one by its field", async (t) => {
  const { installDir } = await packed();
  const valid = join(scratch, "valid.json");
  writeFileSync(valid, JSON.stringify({ services: [{ vip: "198.18.0.100", port: 80, reals: [{ ip: "198.18.1.11" }] }] }));
  const good = await run(natlbIn(installDir), ["check-config", valid], installDir);
  t.is(good.status, 0, good.stderr);
  const shown = JSON.parse(good.stdout) as { services: { scheduler: string; protocol: string; reals: { port: number }[] }[] };
  t.is(shown.services[0]!.scheduler, "wrr");
  t.is(shown.services[0]!.reals[0]!.port, 80);

  const invalid = join(scratch, "invalid.json");
  writeFileSync(invalid, JSON.stringify({ services: [{ vip: "198.18.0.100", port: 80, reals: [{ ip: "198.18.1.11", weight: "abc" }] }] }));
  const bad = await run(natlbIn(installDir), ["check-config", invalid], installDir);
  t.is(bad.status, EXIT_CODES.config);
  t.regex(bad.stderr, /services\[0\]\.reals\[0\]\.weight/);
  // `run` refuses it the same way, before it touches the network.
  const refusedRun = await run(natlbIn(installDir), ["run", "--no-kernel-setup", "--config", invalid], installDir);
  t.is(refusedRun.status, EXIT_CODES.config);
  t.regex(refusedRun.stderr, /services\[0\]\.reals\[0\]\.weight/);
});

test("the installed natlb runs: in a lab gateway, with the defaults, downloads through the VIP arrive intact, carried by the kernel fast path", async (t) => {
  const { installDir } = await packed();
  await withNatLab(t, { offloads: true, startNatlb: false, prefix: "pk" }, async (env) => {
    const { lab, servers } = env;
    env.natlb = await startBalancer(lab, { services: [tcpService(lab, [1, 1, 1])] }, { natlbBin: natlbIn(installDir) });
    const bytes = 4 * 1024 * 1024;
    const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, bytes, "installed"), conns: 3, count: 3, localPortBase: 33000 });
    t.is(summary.failed, 0, JSON.stringify(summary.results.filter((r) => r.error)));
    const served = servers.flatMap((s) => s.served());
    for (const result of summary.results) {
      t.is(result.bytes, bytes);
      t.is(result.sha256, served.find((e) => e.peerPort === result.localPort)?.sha256 ?? null, `download from port ${result.localPort}`);
    }
    const status = await env.natlb.status();
    t.like(status.kernelFastPath, { setting: "auto", enabled: true });
    t.is(status.counters.kernelScheduledFlows + status.counters.flowsOffloaded, 3, "the default gave the downloads to the kernel fast path");
    const human = await env.natlb.cli(["status"]);
    t.regex(human.stdout, /forwarding: kernel fast path/);
  });
});

test("a TypeScript project that installed the package gets its types through the exports", async (t) => {
  const { installDir } = await packed();
  const importLine = `import { parseConfig, type NatlbConfig } from "natlb";`;
  writeFileSync(
    join(installDir, "typed.ts"),
    `${importLine}\nconst config: NatlbConfig = parseConfig({ services: [] });\nexport const capacity: number = config.flowCapacity;\n`,
  );
  // Proof that the types are natlb's, not `any`: a wrong use is refused.
  writeFileSync(join(installDir, "mistyped.ts"), `${importLine}\nexport const capacity: string = parseConfig({ services: [] }).flowCapacity;\n`);
  const checked = await run(process.execPath, [
    join(root, "node_modules", "typescript", "bin", "tsc"), "--noEmit", "--strict", "--skipLibCheck", "--module", "node16",
    "--moduleResolution", "node16", "--typeRoots", join(root, "node_modules", "@types"), "--types", "node", "typed.ts", "mistyped.ts",
  ], installDir);
  const errors = checked.stdout.split("\n").filter((line) => /error TS\d+/.test(line));
  t.is(errors.length, 1, checked.stdout);
  t.regex(errors[0] ?? "", /^mistyped\.ts\(2,14\): error TS2322/);
});

/** Which addon file a fresh process loads from an installed package, and what nativeAddonPath() says. */
async function loadedAddon(packageDir: string, cwd: string): Promise<{ path: string; loaded: string[] }> {
  const script = `
    const native = require(${JSON.stringify(join(packageDir, "dist", "src", "native.js"))});
    native.loadNative().flowLayout();
    const loaded = Object.keys(require.cache).filter((file) => file.endsWith(".node"));
    console.log(JSON.stringify({ path: native.nativeAddonPath(), loaded }));`;
  return JSON.parse(await runOk(process.execPath, ["-e", script], cwd)) as { path: string; loaded: string[] };
}

test("the installed package loads its prebuilt addon (the install compiled nothing), and a local build wins over it", async (t) => {
  const { installDir, installLog } = await packed();
  const packageDir = join(installDir, "node_modules", "natlb");
  const prebuild = join(packageDir, PREBUILT_ADDON);
  t.regex(installLog, /natlb: using the prebuilt addon/, "the install script ran and chose the prebuild");
  t.false(existsSync(join(packageDir, "build-cmake")), "the install script compiled nothing");
  t.deepEqual(await loadedAddon(packageDir, installDir), { path: prebuild, loaded: [prebuild] });

  // A developer's fresh build (here: a copy) is preferred to the prebuild.
  const localBuild = join(packageDir, "build-cmake", "Release", "natlb.node");
  mkdirSync(join(packageDir, "build-cmake", "Release"), { recursive: true });
  copyFileSync(prebuild, localBuild);
  try {
    t.deepEqual(await loadedAddon(packageDir, installDir), { path: localBuild, loaded: [localBuild] });
  } finally {
    rmSync(join(packageDir, "build-cmake"), { recursive: true, force: true });
  }
});

interface InstallScript {
  chooseAddon(root: string, env?: Record<string, string | undefined>): { use: "prebuild" | "compile"; reason: string };
}

test("the install script uses a prebuild that loads, and compiles in a checkout, on request, or when the prebuild is missing or broken", async (t) => {
  const { chooseAddon } = require(join(root, "scripts", "install.js")) as InstallScript;
  const builtAddon = join(root, PREBUILT_ADDON);
  await packed(); // prepack made the prebuild
  const packageLike = (name: string, prebuild: "working" | "broken" | "none") => {
    const dir = join(scratch, name);
    mkdirSync(join(dir, "prebuilds", "linux-x64"), { recursive: true });
    if (prebuild === "working") copyFileSync(builtAddon, join(dir, PREBUILT_ADDON));
    if (prebuild === "broken") writeFileSync(join(dir, PREBUILT_ADDON), "not an ELF file");
    return dir;
  };
  const working = packageLike("working", "working");
  t.is(chooseAddon(working, {}).use, "prebuild");
  t.like(chooseAddon(working, { NATLB_BUILD_FROM_SOURCE: "1" }), { use: "compile", reason: "NATLB_BUILD_FROM_SOURCE=1" });
  const broken = chooseAddon(packageLike("broken", "broken"), {});
  t.is(broken.use, "compile");
  t.regex(broken.reason, /does not load here/);
  t.like(chooseAddon(packageLike("none", "none"), {}), { use: "compile", reason: `there is no ${PREBUILT_ADDON}` });
  const checkout = packageLike("checkout", "working");
  mkdirSync(join(checkout, ".git"));
  t.like(chooseAddon(checkout, {}), { use: "compile", reason: "this is a git checkout" });
});
