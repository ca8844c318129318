// The documentation stays true to the repository: every relative link in the markdown resolves (file
// and, for markdown targets, heading anchor), every repository path cited in a source comment exists,
// no document cites a file the repository does not hold, and the generated config reference and JSON
// Schema equal what scripts/configReference.ts produces from the schema now. No network namespaces.
// The checkers are pure functions over a small file-system interface, so the first tests can show on
// fixtures that each one reports what it should (a checker that cannot fail checks nothing).

import test from "ava";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, normalize, sep } from "node:path";
import {
  CONFIG_REFERENCE_PATH, CONFIG_SCHEMA_PATH, configJsonSchemaText, configReferenceMarkdown, githubAnchor,
} from "../scripts/configReference";
import * as natlb from "../src/index";

const ROOT = join(__dirname, "..", "..");

/** What the checkers read: repository-relative paths with "/" separators. */
interface RepositoryFiles {
  exists(path: string): boolean;
  read(path: string): string;
}

const repository: RepositoryFiles = {
  exists: (path) => existsSync(join(ROOT, path)),
  read: (path) => readFileSync(join(ROOT, path), "utf8"),
};

/** Build outputs, dependencies and local results: not part of the repository's text. */
const SKIPPED_FOLDERS = new Set([".git", "node_modules", "dist", "build", "build-cmake", "prebuilds", "bench/results"]);

function repositoryFiles(folder = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, folder))) {
    const path = folder === "" ? name : `${folder}/${name}`;
    if (SKIPPED_FOLDERS.has(path)) continue;
    if (statSync(join(ROOT, path)).isDirectory()) out.push(...repositoryFiles(path));
    else out.push(path);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Markdown.

/** Markdown without fenced code blocks and inline code spans (links there are examples, not links). */
function proseOf(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "").replace(/`[^`\n]*`/g, "");
}

/** Every link target `[text](target)` in the prose. */
function markdownLinks(markdown: string): string[] {
  return [...proseOf(markdown).matchAll(/\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!);
}

/** The anchors GitHub gives a markdown file: one per heading (duplicates numbered), and explicit ids. */
function markdownAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const withoutFences = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "");
  for (const match of withoutFences.matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    // The anchor is made from the rendered text: link targets and HTML tags do not count.
    const text = match[1]!.replace(/\[([^\]]*)\]\([^)]*\)/g, "$1").replace(/<[^>]+>/g, "");
    const base = githubAnchor(text);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  for (const match of markdown.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(match[1]!);
  return anchors;
}

/** Problems with the relative links of one markdown file: missing targets and missing anchors. */
function brokenLinks(file: string, files: RepositoryFiles): string[] {
  const problems: string[] = [];
  for (const target of markdownLinks(files.read(file))) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;  // https:, mailto: ... are not the repository's
    const [pathPart, anchor] = target.split("#", 2) as [string, string | undefined];
    const resolved = pathPart === "" ? file : normalize(join(dirname(file), decodeURIComponent(pathPart))).split(sep).join("/");
    if (resolved.startsWith("..")) {
      problems.push(`${file}: ${target} leaves the repository`);
      continue;
    }
    if (!files.exists(resolved)) {
      problems.push(`${file}: ${target}: no file ${resolved}`);
      continue;
    }
    if (anchor !== undefined && anchor !== "" && resolved.endsWith(".md") && !markdownAnchors(files.read(resolved)).has(anchor)) {
      problems.push(`${file}: ${target}: no heading #${anchor} in ${resolved}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Paths cited in text.

const CITED_PATH = /(?<![\w./-])((?:src|native|lab|bench|docs|test|scripts|schema|systemd)\/[\w./-]*?\.(?:ts|mjs|cjs|js|cc|h|c|md|json|sh|service))(?![\w/-])/g;

/** The comment text of a source file (`//` and `#` line comments, block comments). */
function commentsOf(source: string, path: string): string {
  if (path.endsWith(".sh")) return source.split("\n").filter((line) => line.trimStart().startsWith("#")).join("\n");
  // Block comments, and line comments from a `//` not preceded by `:` or a quote (so "https://..."
  // in a string is no comment), in the order they appear.
  return [...source.matchAll(/\/\*[\s\S]*?\*\/|(?<![:"'`\\])\/\/.*$/gm)].map((m) => m[0]).join("\n");
}

/** Repository paths (src/..., native/..., docs/... with a file extension) cited in a text. */
function citedPaths(text: string): string[] {
  return [...text.matchAll(CITED_PATH)].map((m) => m[1]!.replace(/\.$/, ""));
}

/** Paths that name no repository file on purpose: where a tool writes its output, and placeholders. */
const NOT_REPOSITORY_FILES = [
  /^bench\/results\//,  // the benchmark's reports (git-ignored)
  /^src\/x\/y\.ts$/,  // scripts/prepack.js: the pattern "dist/src/x/y.js -> src/x/y.ts"
];

/** Whether a cited path names a repository file: itself, or for `.js` its TypeScript source (dist/ mirrors it). */
function citedFileExists(path: string, files: RepositoryFiles): boolean {
  return files.exists(path) || (path.endsWith(".js") && files.exists(`${path.slice(0, -3)}.ts`));
}

/** Cited paths that do not exist. */
function missingCitations(file: string, text: string, files: RepositoryFiles): string[] {
  return citedPaths(text)
    .filter((path) => !NOT_REPOSITORY_FILES.some((pattern) => pattern.test(path)) && !citedFileExists(path, files))
    .map((path) => `${file}: cites ${path}, which the repository does not contain`);
}

/**
 * Documents named in capitals (like README.md) that no folder of the repository holds:
 * a design note or changelog that was never committed, for instance.
 */
function missingNamedDocuments(file: string, text: string, basenames: ReadonlySet<string>): string[] {
  return [...new Set([...text.matchAll(/(?<![\w-])([A-Z][A-Z0-9_-]*\.md)\b/g)].map((m) => m[1]!))]
    .filter((name) => !basenames.has(name))
    .map((name) => `${file}: mentions ${name}, which the repository does not contain`);
}

const SOURCE_EXTENSIONS = /\.(ts|mjs|cjs|js|cc|h|c|sh)$/;
const CITING_FOLDERS = /^(src|native|lab|test|bench|scripts)\//;

function markdownFiles(all: readonly string[]): string[] {
  return all.filter((f) => f === "README.md" || f === "bench/README.md" || (f.startsWith("docs/") && f.endsWith(".md")));
}

// ---------------------------------------------------------------------------------------------
// The checkers, on fixtures: each must be able to fail.

function fixture(contents: Record<string, string>): RepositoryFiles {
  return {
    exists: (path) => path in contents || Object.keys(contents).some((p) => p.startsWith(`${path}/`)),
    read: (path) => {
      const text = contents[path];
      if (text === undefined) throw new Error(`fixture has no ${path}`);
      return text;
    },
  };
}

test("the link checker reports a missing file and a missing heading, and accepts good links", (t) => {
  const files = fixture({
    "README.md": "[a](fixture/a.md) [b](fixture/gone.md) [c](fixture/a.md#the-kernel-set-up) [d](fixture/a.md#nothing) [e](https://example.org/x) `[f](no.md)`",
    "fixture/a.md": "# A\n\n## The kernel set-up\n\n```\n# not a heading\n```\n[self](#a) [up](../README.md) [dir](../fixture)",
  });
  t.deepEqual(brokenLinks("README.md", files), [
    "README.md: fixture/gone.md: no file fixture/gone.md",
    "README.md: fixture/a.md#nothing: no heading #nothing in fixture/a.md",
  ]);
  t.deepEqual(brokenLinks("fixture/a.md", files), []);
  t.deepEqual(brokenLinks("fixture/a.md", fixture({ "fixture/a.md": "[out](../../etc/passwd)" })), [
    "fixture/a.md: ../../etc/passwd leaves the repository",
  ]);
});

test("anchors follow GitHub: punctuation dropped, duplicates numbered, code spans kept as text", (t) => {
  const anchors = markdownAnchors("# Reading `natlb status`\n## Path 1: user space on AF_PACKET rings\n## Notes\n## Notes\n");
  t.deepEqual([...anchors], ["reading-natlb-status", "path-1-user-space-on-af_packet-rings", "notes", "notes-1"]);
});

test("the citation checker finds paths in comments, not in code, and reports missing ones", (t) => {
  const source = [
    "// see native/flow/flow_layout.h and src/gone.ts.",
    'const url = "https://example.org/src/not-a-citation.ts";',
    "/* docs/architecture.md, \"Checksums\" */",
    'import x from "lab/inCode.ts";',
    "// compiled: lab/present.js; output: bench/results/latest.json",
  ].join("\n");
  const comments = commentsOf(source, "src/x.ts");
  t.deepEqual(citedPaths(comments), [
    "native/flow/flow_layout.h", "src/gone.ts", "docs/architecture.md", "lab/present.js", "bench/results/latest.json",
  ]);
  const files = fixture({ "native/flow/flow_layout.h": "", "docs/architecture.md": "", "lab/present.ts": "" });
  t.deepEqual(missingCitations("src/x.ts", comments, files), ["src/x.ts: cites src/gone.ts, which the repository does not contain"]);
});

test("a document named in capitals that the repository lacks is reported", (t) => {
  // Built at run time, so this file does not itself name a missing document.
  const notes = `${"notes".toUpperCase()}.md`;
  const missing = missingNamedDocuments("a.ts", `see README.md and ${notes}, then ${notes} again`, new Set(["README.md"]));
  t.deepEqual(missing, [`a.ts: mentions ${notes}, which the repository does not contain`]);
});

// ---------------------------------------------------------------------------------------------
// The repository.

test("every relative link in README.md, bench/README.md and docs/ resolves", (t) => {
  t.true(repository.exists("package.json"), "ROOT is the repository root");
  const markdown = markdownFiles(repositoryFiles());
  t.true(markdown.includes("docs/architecture.md") && markdown.includes("docs/operations.md"), "the docs are there");
  t.deepEqual(markdown.flatMap((file) => brokenLinks(file, repository)), []);
});

test("every repository path cited in a source comment or a document exists", (t) => {
  const all = repositoryFiles();
  const sources = all.filter((f) => CITING_FOLDERS.test(f) && SOURCE_EXTENSIONS.test(f));
  t.true(sources.length > 100, "source files found");
  const problems = [
    ...sources.flatMap((file) => missingCitations(file, commentsOf(repository.read(file), file), repository)),
    ...markdownFiles(all).flatMap((file) => missingCitations(file, repository.read(file), repository)),
  ];
  t.deepEqual(problems, []);
});

test("no text in the repository names a document the repository does not contain", (t) => {
  const all = repositoryFiles();
  const basenames = new Set(all.map((f) => f.slice(f.lastIndexOf("/") + 1)));
  const texts = all.filter((f) => /\.(md|ts|mjs|cjs|js|cc|h|c|sh|json|service|txt)$/.test(f) && f !== "package-lock.json");
  t.deepEqual(texts.flatMap((file) => missingNamedDocuments(file, repository.read(file), basenames)), []);
  // The design notes natlb was planned from were never part of the repository; docs/ holds their facts.
  const designNotes = `${"design".toUpperCase()}.md`;
  t.deepEqual(texts.filter((file) => repository.read(file).includes(designNotes)), []);
});

test("docs/config.md and the JSON Schema are what `npm run docs` generates from src/config.ts", (t) => {
  const hint = "the config schema changed: run `npm run docs` and commit the result";
  t.is(repository.read(CONFIG_REFERENCE_PATH), configReferenceMarkdown(), hint);
  t.is(repository.read(CONFIG_SCHEMA_PATH), configJsonSchemaText(), hint);
});

test("the API reference (docs/api/) lists every value the package exports", (t) => {
  // Types leave no trace at run time, so only values are checked; `npm run docs` regenerates it all.
  const exported = Object.keys(natlb);
  const index = repository.read("docs/api/README.md").replace(/\\_/g, "_");
  const missing = exported.filter((name) => !index.includes(`[${name}](`));
  t.deepEqual(missing, [], "run `npm run docs` and commit docs/api/");
});
