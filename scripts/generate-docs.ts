// `npm run docs` step 1 of 2: writes the configuration reference (docs/config.md) and the JSON Schema
// (schema/natlb-config.schema.json) from the zod schema. Step 2 is TypeDoc (typedoc.json: docs/api/).
// Run from the repository root, after `tsc -p .` (this file runs from dist/scripts/).

import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import {
  CONFIG_REFERENCE_PATH, CONFIG_SCHEMA_PATH, configJsonSchema, configJsonSchemaText, configReferenceMarkdown,
} from "./configReference";

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  console.log(`wrote ${path}`);
}

write(CONFIG_SCHEMA_PATH, configJsonSchemaText());
write(CONFIG_REFERENCE_PATH, configReferenceMarkdown(configJsonSchema()));
