// `natlb import`: reads the source file, converts it, and checks the result as natlb would load it,
// so an import never writes a config that natlb then refuses.

import { readFile, writeFile } from "node:fs/promises";
import { parseConfig } from "../config";
import { ConfigError } from "../errors";
import { importedConfigText, type ImportResult } from "./importResult";
import { importIpvsadmSave } from "./ipvsadmSave";
import { importKeepalivedConf } from "./keepalivedConf";

export type ImportSource = "ipvsadm" | "keepalived";

export function importText(kind: ImportSource, text: string, file?: string): ImportResult {
  let result: ImportResult;
  try {
    result = kind === "ipvsadm" ? importIpvsadmSave(text) : importKeepalivedConf(text);
  } catch (error) {
    if (error instanceof ConfigError && file !== undefined) throw new ConfigError(error.path, error.issues[0]!.problem, { file, issues: error.issues });
    throw error;
  }
  try {
    parseConfig(result.config);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const issues = error.issues.map((i) => ({ path: i.path, problem: `in the imported configuration: ${i.problem}; fix that part of the source` }));
    throw new ConfigError(issues[0]!.path, issues[0]!.problem, { issues, ...(file === undefined ? {} : { file }) });
  }
  return result;
}

/** Imports `file`; writes the config to `output` when given (never over an existing file). */
export async function importFile(kind: ImportSource, file: string, output?: string): Promise<ImportResult> {
  const result = importText(kind, await readFile(file, "utf8"), file);
  if (output !== undefined) await writeFile(output, importedConfigText(result), { flag: "wx", mode: 0o644 });
  return result;
}
