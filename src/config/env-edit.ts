/**
 * kiln config set/unset: edits environments.<name>.env of a kiln.yml text through the yaml
 * package's Document API, so comments, key order and layout survive; the edited file's
 * environments are validated (schema and cross checks) before the caller writes anything.
 * Pure: text in, text out.
 */
import { isMap, parseDocument, type Document } from "yaml";
import { InputError, SpecError } from "../errors.js";
import { parseEnvironments } from "./environments.js";

/** `KEY=VALUE` words → a mapping; the value is everything after the first `=`, possibly empty. */
export function parseAssignments(words: readonly string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const word of words) {
    const at = word.indexOf("=");
    if (at <= 0)
      throw new InputError(`'${word}' is not KEY=VALUE`, {
        hint: "for example: kiln config set GREETING=hello LOG_LEVEL=debug --env dev (quote values with spaces)",
      });
    values[word.slice(0, at)] = word.slice(at + 1);
  }
  return values;
}

/** What kiln runs for an environment that kiln.yml leaves out (config/environments.ts's default dev), written out. */
const IMPLICIT_DEV = { target: "local", port: 8000, instances: 2, deregistrationDelay: 3, healthcheck: { interval: 1 } };

function envValues(doc: Document, name: string): Record<string, string> {
  const env = doc.getIn(["environments", name, "env"]);
  return isMap(env) ? Object.fromEntries(Object.entries(env.toJSON() as Record<string, unknown>).map(([k, v]) => [k, String(v)])) : {};
}

export function editEnvironmentEnv(
  text: string,
  file: string,
  name: string,
  set: Readonly<Record<string, string>>,
  unset: readonly string[],
): { text: string; changes: string[] } {
  const doc = parseDocument(text);
  if (doc.errors.length > 0)
    throw new InputError(`${file} is not valid YAML: ${doc.errors[0]!.message.split("\n")[0]}`, {
      hint: "fix the file, then run kiln config again",
    });
  const environments = doc.get("environments");
  if (!isMap(environments) || !environments.has(name)) {
    // Without environments: kiln runs a default dev; writing it out keeps every setting it had.
    const implicit = environments === undefined || environments === null;
    if (!(implicit && name === "dev"))
      throw new InputError(`environment '${name}' is not defined in ${file}`, {
        hint: `add it under environments:, then run kiln config again`,
      });
    doc.setIn(["environments", "dev"], doc.createNode(IMPLICIT_DEV));
  }
  const before = envValues(doc, name);
  for (const [key, value] of Object.entries(set)) doc.setIn(["environments", name, "env", key], value);
  for (const key of unset) if (doc.hasIn(["environments", name, "env", key])) doc.deleteIn(["environments", name, "env", key]);
  const after = envValues(doc, name);
  const edited = doc.toString();
  // The same validation a promote runs: every problem with its path, nothing written.
  try {
    parseEnvironments((doc.toJS() as { environments?: unknown }).environments, "app", "/", file);
  } catch (error) {
    if (!(error instanceof SpecError)) throw error;
    throw new SpecError(
      `${file} after this edit`,
      error.problems,
      "nothing was written; fix the values (or the file), then run kiln config again",
    );
  }
  const changes = [
    ...Object.keys(set).map((k) => (before[k] === undefined ? `${k} added` : before[k] === after[k] ? `${k} unchanged` : `${k} changed`)),
    ...unset.filter((k) => before[k] !== undefined).map((k) => `${k} removed`),
  ].filter((c) => !c.endsWith(" unchanged"));
  return { text: edited, changes };
}
