/** Finds bakers by folder name under bakers/, so a new runtime is a new folder, not a src/ change. */
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { installRoot } from "../home.js";
import type { Baker } from "./baker.js";

export interface BakerModule {
  readonly baker: Baker;
  /** Lower runs detection first (node before native: a Node app may also contain ELF files). */
  readonly priority: number;
}

let loaded: Baker[] | undefined;

export async function loadBakers(): Promise<Baker[]> {
  if (loaded) return loaded;
  const root = installRoot();
  // Running from TypeScript sources (tests) or from the compiled dist/ tree.
  const fromSource = import.meta.url.endsWith(".ts");
  const dir = path.join(root, "bakers");
  const modules: BakerModule[] = [];
  for (const name of (await readdir(dir, { withFileTypes: true }))
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()) {
    const file = fromSource ? path.join(dir, name, "index.ts") : path.join(root, "dist", "bakers", name, "index.js");
    // A folder without a recipe (yet) is not a baker; skipping it keeps every other app bakeable.
    if (!existsSync(file)) continue;
    const mod = (await import(pathToFileURL(file).href)) as Partial<BakerModule>;
    if (!mod.baker || mod.baker.name !== name) throw new Error(`bakers/${name}/index must export a baker named '${name}'`);
    modules.push({ baker: mod.baker, priority: mod.priority ?? 100 });
  }
  loaded = modules.sort((a, b) => a.priority - b.priority || (a.baker.name < b.baker.name ? -1 : 1)).map((m) => m.baker);
  return loaded;
}
