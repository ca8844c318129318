#!/usr/bin/env node
// `npm pack`/`npm publish` (prepack): refuses to pack compiled files whose source is gone (dist/src
// outlives renames and moves; the package takes dist/src whole), then refreshes the prebuilt addon
// from the current build (scripts/prebuilds.js); without a local build, a prebuild already in place
// (one made on another machine, say) is packed as it is. npm's "prepare" then compiles the TypeScript.
"use strict";
const { existsSync, readdirSync, statSync } = require("node:fs");
const { join, relative } = require("node:path");
const { spawnSync } = require("node:child_process");
const { PREBUILT_ADDON } = require("./install.js");

const root = join(__dirname, "..");

function compiledFiles(dir) {
  let names;
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? compiledFiles(path) : [path];
  });
}

/** dist/src/x/y.js (.d.ts, .js.map) -> src/x/y.ts */
function sourceOf(compiled) {
  return join(root, relative(join(root, "dist"), compiled).replace(/(\.d\.ts|\.js\.map|\.js)$/, ".ts"));
}

const orphans = compiledFiles(join(root, "dist", "src")).filter((file) => {
  try {
    statSync(sourceOf(file));
    return false;
  } catch {
    return true;
  }
});
if (orphans.length > 0) {
  console.error(
    `natlb: dist/src holds compiled files without a source (${orphans.slice(0, 5).map((f) => relative(root, f)).join(", ")}` +
      `${orphans.length > 5 ? ", …" : ""}); they would go into the package: remove dist/ and pack again`,
  );
  process.exit(1);
}
const localBuild = [join(root, "build-cmake", "Release", "natlb.node"), join(root, "build", "Release", "natlb.node")].some(existsSync);
if (!localBuild && existsSync(join(root, PREBUILT_ADDON))) {
  console.log(`natlb: no local build; packing the ${PREBUILT_ADDON} already there`);
} else {
  process.exitCode = spawnSync(process.execPath, [join(__dirname, "prebuilds.js")], { stdio: "inherit" }).status ?? 1;
}
