/**
 * kiln prune: removes the stored images nothing needs — no ref names them, no local environment
 * runs them, and no environment keeps them as a rollback target (usage.ts). Decided and done
 * under the store lock, so a bake committing the same bytes meanwhile cannot lose its image.
 */
import type { KilnHome } from "../home.js";
import { ImageStore } from "./store.js";
import { withStoreLock } from "./store-lock.js";

export interface PrunedImage {
  readonly digest: string;
  /** name:version it was baked as. */
  readonly bakedAs: string;
  readonly bakedAt: string;
  readonly bytes: number;
}

export interface PruneResult {
  readonly dryRun: boolean;
  readonly removed: readonly PrunedImage[];
  /** Bytes freed (or, with dryRun, that would be). */
  readonly bytes: number;
  /** Unreferenced images kept because an environment needs them. */
  readonly kept: readonly { digest: string; bakedAs: string; why: string }[];
}

export async function pruneImages(home: KilnHome, opts: { dryRun: boolean }): Promise<PruneResult> {
  const store = new ImageStore(home);
  return withStoreLock(home, "prune", async () => {
    const unreferenced = (await store.listAll()).filter((e) => e.refs.length === 0);
    const free = unreferenced.filter((e) => e.usedBy.length === 0);
    const removed = free.map((e) => ({ digest: e.digest, bakedAs: e.bakedAs, bakedAt: e.image.manifest.bakedAt, bytes: e.bytes }));
    if (!opts.dryRun) await store.deleteImagesLocked(removed.map((r) => r.digest));
    return {
      dryRun: opts.dryRun,
      removed,
      bytes: removed.reduce((n, r) => n + r.bytes, 0),
      kept: unreferenced
        .filter((e) => e.usedBy.length > 0)
        .map((e) => ({ digest: e.digest, bakedAs: e.bakedAs, why: e.usedBy.map((u) => `${u.role} in ${u.app}/${u.env}`).join(", ") })),
    };
  });
}
