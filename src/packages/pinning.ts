/**
 * Whether the app's own dependencies are pinned. A Node app without package-lock.json or
 * npm-shrinkwrap.json, or a requirements.txt line that is not `name==version`, lets npm or pip
 * pick versions at bake time: two bakes of the same source can hold different code. kiln says so
 * on every bake, refuses under --frozen, and the SBOM records what was picked either way.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseRequirements } from "../../bakers/python/requirements.js";
import { InputError } from "../errors.js";
import { exists } from "../fsutil.js";
import { printable } from "../confine.js";

export interface Unpinned {
  /** The file whose versions are resolved afresh (package.json, requirements.txt). */
  readonly file: string;
  /** What is loose, e.g. "no package-lock.json or npm-shrinkwrap.json" or the lines. */
  readonly detail: string;
  /** How to pin it. */
  readonly fix: string;
}

const NODE_LOCKS = ["package-lock.json", "npm-shrinkwrap.json"];

/** package.json's production dependencies, when it has any (a parse error is the baker's to report). */
export function nodeDependencyNames(packageJson: string): string[] {
  try {
    const pkg = JSON.parse(packageJson) as { dependencies?: unknown; optionalDependencies?: unknown };
    const names = (v: unknown) => (typeof v === "object" && v !== null && !Array.isArray(v) ? Object.keys(v) : []);
    return [...names(pkg.dependencies), ...names(pkg.optionalDependencies)];
  } catch {
    return [];
  }
}

/**
 * Requirement lines pip may resolve to different versions over time: anything but an exact
 * `==`/`===` version (no wildcard, no second clause) or a wheel file/URL.
 */
export function unpinnedRequirements(text: string): { line: number; text: string }[] {
  const loose: { line: number; text: string }[] = [];
  for (const req of parseRequirements(text).requirements) {
    const spec = req.text.split(";")[0]!.trim();
    if (/\.whl([?#].*)?$/.test(spec)) continue;
    const exact = /^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*===?\s*[^\s,*<>=!~]+$/.test(spec);
    if (!exact) loose.push({ line: req.line, text: req.text });
  }
  return loose;
}

/** What in the app directory leaves versions to bake time, for the given baker. */
export async function findUnpinned(baker: string, appDir: string, appFile: string | undefined): Promise<Unpinned[]> {
  if (appFile !== undefined) return [];
  if (baker === "node") return findUnpinnedNode(appDir);
  if (baker === "python") return findUnpinnedPython(appDir);
  return [];
}

async function findUnpinnedNode(appDir: string): Promise<Unpinned[]> {
  const manifest = await readFile(path.join(appDir, "package.json"), "utf8").catch(() => undefined);
  if (manifest === undefined || nodeDependencyNames(manifest).length === 0) return [];
  for (const lock of NODE_LOCKS) if (await exists(path.join(appDir, lock))) return [];
  return [
    {
      file: path.join(appDir, "package.json"),
      detail: "has dependencies but no package-lock.json or npm-shrinkwrap.json next to it",
      fix: "run `npm install --package-lock-only` in the app directory and commit package-lock.json",
    },
  ];
}

async function findUnpinnedPython(appDir: string): Promise<Unpinned[]> {
  const file = path.join(appDir, "requirements.txt");
  const text = await readFile(file, "utf8").catch(() => undefined);
  if (text === undefined) return [];
  const loose = unpinnedRequirements(text);
  if (loose.length === 0) return [];
  const shown = loose.slice(0, 5).map((l) => `line ${l.line}: ${printable(l.text)}`);
  const more = loose.length > shown.length ? `, and ${loose.length - shown.length} more` : "";
  return [
    {
      file,
      detail: `has requirements without an exact version (${shown.join("; ")}${more})`,
      fix: "pin every line as name==version (pip freeze, or pip-compile from pip-tools, writes such a file)",
    },
  ];
}

/** The warning printed on every bake of an app whose dependency versions are not pinned. */
export function unpinnedWarning(u: Unpinned): string {
  return `warning: ${u.file} ${u.detail}: npm/pip resolve versions at bake time, so two bakes of this source can differ. To pin: ${u.fix}`;
}

/** --frozen means nothing may be resolved afresh: unpinned dependencies are refused. */
export function refuseUnpinned(unpinned: readonly Unpinned[]): void {
  if (unpinned.length === 0) return;
  throw new InputError(`--frozen: ${unpinned.map((u) => `${u.file} ${u.detail}`).join("; ")}`, {
    hint: `--frozen bakes only what is pinned; ${unpinned.map((u) => u.fix).join("; ")}, then bake again`,
  });
}
