// The lab's and the benchmark's small C/C++ programs (the flood generator, the short-connection
// load, the flow-lookup loop), built on demand into dist/native-tools/ and rebuilt when a source is
// newer than the binary. A missing compiler is reported, not fatal: callers fall back or say why.
// Each build writes a temporary file and renames it, so two processes building the same tool at
// once (tests run in parallel) never run a half-written binary.
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runIn } from './netns';

/** The repository root (this file runs from dist/lab/). */
export const REPO_ROOT = join(__dirname, '..', '..');
const BIN_DIR = join(REPO_ROOT, 'dist', 'native-tools');

export interface NativeToolSpec {
  name: string;
  compiler: 'cc' | 'g++';
  /** Compiled sources (repo-relative). */
  sources: string[];
  /** Other files whose change requires a rebuild (headers, repo-relative). */
  dependsOn?: string[];
  flags: string[];
}

export type BuildResult = { ok: true; path: string } | { ok: false; reason: string };

export async function buildNativeTool(spec: NativeToolSpec): Promise<BuildResult> {
  const out = join(BIN_DIR, spec.name);
  const inputs = [...spec.sources, ...(spec.dependsOn ?? [])].map((p) => join(REPO_ROOT, p));
  const missing = inputs.find((p) => !existsSync(p));
  if (missing !== undefined) return { ok: false, reason: `${missing} is missing` };
  if (existsSync(out)) {
    const built = statSync(out).mtimeMs;
    if (inputs.every((p) => statSync(p).mtimeMs <= built)) return { ok: true, path: out };
  }
  mkdirSync(BIN_DIR, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const r = await runIn(null, spec.compiler, [...spec.flags, ...spec.sources.map((p) => join(REPO_ROOT, p)), '-o', tmp], {
    timeoutMs: 180_000,
  });
  if (r.code !== 0) {
    rmSync(tmp, { force: true });
    return { ok: false, reason: `${spec.compiler} failed: ${r.stderr.trim().slice(0, 500)}` };
  }
  renameSync(tmp, out);
  return { ok: true, path: out };
}
