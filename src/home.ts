/** Where kiln keeps its state: $KILN_HOME, else the user's cache directory. */
import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface KilnHome {
  readonly root: string;
  readonly images: string;
  readonly refs: string;
  readonly cache: string;
  readonly tmp: string;
  readonly vms: string;
}

export function kilnHome(env: NodeJS.ProcessEnv = process.env): KilnHome {
  const root = env.KILN_HOME ? path.resolve(env.KILN_HOME) : path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "kiln");
  return {
    root,
    images: path.join(root, "images"),
    refs: path.join(root, "refs"),
    cache: path.join(root, "cache"),
    tmp: path.join(root, "tmp"),
    vms: path.join(root, "vms"),
  };
}

let cachedRoot: string | undefined;
/** The kiln installation (templates/, kernel-configs/, bakers/), found from this file's location. */
export function installRoot(): string {
  if (cachedRoot) return cachedRoot;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, "package.json");
    if (existsSync(pkg) && existsSync(path.join(dir, "templates"))) {
      const parsed = JSON.parse(readFileSync(pkg, "utf8")) as { name?: string };
      if (parsed.name === "kiln") return (cachedRoot = dir);
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("cannot find the kiln installation (package.json with templates/)");
    dir = parent;
  }
}
