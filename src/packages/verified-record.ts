/**
 * "This file, exactly as it is on disk now, was verified to be X": a record next to a cached
 * package file, so a warm bake does not hash megabytes and spawn tools to prove the same thing
 * again. It holds only while the file's identity (dev, inode, size, mtime, ctime) is unchanged:
 * any write to the file, or a new file under its name, changes it, and the file is verified again.
 */
import { lstat, readFile } from "node:fs/promises";
import { identityFromStats } from "../file-identity.js";
import { writeFileAtomic } from "../fsutil.js";

export type VerifiedFacts = Readonly<Record<string, string>>;

async function identityOf(file: string): Promise<string | undefined> {
  return lstat(file, { bigint: true }).then(identityFromStats, () => undefined);
}

/** Notes that `file`, as it is now, was verified to have `facts`. */
export async function recordVerified(recordFile: string, file: string, facts: VerifiedFacts): Promise<void> {
  const identity = await identityOf(file);
  if (identity !== undefined) await writeFileAtomic(recordFile, `${JSON.stringify({ identity, facts })}\n`);
}

/** Whether the record says this very file (unchanged identity) was verified with exactly `facts`. */
export async function verifiedUnchanged(recordFile: string, file: string, facts: VerifiedFacts): Promise<boolean> {
  let record: unknown;
  try {
    record = JSON.parse(await readFile(recordFile, "utf8"));
  } catch {
    return false;
  }
  const r = (record ?? {}) as { identity?: unknown; facts?: unknown };
  if (typeof r.identity !== "string" || typeof r.facts !== "object" || r.facts === null) return false;
  const kept = r.facts as Record<string, unknown>;
  const keys = Object.keys(facts);
  if (Object.keys(kept).length !== keys.length || keys.some((k) => kept[k] !== facts[k])) return false;
  return r.identity === (await identityOf(file));
}
