// Where natlb's native addon can be, relative to the package root: the one definition that the loader
// (src/native.ts), the install step (install.js) and the prebuild maker (prebuilds.js) share. Plain
// CommonJS: the install step runs before anything is compiled.
"use strict";
const { join } = require("node:path");

/** Local builds, preferred in this order: cmake-js (`npm ci`, `npm run build`), then node-gyp (`npm run build:gyp`). */
const LOCAL_BUILDS = [join("build-cmake", "Release", "natlb.node"), join("build", "Release", "natlb.node")];

/** The prebuilt addon, prebuildify-style (N-API: one file for every Node version on linux-x64 glibc). */
const PREBUILT_ADDON = join("prebuilds", "linux-x64", "natlb.napi.glibc.node");

module.exports = { LOCAL_BUILDS, PREBUILT_ADDON };
