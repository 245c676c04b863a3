/**
 * kiln.yml's YAML syntax, parsed once for every reader (bake, promote, pipeline): errors come
 * back as problem lines naming a line that exists in the file, its column and its text.
 */
import { parseDocument, type YAMLError } from "yaml";
import { SpecError } from "../errors.js";

/**
 * Where an error is, in the file's own lines. The parser puts errors about something left open
 * (a list, a mapping, a quote) just past the end of the file, on a line that does not exist:
 * those move back to the end of the last line that holds text, where the closing character belongs.
 */
function locate(text: string, offset: number): { line: number; column: number; lineText: string; atEnd: boolean } {
  let at = Math.min(offset, text.length);
  const atEnd = text.slice(at).trim() === "";
  if (atEnd) at = text.trimEnd().length;
  const before = text.slice(0, at);
  const line = before.split("\n").length;
  const start = before.lastIndexOf("\n") + 1;
  const end = text.indexOf("\n", start);
  const lineText = text.slice(start, end === -1 ? text.length : end).replace(/\r$/, "");
  return { line, column: at - start + 1, lineText, atEnd };
}

/** The line as the user would recognise it: control characters (a tab, an escape) shown escaped, long lines cut. */
function shown(line: string): string {
  const escaped = line.replace(/[\u0000-\u001f\u007f]/g, (c) =>
    c === "\t" ? "\\t" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return escaped.length > 80 ? `${escaped.slice(0, 77)}...` : escaped;
}

/** One problem line per syntax error: `not valid YAML at line L, column C: what is wrong: the line's text`. */
export function yamlProblems(text: string, errors: readonly YAMLError[]): string[] {
  const out = new Set<string>();
  for (const error of errors) {
    const { line, column, lineText, atEnd } = locate(text, error.pos[0]);
    // The parser's own message (prettyErrors off) is the bare reason, without a location or excerpt.
    const reason = error.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
    const where = `line ${line}, column ${column}${atEnd ? " (the end of the file)" : ""}`;
    out.add(`not valid YAML at ${where}: ${reason}: ${shown(lineText)}`);
  }
  return [...out];
}

/** The document in kiln.yml's text, or a SpecError naming `file` with every syntax error. */
export function parseKilnYaml(text: string, file: string): unknown {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new SpecError(
      file,
      yamlProblems(text, doc.errors),
      "fix the YAML at that line (indentation, a closing bracket or quote) and run kiln again",
    );
  }
  return doc.toJS();
}
