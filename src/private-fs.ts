/**
 * Files and directories only their owner may read: everything under KILN_HOME that can hold
 * values (-e values in user-data and the seed drive, env baked into images, environment state)
 * or logs (VM consoles). Modes are set explicitly after creation, so the caller's umask
 * (often 022) never decides who can read them.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, lstatSync, readdirSync } from "node:fs";
import { chmod, lstat, mkdir, open, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Creates `dir` and any missing parents as 0700. An existing directory is left as it is
 * (home-modes.ts tightens KILN_HOME itself): only what this call creates is set here.
 */
export async function makePrivateDir(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    const info = await lstat(at).catch(() => undefined);
    if (info) break;
    missing.unshift(at);
    if (path.dirname(at) === at) break;
  }
  for (const at of missing) {
    await mkdir(at, { mode: PRIVATE_DIR_MODE }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "EEXIST") throw error; // another kiln made it first: fine
    });
    await chmod(at, PRIVATE_DIR_MODE);
  }
}

/** Writes a file as 0600 from its first byte (created with that mode, then fixed against the umask). */
export async function writePrivateFile(file: string, data: string | Buffer): Promise<void> {
  await makePrivateDir(path.dirname(file));
  const fh = await open(file, "w", PRIVATE_FILE_MODE);
  try {
    await fh.chmod(PRIVATE_FILE_MODE);
    await fh.writeFile(data);
  } finally {
    await fh.close();
  }
}

/** writePrivateFile through a temporary name and a rename: readers see the old or the new content, whole. */
export async function writePrivateFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(4).toString("hex")}`;
  try {
    await writePrivateFile(tmp, data);
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
}

/**
 * Takes group and other permissions away from a tree (directories 0700, files keep only their
 * owner bits), for trees an older kiln wrote with the umask's modes. Symlinks are not followed.
 */
export async function tightenTree(root: string): Promise<void> {
  const info = await lstat(root).catch(() => undefined);
  if (!info || info.isSymbolicLink()) return;
  if (info.isDirectory()) {
    await chmod(root, PRIVATE_DIR_MODE);
    for (const name of await readdir(root)) await tightenTree(path.join(root, name));
  } else if ((info.mode & 0o077) !== 0) {
    await chmod(root, info.mode & 0o700);
  }
}

/** Sets one existing file or directory private (no recursion); a missing path is ignored. */
export async function makePrivate(target: string): Promise<void> {
  const info = await lstat(target).catch(() => undefined);
  if (!info || info.isSymbolicLink()) return;
  await chmod(target, info.isDirectory() ? PRIVATE_DIR_MODE : info.mode & 0o700);
}

/** tightenTree for start-up code that cannot wait (the CLI resolves KILN_HOME synchronously). */
export function tightenTreeSync(root: string): void {
  let info;
  try {
    info = lstatSync(root);
  } catch {
    return;
  }
  if (info.isSymbolicLink()) return;
  if (info.isDirectory()) {
    chmodSync(root, PRIVATE_DIR_MODE);
    for (const name of readdirSync(root)) tightenTreeSync(path.join(root, name));
  } else if ((info.mode & 0o077) !== 0) {
    chmodSync(root, info.mode & 0o700);
  }
}
