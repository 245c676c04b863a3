/**
 * Tarball extraction for the native baker, in the bake's sandbox: a child node process runs
 * extract-main.js with the archive read-only and the destination as its only writable
 * directory, no network and no view of the host. With --no-sandbox it runs in-process.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { BakeContext } from "../../src/bake/context.js";
import { CommandFailedError, InputError, KilnError } from "../../src/errors.js";
import { installRoot } from "../../src/home.js";
import { hostToolAccess } from "../../src/sandbox-access.js";
import { extractTarball } from "../../src/archive/tarball.js";

export async function extractArchive(ctx: BakeContext, file: string, dest: string): Promise<string> {
  if (!ctx.sandbox.enabled) return extractTarball(file, dest);
  const root = installRoot();
  const script = path.join(root, "dist", "bakers", "native", "extract-main.js");
  if (!existsSync(script))
    throw new KilnError(`${script} is missing: kiln is not built`, { hint: "run npm run build in kiln's directory" });
  await mkdir(dest, { recursive: true });
  const node = hostToolAccess([path.basename(process.execPath)], { PATH: path.dirname(process.execPath) });
  const code = ["package.json", "dist", "node_modules"].map((name) => path.join(root, name));
  const stage = { readOnly: [file, ...code, ...node.readOnly], writable: [dest] };
  let stdout: string;
  try {
    stdout = (await ctx.sandbox.run([process.execPath, script, file, dest], stage, { timeoutMs: 600_000 })).stdout;
  } catch (error) {
    const refused = error instanceof CommandFailedError ? refusal(error.stderrTail) : undefined;
    if (refused) throw new InputError(refused.inputError, { ...(refused.hint ? { hint: refused.hint } : {}), cause: error });
    throw error;
  }
  // The child's answer is checked like any input: the app directory must be inside dest.
  const dir = path.resolve(dest, (JSON.parse(stdout) as { dir: string }).dir);
  const rel = path.relative(dest, dir);
  if (rel.startsWith("..") || path.isAbsolute(rel)) throw new KilnError(`extraction of ${file} named ${dir}, outside ${dest}`);
  return dir;
}

function refusal(stderrTail: string): { inputError: string; hint: string | null } | undefined {
  const last = stderrTail.trimEnd().split("\n").pop() ?? "";
  try {
    const parsed = JSON.parse(last) as { inputError?: unknown; hint?: unknown };
    if (typeof parsed.inputError === "string")
      return { inputError: parsed.inputError, hint: typeof parsed.hint === "string" ? parsed.hint : null };
  } catch {
    // not the child's JSON: a crash, reported as the command failure it is
  }
  return undefined;
}
