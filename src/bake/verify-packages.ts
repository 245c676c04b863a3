/**
 * Before a bake's packages enter kiln.lock and the manifest, each one is verified from its
 * bytes (apt.ts verify, npm.ts fetchNodeRuntime): layers served from the cache record the
 * packages they were built from, and those records must not be taken on the lock's word.
 */
import { KilnError } from "../errors.js";
import type { LockEntry } from "../packages/lock.js";
import { NODE_RUNTIME_PACKAGE } from "../packages/npm.js";
import type { BakeContext } from "./context.js";

async function verifyEntry(ctx: BakeContext, entry: LockEntry): Promise<void> {
  if (entry.source.startsWith("debian")) {
    await ctx.apt.verify({ name: entry.name, version: entry.version, sha256: entry.sha256, source: entry.source, depends: "" });
  } else if (entry.source === "npm" && entry.name === NODE_RUNTIME_PACKAGE) {
    await ctx.npm.fetchNodeRuntime(entry.version, entry.sha256);
  } else {
    throw new KilnError(`kiln cannot verify package ${entry.name} from ${entry.source}`);
  }
}

export async function verifyUsedPackages(ctx: BakeContext): Promise<number> {
  await Promise.all(ctx.used.map((entry) => verifyEntry(ctx, entry)));
  return ctx.used.length;
}
