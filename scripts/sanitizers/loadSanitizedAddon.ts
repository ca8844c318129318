// Preloaded (node --require) by the sanitizer test runs only (./sanitizedAddon.ts): every require of
// natlb's addon (any file named natlb*.node, whichever place src/native.ts chose) loads the sanitized
// build named by NATLB_SANITIZED_ADDON instead, and says so once on stderr. Without the variable it
// refuses to run, so a run cannot silently test the unsanitized addon.
import Module from "node:module";
import { basename } from "node:path";

const sanitized = process.env.NATLB_SANITIZED_ADDON;
if (!sanitized) throw new Error("loadSanitizedAddon: NATLB_SANITIZED_ADDON is not set");

interface NodeExtensions {
  [extension: string]: (module: NodeJS.Module, filename: string) => void;
}
const extensions = (Module as unknown as { _extensions: NodeExtensions })._extensions;
const loadNative = extensions[".node"]!;
let announced = false;
extensions[".node"] = (module, filename) => {
  if (!basename(filename).startsWith("natlb")) return loadNative(module, filename);
  if (!announced) {
    process.stderr.write(`natlb sanitizers: loading ${sanitized} in place of ${filename}\n`);
    announced = true;
  }
  return loadNative(module, sanitized);
};
