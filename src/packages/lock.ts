/**
 * kiln.lock pins every base package that goes into an image (kernel, busybox, libc and the
 * other libraries, the language runtime): name, version, where it came from, and its sha256.
 * A later bake fetches exactly these versions, so a rebake is explainable package by package.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { InputError } from "../errors.js";
import { writeFileAtomic } from "../fsutil.js";

export interface LockEntry {
  readonly name: string;
  readonly version: string;
  /** "debian:<suite>/<component>" or "npm". */
  readonly source: string;
  readonly sha256: string;
  /** What the package is for in the image: kernel, kernel-source (kiln compiles the kernel from it), init, runtime, lib. */
  readonly role: "kernel" | "kernel-source" | "init" | "boot" | "runtime" | "lib";
}

/** The minimal kernel's build (kernel: minimal): its inputs' key, what it was built with, and the result. */
export interface LockedKernelBuild {
  readonly key: string;
  readonly release: string;
  readonly configSha256: string;
  readonly compiler: string;
  readonly imageSha256: string;
}

export interface Lock {
  readonly lockfileVersion: 1;
  readonly packages: readonly LockEntry[];
  readonly kernelBuild?: LockedKernelBuild;
}

export const LOCK_FILE = "kiln.lock";

/** How to get a kiln.lock entry right again (README: rebake re-resolves every base package). */
export const LOCK_FIX_HINT =
  "restore kiln.lock from version control, or delete this package's entry and bake without --frozen to re-resolve it (kiln rebake re-resolves every base package)";

/** A kiln.lock entry whose field disagrees with what the package's bytes or the archive say. */
export function lockFieldError(name: string, field: string, lockValue: string, realValue: string, authority: string): InputError {
  return new InputError(`kiln.lock entry for ${name} is wrong: its ${field} is ${lockValue}, but ${authority} says ${realValue}`, {
    hint: LOCK_FIX_HINT,
  });
}

export async function readLock(appDir: string): Promise<Lock | undefined> {
  const file = path.join(appDir, LOCK_FILE);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InputError(`${file} is not valid JSON`, {
      hint: "delete it to re-resolve every base package, or restore it from version control",
      cause: error,
    });
  }
  const lock = parsed as Partial<Lock>;
  if (lock.lockfileVersion !== 1 || !Array.isArray(lock.packages)) {
    throw new InputError(`${file} is not a kiln lock (lockfileVersion 1 with packages[])`, {
      hint: "delete it to re-resolve every base package",
    });
  }
  return lock as Lock;
}

export function pinnedVersion(lock: Lock | undefined, name: string): string | undefined {
  return lock?.packages.find((p) => p.name === name)?.version;
}

/** What differs between two locks' minimal kernel builds, in words; undefined when they agree. */
export function kernelBuildChange(was: LockedKernelBuild | undefined, now: LockedKernelBuild | undefined): string | undefined {
  if (was?.key === now?.key) return undefined;
  if (!was) return "the lock has no minimal kernel build";
  if (!now) return "the lock has a minimal kernel build this bake does not use";
  if (was.configSha256 !== now.configSha256)
    return `the minimal kernel's configuration changed (config sha256 ${was.configSha256.slice(0, 12)} → ${now.configSha256.slice(0, 12)})`;
  if (was.compiler !== now.compiler) return `the minimal kernel's compiler changed (${was.compiler} → ${now.compiler})`;
  return `the minimal kernel's build key changed (${was.key} → ${now.key})`;
}

/** Sorted, de-duplicated, so the file only changes when a package does. */
export function buildLock(entries: readonly LockEntry[], kernelBuild?: LockedKernelBuild): Lock {
  const byName = new Map<string, LockEntry>();
  for (const entry of entries) byName.set(entry.name, entry);
  const packages = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return kernelBuild ? { lockfileVersion: 1, packages, kernelBuild } : { lockfileVersion: 1, packages };
}

export function renderLock(lock: Lock): string {
  return `${JSON.stringify(lock, null, 2)}\n`;
}

export async function writeLock(appDir: string, lock: Lock): Promise<boolean> {
  const file = path.join(appDir, LOCK_FILE);
  const text = renderLock(lock);
  const old = await readFile(file, "utf8").catch(() => undefined);
  if (old === text) return false;
  await writeFileAtomic(file, text);
  return true;
}
