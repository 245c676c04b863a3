/** Where kiln keeps its state: $KILN_HOME, else the user's cache directory. */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PRIVATE_DIR_MODE, tightenTreeSync } from "./private-fs.js";

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

/**
 * Trees an older kiln wrote with the umask's modes that can hold values or logs: VM directories
 * (user-data, seed drive, console), environments (state), images (baked env), pipeline reports,
 * abandoned bake scratch, built layers. The package cache is not walked: its unpacked trees'
 * modes go into images, and the private KILN_HOME above it already keeps others out.
 */
const PRIVATE_TREES = ["vms", "envs", "images", "refs", "pipelines", "tmp", "push", "schedule"];

/**
 * KILN_HOME for a kiln command: created 0700, or made 0700 when an older kiln left it open to
 * others (then the trees that can hold values or logs are tightened too, once: the next run
 * finds the home private and skips the walk).
 */
export function openKilnHome(env: NodeJS.ProcessEnv = process.env): KilnHome {
  const home = kilnHome(env);
  mkdirSync(home.root, { recursive: true, mode: PRIVATE_DIR_MODE });
  const info = statSync(home.root);
  const mine = process.getuid === undefined || info.uid === process.getuid();
  if (mine && (info.mode & 0o077) !== 0) {
    for (const tree of PRIVATE_TREES) tightenTreeSync(path.join(home.root, tree));
    // Built layers (the app layer holds the app's files) are whole images: their modes are not content.
    tightenTreeSync(path.join(home.cache, "layers"));
    if (existsSync(home.cache)) chmodSync(home.cache, PRIVATE_DIR_MODE);
    chmodSync(home.root, PRIVATE_DIR_MODE);
  }
  return home;
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
      if (parsed.name === "kiln") {
        cachedRoot = dir;
        return dir;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("cannot find the kiln installation (package.json with templates/)");
    dir = parent;
  }
}
