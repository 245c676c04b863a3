/**
 * Snapshot blocks: the EBS direct APIs take fixed 512 KiB blocks, each with its SHA256, and a
 * snapshot checksum that aggregates them linearly. All pure, so the arithmetic is unit-tested.
 */
import { createHash } from "node:crypto";

/** The EBS direct API block size (fixed by the API; moto answers 512, real AWS 524288). */
export const BLOCK_SIZE = 512 * 1024;

export function blockChecksum(data: Buffer): string {
  return createHash("sha256").update(data).digest("base64");
}

/** LINEAR aggregation: sha256 over the block digests (raw bytes) in block-index order. */
export function aggregateChecksum(checksums: ReadonlyMap<number, string>): string {
  const hash = createHash("sha256");
  for (const index of [...checksums.keys()].sort((a, b) => a - b)) hash.update(Buffer.from(checksums.get(index)!, "base64"));
  return hash.digest("base64");
}

/** Per block of a disk: its checksum, or null when the block is all zeros. */
export type BlockHashes = readonly (string | null)[];

export interface BlockPlan {
  /** Blocks to write, in index order. */
  readonly upload: readonly number[];
  readonly skippedZero: number;
  readonly skippedUnchanged: number;
  readonly totalBlocks: number;
}

/**
 * Which blocks to send. Without a parent: every non-zero block. With a parent snapshot
 * (incremental): every block whose content differs from the parent's, including blocks that
 * became zero (the child would otherwise inherit the parent's data there).
 */
export function planBlocks(disk: BlockHashes, parent?: BlockHashes): BlockPlan {
  const upload: number[] = [];
  let skippedZero = 0;
  let skippedUnchanged = 0;
  const total = Math.max(disk.length, parent?.length ?? 0);
  for (let i = 0; i < total; i++) {
    const mine = disk[i] ?? null;
    if (parent) {
      const theirs = parent[i] ?? null;
      if (mine === theirs) {
        if (mine === null) skippedZero++;
        else skippedUnchanged++;
        continue;
      }
      upload.push(i);
    } else if (mine === null) skippedZero++;
    else upload.push(i);
  }
  return { upload, skippedZero, skippedUnchanged, totalBlocks: total };
}
