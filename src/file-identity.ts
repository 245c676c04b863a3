/**
 * A file's cheap identity, as git's index keeps it: (dev, ino, size, mtime, ctime) in
 * nanoseconds. Any write changes size, mtime or ctime, so an unchanged identity means unchanged
 * content without reading it. Staging copies every file into a fresh scratch directory (new
 * inodes), so copies are remembered: a copy that neither it nor its source has changed since
 * stands for its source, whose identity survives from one bake to the next.
 */
import { lstat } from "node:fs/promises";
import type { BigIntStats } from "node:fs";

interface Copy {
  readonly sourceKey: string;
  readonly source: string;
  readonly destKey: string;
}

const copies = new Map<string, Copy>();

export function identityFromStats(s: BigIntStats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

async function statIdentity(file: string): Promise<string | undefined> {
  return lstat(file, { bigint: true }).then(identityFromStats, () => undefined);
}

/** Records that `dest` was just copied from `source`, whose identity was `sourceKey` when listed. */
export async function recordCopy(source: string, sourceKey: string, dest: string): Promise<void> {
  const destKey = await statIdentity(dest);
  if (destKey !== undefined) copies.set(dest, { source, sourceKey, destKey });
}

/** Forgets the copies under a directory that is being removed (bake scratch). */
export function forgetCopies(dir: string): void {
  for (const dest of copies.keys()) if (dest === dir || dest.startsWith(`${dir}/`)) copies.delete(dest);
}

/**
 * The identity to look a file up by: its source's, when it is an untouched copy of an untouched
 * source (prefixed, so it never equals a live file's own); else its own.
 */
export async function fileIdentity(file: string): Promise<string> {
  const copy = copies.get(file);
  const own = identityFromStats(await lstat(file, { bigint: true }));
  if (copy && copy.destKey === own && (await statIdentity(copy.source)) === copy.sourceKey) return `c${copy.sourceKey}`;
  return own;
}
