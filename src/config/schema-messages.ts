/**
 * Turns ajv's errors for kiln.schema.json into kiln's problem lines: `path: what is wrong`,
 * one per setting, with the friendly text the schema carries (`patternErrorMessage`,
 * `errorMessage`, the same keywords editors show) or one derived from the failing keyword.
 */
import type { ErrorObject } from "ajv";
import { closestMatch } from "./suggest.js";

type Schema = Record<string, unknown>;

const CONTROL = /[\u0000-\u001f\u007f]/;

/** Names a control character the way a user would recognise it in their file. */
export function describeControl(text: string): string | undefined {
  const c = CONTROL.exec(text)?.[0];
  if (c === undefined) return undefined;
  if (c === "\n") return "contains a newline";
  if (c === "\r") return "contains a carriage return";
  if (c === "\t") return "contains a tab";
  if (c === "\0") return "contains a NUL byte";
  return `contains the control character U+${c.charCodeAt(0).toString(16).padStart(4, "0").toUpperCase()}`;
}

/** `/environments/prod/env/FOO` → `environments.prod.env.FOO`, `/cmd/2` → `cmd[2]`, under a root label. */
function pathOf(root: string, pointer: string, extra?: string): string {
  const parts = pointer
    .split("/")
    .slice(1)
    .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
  if (extra !== undefined) parts.push(extra);
  let out = root;
  for (const part of parts) out += /^\d+$/.test(part) ? `[${part}]` : out === "" ? part : `.${part}`;
  return out;
}

/** A scalar as the user wrote it, short; undefined for mappings and lists (the path says enough). */
function shown(value: unknown): string | undefined {
  if (typeof value === "string") return value.length > 60 ? `${value.slice(0, 57)}...` : value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return undefined;
}

function rangeText(schema: Schema): string {
  const whole = schema.type === "integer";
  const min = schema.minimum as number | undefined;
  const max = schema.maximum as number | undefined;
  const kind = whole ? "a whole number" : "a number";
  if (min !== undefined && max !== undefined) return `must be ${kind} from ${min} to ${max}`;
  if (min !== undefined) return `must be ${kind} ≥ ${min}`;
  return max !== undefined ? `must be ${kind} ≤ ${max}` : `must be ${kind}`;
}

const TYPE_WORDS: Record<string, string> = {
  object: "a mapping",
  array: "a list",
  string: "a string",
  boolean: "true or false",
  integer: "a whole number",
  number: "a number",
  null: "empty",
};

/** "must be a string or a whole number" from ajv's type list ("string,integer"). */
function typeText(types: string): string {
  return `must be ${types
    .split(",")
    .map((t) => TYPE_WORDS[t] ?? t)
    .join(" or ")}`;
}

/** The text after `path: ` for one error, or undefined for errors that only summarise others. */
function messageOf(error: ErrorObject): string | undefined {
  const schema = (error.parentSchema ?? {}) as Schema;
  const custom = typeof schema.errorMessage === "string" ? schema.errorMessage : undefined;
  const value = shown(error.data);
  const quoted = (text: string) => (value === undefined ? text : `'${value}' ${text}`);
  switch (error.keyword) {
    case "if":
    case "propertyNames":
      return undefined; // the failing branch / the name's own error says what is wrong
    case "pattern": {
      const control = typeof error.data === "string" ? describeControl(error.data) : undefined;
      if (control) return control;
      const text =
        typeof schema.patternErrorMessage === "string"
          ? schema.patternErrorMessage
          : (custom ?? "has characters that are not allowed here");
      return quoted(text);
    }
    case "additionalProperties":
      return undefined; // reported per property by problemsOf
    case "required":
      return undefined; // reported per property by problemsOf
    case "type":
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum":
    case "multipleOf":
      if (custom) return quoted(custom);
      if (schema.type === "integer" || schema.type === "number") return quoted(rangeText(schema));
      return quoted(typeText(String((error.params as { type?: string }).type)));
    case "enum":
      return custom ? quoted(custom) : quoted(`must be one of ${(schema.enum as unknown[]).map(String).join(", ")}`);
    case "not":
      return custom ?? "is not allowed here";
    case "minItems":
    case "minLength":
      return custom ?? "must not be empty";
    case "maxItems":
      return `has too many entries (at most ${String((error.params as { limit: number }).limit)})`;
    case "maxProperties":
      return `has too many settings (at most ${String((error.params as { limit: number }).limit)})`;
    case "maxLength":
      return `is too long (at most ${String((error.params as { limit: number }).limit)} characters)`;
    default:
      return custom ?? error.message ?? "is not valid";
  }
}

/**
 * Problem lines for a list of ajv errors (validated with allErrors and verbose). `root` prefixes
 * every path: "" for a whole kiln.yml, "environments" for that section alone, "--port" for a flag.
 * One problem per setting: the first error ajv reports for a path is the most specific.
 */
export function problemsOf(errors: readonly ErrorObject[] | null | undefined, root = ""): string[] {
  const byPath = new Map<string, string>();
  for (const error of errors ?? []) {
    const schema = (error.parentSchema ?? {}) as Schema;
    if (error.keyword === "additionalProperties") {
      const extra = (error.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys((schema.properties ?? {}) as Schema);
      const at = pathOf(root, error.instancePath, extra);
      const likely = closestMatch(extra, known);
      const text = likely !== undefined ? `unknown setting; did you mean ${likely}?` : `unknown setting (known: ${known.join(", ")})`;
      if (!byPath.has(at)) byPath.set(at, text);
      continue;
    }
    if (error.keyword === "required") {
      const missing = (error.params as { missingProperty: string }).missingProperty;
      const description = ((schema.properties ?? {}) as Record<string, Schema>)[missing]?.description;
      const at = pathOf(root, error.instancePath, missing);
      if (!byPath.has(at)) byPath.set(at, `required${typeof description === "string" ? ` (${description})` : ""}`);
      continue;
    }
    const text = messageOf(error);
    if (text === undefined) continue;
    // A property name's own error (propertyNames) points at the object; the name belongs in the path.
    const at = error.propertyName !== undefined ? pathOf(root, error.instancePath, error.propertyName) : pathOf(root, error.instancePath);
    const label = at === "" ? "(top level)" : at;
    if (!byPath.has(label)) byPath.set(label, error.propertyName !== undefined ? text.replace(/^'[^']*' /, "") : text);
  }
  return [...byPath].map(([at, text]) => `${at}: ${text}`);
}
