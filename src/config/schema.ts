/**
 * The one validator of kiln.yml and of the flags that stand in for its settings: the JSON
 * Schema shipped as kiln.schema.json (editors use the same file), checked with ajv. Every
 * problem comes back as a `path: what is wrong` line (see schema-messages.ts); checks that
 * relate several settings (min ≤ instances ≤ max, stage names that must exist) stay in code.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import { installRoot } from "../home.js";
import { problemsOf } from "./schema-messages.js";

export const SCHEMA_FILE = "kiln.schema.json";

let ajv: Ajv | undefined;
const compiled = new Map<string, ValidateFunction>();

function validatorFor(pointer: string): ValidateFunction {
  let validate = compiled.get(pointer);
  if (validate) return validate;
  if (!ajv) {
    // verbose: errors carry their schema, where the friendly messages live. The two message
    // keywords are annotations VS Code and yaml-language-server show too.
    ajv = new Ajv({ allErrors: true, verbose: true, strict: true, strictTypes: false, strictRequired: false });
    ajv.addKeyword({ keyword: "patternErrorMessage", schemaType: "string" });
    ajv.addKeyword({ keyword: "errorMessage", schemaType: "string" });
    ajv.addSchema(JSON.parse(readFileSync(path.join(installRoot(), SCHEMA_FILE), "utf8")) as object);
  }
  validate = ajv.compile({ $ref: `${SCHEMA_FILE}#${pointer}` });
  compiled.set(pointer, validate);
  return validate;
}

/**
 * Problems of `value` against the part of the schema at `pointer` ("" for a whole kiln.yml,
 * "/properties/environments", "/definitions/port" …), each path prefixed with `label`.
 */
export function schemaProblems(pointer: string, value: unknown, label = ""): string[] {
  const validate = validatorFor(pointer);
  return validate(value) ? [] : problemsOf(validate.errors, label);
}
