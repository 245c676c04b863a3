/** Small filesystem helpers shared by the store, the caches and the bake stages. */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, rename, rm, writeFile, readdir, lstat, readlink, copyFile, chmod, symlink, readFile } from "node:fs/promises";
import path from "node:path";
import { identityFromStats, recordCopy } from "./file-identity.js";

export async function writeFileAtomic(file: string, data: string | Buffer): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${randomBytes(4).toString("hex")}`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

export function sha256(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch {
    return false;
  }
}

/** A fresh directory that is removed by `dispose` unless it was moved away. */
export async function makeScratchDir(parent: string, prefix: string): Promise<string> {
  const dir = path.join(parent, `${prefix}-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export interface TreeEntry {
  /** Path relative to the tree's root, '/'-separated. */
  readonly rel: string;
  readonly type: "file" | "dir" | "symlink";
  readonly mode: number;
  readonly size: number;
  readonly target?: string;
  /** A file's (dev, ino, size, mtime, ctime) when listed: see file-identity.ts. */
  readonly identity?: string;
}

/** Lists a tree in sorted order (deterministic across filesystems). */
export async function listTree(root: string, skip: (rel: string) => boolean = () => false): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  async function walk(rel: string): Promise<void> {
    const names = (await readdir(path.join(root, rel))).sort();
    for (const name of names) {
      const childRel = rel ? `${rel}/${name}` : name;
      if (skip(childRel)) continue;
      const full = path.join(root, childRel);
      const info = await lstat(full, { bigint: true });
      if (info.isSymbolicLink()) out.push({ rel: childRel, type: "symlink", mode: 0o777, size: 0, target: await readlink(full) });
      else if (info.isDirectory()) {
        out.push({ rel: childRel, type: "dir", mode: Number(info.mode) & 0o7777, size: 0 });
        await walk(childRel);
      } else if (info.isFile())
        out.push({
          rel: childRel,
          type: "file",
          mode: Number(info.mode) & 0o7777,
          size: Number(info.size),
          identity: identityFromStats(info),
        });
    }
  }
  await walk("");
  return out;
}

/**
 * Copies a tree with normalised permissions (0755 for dirs and executables, 0644 otherwise),
 * so the image does not depend on the builder's umask or file ownership.
 */
export async function copyTreeNormalized(from: string, to: string, skip: (rel: string) => boolean = () => false): Promise<TreeEntry[]> {
  return copyListedTree(from, to, await listTree(from, skip));
}

/**
 * Files the tree walkers handle at once: enough to hide per-file latency on trees of tens of
 * thousands of small files, few enough that memory stays bounded (at most this many small files
 * are held whole; bigger ones are streamed).
 */
const PARALLEL_FILES = 32;
const SMALL_FILE = 1024 * 1024;

async function inBatches<T, R>(items: readonly T[], work: (item: T) => Promise<R>, each: (item: T, result: R) => void): Promise<void> {
  for (let i = 0; i < items.length; i += PARALLEL_FILES) {
    const batch = items.slice(i, i + PARALLEL_FILES);
    const results = await Promise.all(batch.map(work));
    batch.forEach((item, n) => each(item, results[n]!));
  }
}

/** copyTreeNormalized for entries already listed (and checked) by the caller. */
export async function copyListedTree(from: string, to: string, entries: TreeEntry[]): Promise<TreeEntry[]> {
  await mkdir(to, { recursive: true });
  // Directories first (in listing order, parents before children), then the files in parallel.
  for (const entry of entries) if (entry.type === "dir") await mkdir(path.join(to, entry.rel), { recursive: true, mode: 0o755 });
  const copyEntry = async (entry: TreeEntry): Promise<void> => {
    const dest = path.join(to, entry.rel);
    if (entry.type === "symlink") await symlink(entry.target!, dest);
    else if (entry.type === "file") {
      await copyFile(path.join(from, entry.rel), dest);
      await chmod(dest, entry.mode & 0o111 ? 0o755 : 0o644);
      if (entry.identity) await recordCopy(path.join(from, entry.rel), entry.identity, dest);
    }
  };
  await inBatches(entries, copyEntry, () => {});
  for (const entry of entries) if (entry.type === "dir") await chmod(path.join(to, entry.rel), 0o755);
  return entries;
}

/** Hash of a tree's names, types, exec bits and contents: the cache key of a layer built from it. */
export async function hashTree(root: string, skip: (rel: string) => boolean = () => false): Promise<string> {
  const hash = createHash("sha256");
  const contentHash = async (entry: TreeEntry): Promise<string> => {
    if (entry.type !== "file") return "";
    const file = path.join(root, entry.rel);
    // A small file is read in one call; a stream would allocate its 4 MiB buffer for each of them.
    return entry.size <= SMALL_FILE ? sha256(await readFile(file)) : sha256File(file);
  };
  await inBatches(await listTree(root, skip), contentHash, (entry, digest) => {
    hash.update(`${entry.type}\0${entry.rel}\0${entry.mode & 0o111 ? "x" : "-"}\0${entry.target ?? ""}\0`);
    hash.update(digest);
  });
  return hash.digest("hex");
}

/** sha256 of an immutable cache file, remembered in a sidecar so warm bakes do not re-read it. */
export async function cachedSha256(file: string): Promise<string> {
  const sidecar = `${file}.sha256`;
  const known = (await readFile(sidecar, "utf8").catch(() => "")).trim();
  if (/^[0-9a-f]{64}$/.test(known)) return known;
  const digest = await sha256File(file);
  await writeFileAtomic(sidecar, `${digest}\n`);
  return digest;
}

/**
 * Moves a finished scratch directory into a cache slot. If another kiln process filled the
 * slot first (same inputs, same content), keep theirs and drop ours.
 */
export async function publishDir(scratch: string, dest: string): Promise<void> {
  try {
    await rename(scratch, dest);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOTEMPTY" && code !== "EEXIST") throw error;
    await removeDir(scratch);
  }
}
