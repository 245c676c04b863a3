/**
 * What kiln derives from a directory that never changes once made (a cached dependency layer,
 * whose key names everything that decided its contents): remembered by that key, so a rebake that
 * reuses the layer neither walks nor reads its thousands of files again. KILN_HOME is private,
 * but what is read back is still validated: a malformed or foreign entry is a miss, never trusted.
 */
import { createHash } from "node:crypto";
import { lstat, readFile } from "node:fs/promises";
import path from "node:path";
import { identityFromStats } from "../file-identity.js";
import { writePrivateFileAtomic } from "../private-fs.js";

/** Bumped when what a kind records changes meaning, so old entries are misses. */
const FORMAT = 1;
const KEY = /^[0-9a-f]{16,128}$/;

export type ResultKind = "elf-tree" | "sbom-deps";

export class KeyedResults {
  constructor(private readonly dir: string) {}

  /** The remembered result, or undefined (no entry, a key kiln does not file, or an entry that fails `validate`). */
  async get<T>(kind: ResultKind, key: string, validate: (value: unknown) => T | undefined): Promise<T | undefined> {
    if (!KEY.test(key)) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(this.file(kind, key), "utf8"));
    } catch {
      return undefined;
    }
    if (typeof parsed !== "object" || parsed === null) return undefined;
    const entry = parsed as { format?: unknown; kind?: unknown; key?: unknown; value?: unknown };
    if (entry.format !== FORMAT || entry.kind !== kind || entry.key !== key) return undefined;
    return validate(entry.value);
  }

  async put(kind: ResultKind, key: string, value: unknown): Promise<void> {
    if (!KEY.test(key)) return;
    await writePrivateFileAtomic(this.file(kind, key), `${JSON.stringify({ format: FORMAT, kind, key, value })}\n`);
  }

  /** The remembered result, else `compute()`'s, remembered for next time. */
  async remember<T>(kind: ResultKind, key: string, validate: (value: unknown) => T | undefined, compute: () => Promise<T>): Promise<T> {
    const known = await this.get(kind, key, validate);
    if (known !== undefined) return known;
    const value = await compute();
    await this.put(kind, key, value);
    return value;
  }

  private file(kind: ResultKind, key: string): string {
    return path.join(this.dir, kind, key.slice(0, 2), `${key}.json`);
  }
}

/**
 * The key to file a cached directory's results under: its cache key and the directory's own
 * identity (inode, ctime), so a directory deleted and made again under the same key (an
 * unpinned install resolves other versions) never meets the results of the one before.
 */
export async function immutableDirKey(cacheKey: string, dir: string): Promise<string> {
  const identity = identityFromStats(await lstat(dir, { bigint: true }));
  return createHash("sha256").update(`${cacheKey}\0${identity}`).digest("hex");
}

/** Whether `dir` lies beneath `root` (lexically: both are kiln's own paths, not the app's). */
export function isBeneath(root: string, dir: string): boolean {
  const rel = path.relative(root, dir);
  return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel);
}
