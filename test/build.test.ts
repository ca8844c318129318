// Both build paths of the addon stay alive: cmake-js (CMakeLists.txt, used by `npm ci`) and node-gyp
// (binding.gyp, `npm run build:gyp`). binding.gyp lists its sources by hand, so check it names every
// native source, then build it and compare the module's surface with the cmake-js build's.
import test from "ava";
import { execFile } from "node:child_process";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { promisify } from "node:util";

const root = join(__dirname, "..", "..");

function nativeSources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return nativeSources(path);
    return name.endsWith(".cc") ? [relative(root, path)] : [];
  });
}

test("binding.gyp names every native source file", (t) => {
  const gyp = JSON.parse(readFileSync(join(root, "binding.gyp"), "utf8")) as { targets: { sources: string[] }[] };
  t.deepEqual([...gyp.targets[0]!.sources].sort(), nativeSources(join(root, "native")).sort());
});

test("node-gyp builds the addon with the same surface as the cmake-js build", async (t) => {
  await promisify(execFile)("npm", ["run", "--silent", "build:gyp"], { cwd: root, timeout: 240_000 });
  const surface = (path: string) => {
    const addon = require(path) as Record<string, unknown> & { packet: Record<string, unknown> };
    return { top: Object.keys(addon).sort(), packet: Object.keys(addon.packet).sort() };
  };
  const gyp = surface(join(root, "build", "Release", "natlb.node"));
  t.deepEqual(gyp, surface(join(root, "build-cmake", "Release", "natlb.node")));
  t.true(gyp.top.includes("Engine"));
});
