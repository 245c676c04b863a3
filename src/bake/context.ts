/** Everything a bake stage needs besides the Spec: caches, package sources, scratch space. */
import path from "node:path";
import { InputError } from "../errors.js";
import type { KilnHome } from "../home.js";
import { installRoot } from "../home.js";
import { AptSource, type DebianPackage } from "../packages/apt.js";
import { NpmSource } from "../packages/npm.js";
import type { Lock, LockEntry } from "../packages/lock.js";
import type { Progress } from "../progress.js";
import type { Sandbox } from "../sandbox.js";

export interface BakeContext {
  readonly home: KilnHome;
  /** Per-bake scratch directory, removed when the bake ends. */
  readonly scratch: string;
  readonly apt: AptSource;
  readonly npm: NpmSource;
  /** The lock as it was before this bake (pins versions). */
  readonly previousLock: Lock | undefined;
  /** Packages this bake used, to write the new lock. */
  readonly used: LockEntry[];
  readonly progress: Progress;
  readonly templates: string;
  readonly kernelConfigs: string;
  /** Cache directory for built layers. */
  readonly layers: string;
  /** --frozen: every package must come from the lock; resolving a new one is an error. */
  readonly frozen?: boolean;
  /** Where stages that touch untrusted content run (bubblewrap, or the host with --no-sandbox). */
  readonly sandbox: Sandbox;
}

export function createBakeContext(
  home: KilnHome,
  scratch: string,
  previousLock: Lock | undefined,
  progress: Progress,
  sandbox: Sandbox,
  options: { frozen?: boolean } = {},
): BakeContext {
  const root = installRoot();
  return {
    home,
    scratch,
    apt: new AptSource(home.cache),
    npm: new NpmSource(home.cache),
    previousLock,
    used: [],
    progress,
    templates: path.join(root, "templates"),
    kernelConfigs: path.join(root, "kernel-configs"),
    layers: path.join(home.cache, "layers"),
    frozen: options.frozen ?? false,
    sandbox,
  };
}

/** Version pinned in the previous lock for a package, if any. */
export function pinned(ctx: BakeContext, name: string): string | undefined {
  return ctx.previousLock?.packages.find((p) => p.name === name)?.version;
}

/**
 * A Debian package as the lock pins it (no apt query: warm bakes must not wait for apt),
 * or apt's current candidate when the lock has no entry.
 */
export async function resolveDebian(ctx: BakeContext, name: string): Promise<DebianPackage> {
  const entry = ctx.previousLock?.packages.find((p) => p.name === name && p.source.startsWith("debian"));
  if (entry) return { name: entry.name, version: entry.version, sha256: entry.sha256, source: entry.source, depends: "" };
  if (ctx.frozen) throw frozenMiss(name);
  return ctx.apt.resolve(name);
}

export function frozenMiss(name: string): InputError {
  return new InputError(`--frozen: kiln.lock has no entry for ${name}, so this bake would fetch a package the lock does not pin`, {
    hint: "bake once without --frozen (or run kiln rebake) to update kiln.lock, commit it, then bake with --frozen",
  });
}
