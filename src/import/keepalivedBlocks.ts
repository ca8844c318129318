// keepalived.conf's syntax, read into a tree: keywords with their arguments, blocks in braces,
// comments from '#' or '!' to the end of the line, double-quoted words. No keepalived semantics
// here (keepalivedConf.ts has them).

import { ConfigError } from "../errors";

export interface KeepalivedStatement {
  readonly keyword: string;
  readonly args: readonly string[];
  readonly line: number;
  /** The statements inside `{ }`; undefined for a statement without a block. */
  readonly block: KeepalivedStatement[] | undefined;
}

interface Token {
  readonly text: string;
  readonly line: number;
  /** "{", "}", an end of line, or a word (quoted words lose their quotes). */
  readonly kind: "open" | "close" | "newline" | "word";
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  for (let i = 0; i < text.length; ) {
    const c = text[i]!;
    if (c === "\n") {
      tokens.push({ text: c, line, kind: "newline" });
      line++;
      i++;
    } else if (c === "#" || c === "!") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (/\s/.test(c)) {
      i++;
    } else if (c === "{" || c === "}") {
      tokens.push({ text: c, line, kind: c === "{" ? "open" : "close" });
      i++;
    } else if (c === '"') {
      const end = text.indexOf('"', i + 1);
      if (end < 0 || text.slice(i, end).includes("\n")) throw new ConfigError(`line ${line}`, "a quoted word does not end on its line: add the closing \"");
      tokens.push({ text: text.slice(i + 1, end), line, kind: "word" });
      i = end + 1;
    } else {
      let end = i;
      while (end < text.length && !/[\s{}]/.test(text[end]!)) end++;
      tokens.push({ text: text.slice(i, end), line, kind: "word" });
      i = end;
    }
  }
  return tokens;
}

/** Parses keepalived.conf text into statements. Throws ConfigError on unbalanced braces. */
export function parseKeepalivedBlocks(text: string): KeepalivedStatement[] {
  const tokens = tokenize(text);
  let at = 0;
  const statements = (depth: number, openedAt: number): KeepalivedStatement[] => {
    const out: KeepalivedStatement[] = [];
    while (at < tokens.length) {
      const token = tokens[at]!;
      if (token.kind === "newline") {
        at++;
        continue;
      }
      if (token.kind === "close") {
        if (depth === 0) throw new ConfigError(`line ${token.line}`, "a } closes no block: remove it");
        at++;
        return out;
      }
      if (token.kind === "open") throw new ConfigError(`line ${token.line}`, "a { without a keyword before it");
      const args: string[] = [];
      at++;
      while (at < tokens.length && tokens[at]!.kind === "word") args.push(tokens[at++]!.text);
      let block: KeepalivedStatement[] | undefined;
      // A block may open on the keyword's line or the next one.
      let look = at;
      while (look < tokens.length && tokens[look]!.kind === "newline" && look - at < 2) look++;
      if (look < tokens.length && tokens[look]!.kind === "open") {
        at = look + 1;
        block = statements(depth + 1, token.line);
      }
      out.push({ keyword: token.text, args, line: token.line, block });
    }
    if (depth > 0) throw new ConfigError(`line ${openedAt}`, "this block is never closed: add its }");
    return out;
  };
  return statements(0, 0);
}
