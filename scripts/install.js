#!/usr/bin/env node
// npm's "install" step: give natlb a native addon that loads on this machine.
// - In an installed package: use the prebuilt addon (prebuilds/) when it loads here, so a machine
//   without a compiler works; compile with cmake-js only when it does not load (another libc, no
//   libbpf.so.1, another architecture).
// - In a git checkout: always compile, since developers change the native code and the loader
//   (src/native.ts) prefers a local build to the prebuild.
// NATLB_BUILD_FROM_SOURCE=1 compiles in any case.
"use strict";
const { existsSync } = require("node:fs");
const { join } = require("node:path");
const { spawnSync } = require("node:child_process");

const { PREBUILT_ADDON } = require("./addonLocations.js");

/** Why the prebuild cannot serve here, or undefined when it loads. */
function prebuildProblem(root, load = require) {
  if (process.platform !== "linux" || process.arch !== "x64") {
    return `the prebuild is for linux-x64, this is ${process.platform}-${process.arch}`;
  }
  const path = join(root, PREBUILT_ADDON);
  if (!existsSync(path)) return `there is no ${PREBUILT_ADDON}`;
  try {
    const addon = load(path);
    if (typeof addon.flowLayout !== "function") return `${PREBUILT_ADDON} is not natlb's addon`;
    return undefined;
  } catch (error) {
    return `${PREBUILT_ADDON} does not load here (${error.message.split("\n")[0]})`;
  }
}

/** The addon source: "prebuild" or "compile", with the reason. */
function chooseAddon(root, env = process.env, load = require) {
  if (env.NATLB_BUILD_FROM_SOURCE === "1") return { use: "compile", reason: "NATLB_BUILD_FROM_SOURCE=1" };
  if (existsSync(join(root, ".git"))) return { use: "compile", reason: "this is a git checkout" };
  const problem = prebuildProblem(root, load);
  return problem === undefined ? { use: "prebuild", reason: `${PREBUILT_ADDON} loads here` } : { use: "compile", reason: problem };
}

function compile(root) {
  const cmakeJs = require.resolve("cmake-js/bin/cmake-js", { paths: [root] });
  const result = spawnSync(process.execPath, [cmakeJs, "compile", "--out", "build-cmake"], { cwd: root, stdio: "inherit" });
  return result.status === 0;
}

function main() {
  const root = join(__dirname, "..");
  const choice = chooseAddon(root);
  if (choice.use === "prebuild") {
    console.log(`natlb: using the prebuilt addon (${choice.reason})`);
    return;
  }
  console.log(`natlb: compiling the native addon (${choice.reason})`);
  if (!compile(root)) {
    console.error(
      "natlb: compiling the native addon failed. It needs cmake, make, g++, clang and libbpf-dev " +
        "(Debian/Ubuntu: apt-get install cmake make g++ clang libbpf-dev), then `npm rebuild natlb`.",
    );
    process.exitCode = 1;
  }
}

if (require.main === module) main();

module.exports = { PREBUILT_ADDON, chooseAddon, prebuildProblem };
