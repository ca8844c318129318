// The configuration reference, derived from the zod schema in src/config.ts: a JSON Schema for editors
// (schema/natlb-config.schema.json) and a markdown page for people (docs/config.md). Both are
// generated so they cannot drift from what `natlb check-config` accepts; test/docs.test.ts fails when
// the committed files differ from what these functions produce. Dev-only: not part of the runtime.

import { z } from "zod";
import { configSchema, RECEIVE_PATHS } from "../src/config";

export type JsonSchema = z.core.JSONSchema.JSONSchema;

/** Repository paths of the generated files, relative to the repository root. */
export const CONFIG_SCHEMA_PATH = "schema/natlb-config.schema.json";
export const CONFIG_REFERENCE_PATH = "docs/config.md";

/** The file format as JSON Schema (draft 2020-12), describing what may be written, defaults left out. */
export function configJsonSchema(): JsonSchema {
  // io "input": the file as written (optional fields optional), not the resolved NatlbConfig.
  // The semantic checks (refinements: unicast addresses, duplicates) cannot be expressed and are left out.
  const generated = z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any", target: "draft-2020-12" });
  const properties = generated.properties ?? {};
  const receivePath = properties["receivePath"];
  // receivePath goes through z.preprocess, whose string shorthand ("af_xdp" for { "default": "af_xdp" })
  // JSON Schema cannot see: without this, editors would flag the shorthand the README recommends.
  if (typeof receivePath === "object" && receivePath.anyOf === undefined) {
    const { description, ...objectForm } = receivePath;
    properties["receivePath"] = {
      ...(description === undefined ? {} : { description }),
      anyOf: [
        { type: "string", enum: [...RECEIVE_PATHS], description: "Short for { \"default\": <this> }." },
        objectForm,
      ],
    };
  }
  return {
    $schema: generated.$schema,
    title: "natlb configuration file",
    description: "The file given to `natlb run --config`. Generated from src/config.ts by `npm run docs`.",
    ...Object.fromEntries(Object.entries(generated).filter(([key]) => key !== "$schema")),
    properties,
  };
}

/** The JSON Schema file's exact text. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

// ---------------------------------------------------------------------------------------------
// Markdown.

/** One object of the file (the top level, a service, a real, ...) and where it sits. */
interface ObjectSection {
  /** Path as written in the reference, e.g. `services[].reals[]`; "" for the top level. */
  readonly path: string;
  readonly node: JsonSchema;
  /** The description of the field that holds this object. */
  readonly description: string | undefined;
}

function isSchema(value: unknown): value is JsonSchema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function hasProperties(node: JsonSchema): boolean {
  return isSchema(node.properties) && Object.keys(node.properties).length > 0;
}

/** The object schema inside a node, if any (directly, as list items, or as one branch of anyOf). */
function objectWithin(node: JsonSchema): { readonly node: JsonSchema; readonly suffix: string } | undefined {
  if (hasProperties(node)) return { node, suffix: "" };
  if (isSchema(node.items) && hasProperties(node.items)) return { node: node.items, suffix: "[]" };
  for (const branch of node.anyOf ?? []) {
    if (isSchema(branch)) {
      const inner = objectWithin(branch);
      if (inner !== undefined) return inner;
    }
  }
  return undefined;
}

/** Every object section, depth first, in the schema's field order. */
function objectSections(node: JsonSchema, path: string, description: string | undefined): ObjectSection[] {
  const sections: ObjectSection[] = [{ path, node, description }];
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    if (!isSchema(child)) continue;
    const inner = objectWithin(child);
    if (inner === undefined) continue;
    const childPath = `${path === "" ? "" : `${path}.`}${name}${inner.suffix}`;
    sections.push(...objectSections(inner.node, childPath, child.description));
  }
  return sections;
}

/** GitHub's heading anchor: lower case, punctuation removed, spaces to hyphens. */
export function githubAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function sectionHeading(path: string): string {
  return path === "" ? "Top level" : `\`${path}\``;
}

function range(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return ` ${min}..${max}`;
  if (min !== undefined) return ` ≥ ${min}`;
  if (max !== undefined) return ` ≤ ${max}`;
  return "";
}

function code(value: unknown): string {
  return `\`${JSON.stringify(value)}\``;
}

/** A field's type in a few words; `objectLink` names the section of a nested object. */
function typeText(node: JsonSchema, objectLink: string | undefined): string {
  if (node.anyOf !== undefined) {
    return node.anyOf.filter(isSchema).map((branch) => typeText(branch, objectLink)).join(", or ");
  }
  if (node.const !== undefined) return code(node.const);
  if (node.enum !== undefined) return `one of ${node.enum.map(code).join(", ")}`;
  switch (node.type) {
    case "integer":
    case "number":
      return `${node.type}${range(node.minimum, node.maximum)}`;
    case "string":
      return node.pattern === undefined ? "string" : `string matching \`${node.pattern}\``;
    case "boolean":
      return "`true` or `false`";
    case "array": {
      const items = isSchema(node.items) ? typeText(node.items, objectLink) : "values";
      const count =
        node.minItems !== undefined && node.maxItems !== undefined
          ? ` (${node.minItems}..${node.maxItems})`
          : node.minItems !== undefined
            ? ` (at least ${node.minItems})`
            : node.maxItems !== undefined
              ? ` (at most ${node.maxItems})`
              : "";
      return `list${count} of ${items}`;
    }
    case "object":
      if (hasProperties(node) && objectLink !== undefined) return `object, see ${objectLink}`;
      if (isSchema(node.additionalProperties)) {
        return `object: interface name → ${typeText(node.additionalProperties, objectLink)}`;
      }
      return "object";
    default:
      return "any JSON value";
  }
}

/** Table cells must not contain a bare `|` or a line break, and `<...>` would read as an HTML tag. */
function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/</g, "&lt;").replace(/\n/g, " ");
}

function fieldRows(section: ObjectSection): string[] {
  const required = new Set(section.node.required ?? []);
  const rows: string[] = [];
  for (const [name, child] of Object.entries(section.node.properties ?? {})) {
    if (!isSchema(child)) continue;
    const inner = objectWithin(child);
    const childPath = `${section.path === "" ? "" : `${section.path}.`}${name}${inner?.suffix ?? ""}`;
    const heading = sectionHeading(childPath);
    const link = inner === undefined ? undefined : `[${heading}](#${githubAnchor(heading)})`;
    const defaultText = required.has(name) ? "required" : child.default === undefined ? "—" : code(child.default);
    const description = child.description ?? "";
    rows.push(`| \`${name}\` | ${cell(typeText(child, link))} | ${cell(defaultText)} | ${cell(description)} |`);
  }
  return rows;
}

/** docs/config.md's exact text. */
export function configReferenceMarkdown(schema: JsonSchema = configJsonSchema()): string {
  const lines: string[] = [
    "# Configuration reference",
    "",
    "<!-- Generated from src/config.ts by `npm run docs` (scripts/generate-docs.ts). Do not edit by hand:",
    "     test/docs.test.ts fails when this file differs from what the generator writes. -->",
    "",
    "The file given to `natlb run --config natlb.json` (and to `natlb check-config`, `natlb kernel-setup`), a",
    "JSON object. Unknown fields are refused, with the field's path in the message. `natlb check-config",
    "natlb.json` prints the file with every default filled in.",
    "",
    "- **Default** `—` means the field may be left out and has no fixed default: the description says",
    "  what leaving it out does. `required` means it must be written.",
    "- Checks that span fields are not in the tables: no duplicate service (`vip:port/protocol`), no",
    "  duplicate real (`ip:port`) in a service, a real's address is not a VIP, an interface is not both",
    "  client and backend, and addresses are unicast.",
    "- For editor completion and checking, associate your config file with the JSON Schema",
    "  [`schema/natlb-config.schema.json`](../schema/natlb-config.schema.json), e.g. in VS Code's",
    "  `settings.json`: `\"json.schemas\": [{ \"fileMatch\": [\"natlb.json\"], \"url\": \"./schema/natlb-config.schema.json\" }]`.",
    "  Do not put a `$schema` field into the file itself: natlb refuses unknown fields.",
    "- How the settings act on the data plane: [architecture.md](architecture.md); running natlb:",
    "  [operations.md](operations.md).",
    "",
  ];
  for (const section of objectSections(schema, "", undefined)) {
    lines.push(`## ${sectionHeading(section.path)}`, "");
    if (section.description !== undefined) lines.push(section.description, "");
    lines.push("| field | type | default | description |", "|---|---|---|---|", ...fieldRows(section), "");
  }
  return lines.join("\n");
}
