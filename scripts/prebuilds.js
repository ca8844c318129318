#!/usr/bin/env node
// `npm run build:prebuilds`: puts the current local build of the addon (build-cmake/, else build/) into
// the package as its prebuilt addon, prebuildify-style: prebuilds/linux-x64/natlb.napi.glibc.node.
// N-API 8 makes one file serve every Node version; it needs the glibc, libstdc++ and libbpf.so.1
// symbol versions it was linked against (built on Debian 12: glibc 2.34, GCC 11's libstdc++, libbpf
// 1.x). Where it does not load, scripts/install.js compiles instead. `npm pack` runs this (prepack), so a package always carries the build it was made from.
// The name is not "prebuild": npm would run that before every `npm run build`, copying a stale build.
"use strict";
const { copyFileSync, existsSync, mkdirSync, renameSync } = require("node:fs");
const { dirname, join, relative } = require("node:path");
const { execFileSync } = require("node:child_process");
const { LOCAL_BUILDS, PREBUILT_ADDON } = require("./addonLocations.js");

const root = join(__dirname, "..");

function main() {
  if (process.platform !== "linux" || process.arch !== "x64") {
    throw new Error(`natlb prebuilds are made on linux-x64; this is ${process.platform}-${process.arch}`);
  }
  const localBuilds = LOCAL_BUILDS.map((path) => join(root, path));
  const source = localBuilds.find((path) => existsSync(path));
  if (!source) {
    throw new Error(`no local build of the addon to make the prebuild from (looked for ${localBuilds.join(", ")}): run \`npm run build\` first`);
  }
  const target = join(root, PREBUILT_ADDON);
  mkdirSync(dirname(target), { recursive: true });
  // Copied beside it, then renamed: a natlb that loaded the previous prebuild keeps its file.
  copyFileSync(source, `${target}.new`);
  renameSync(`${target}.new`, target);
  // Loaded in a fresh process: a prebuild that does not load must not go into a package.
  execFileSync(process.execPath, ["-e", `require(${JSON.stringify(target)}).flowLayout()`], { stdio: "inherit" });
  console.log(`natlb: ${relative(root, target)} <- ${relative(root, source)}`);
}

try {
  main();
} catch (error) {
  console.error(`natlb: ${error.message}`);
  process.exitCode = 1;
}
