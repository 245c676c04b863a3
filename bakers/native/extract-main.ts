/**
 * `node extract-main.js FILE DEST`: extracts one tarball, the entry point kiln runs inside the
 * build sandbox (FILE read-only, DEST the only writable directory), so a flaw in extraction
 * cannot reach the host. Prints {"dir": …} on success; a refused archive prints the InputError
 * as JSON on the last line of stderr (exit 2) for the parent to raise again.
 */
import { InputError } from "../../src/errors.js";
import { extractTarball } from "../../src/archive/tarball.js";

const [file, dest] = process.argv.slice(2);
try {
  if (file === undefined || dest === undefined) throw new Error("usage: extract-main.js FILE DEST");
  process.stdout.write(`${JSON.stringify({ dir: await extractTarball(file, dest) })}\n`);
} catch (error) {
  if (!(error instanceof InputError)) throw error;
  process.stderr.write(`${JSON.stringify({ inputError: error.message, hint: error.hint ?? null })}\n`);
  process.exitCode = 2;
}
