// Which natlb build ran: the addon's sha256 (first 12 hex digits). The data plane may be rebuilt while
// a long benchmark runs; every natlb start records the fingerprint so mixed builds are reported.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(__dirname, "..", "..");
// Same order as src/native.ts loadNative().
const CANDIDATES = [join(ROOT, "build-cmake", "Release", "natlb.node"), join(ROOT, "build", "Release", "natlb.node")];

/** sha256 prefix of the addon natlb loads, or null when none is built. */
export function addonFingerprint(): string | null {
  const path = CANDIDATES.find((p) => existsSync(p));
  if (path === undefined) return null;
  return createHash("sha256").update(readFileSync(path)).digest("hex").slice(0, 12);
}
