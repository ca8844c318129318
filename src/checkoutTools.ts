// The dev-only parts of natlb (the network-namespace lab with `natlb demo`, the benchmark) live in a
// git checkout, not in the npm package. The CLI reaches them through this one door, so an installed
// package says clearly where they are instead of failing on a missing module.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { NatlbError } from "./errors";

/** The compiled tree's root: dist/ in a checkout (this file runs from dist/src/). */
const DIST_ROOT = join(__dirname, "..");

/** The compiled dev-only script `relative` (e.g. "lab/demo.js"), or a NatlbError saying it needs a checkout. */
export function checkoutScript(relative: string, command: string): string {
  const path = join(DIST_ROOT, relative);
  if (!existsSync(path)) {
    throw new NatlbError(
      "E_CHECKOUT_ONLY",
      `\`natlb ${command}\` runs from a git checkout of natlb, not from the installed package: ` +
        "clone the repository, then run `bash scripts/bootstrap.sh` in it",
    );
  }
  return path;
}
