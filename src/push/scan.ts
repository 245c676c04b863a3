/** Reads a raw disk as EBS blocks: checksums of non-zero blocks, cached beside the immutable image. */
import { open, readFile } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../fsutil.js";
import { BLOCK_SIZE, blockChecksum, type BlockHashes } from "./blocks.js";

const ZERO = Buffer.alloc(BLOCK_SIZE);

export async function scanDiskBlocks(imageDir: string, diskFile: string): Promise<BlockHashes> {
  const cache = path.join(imageDir, "ebs-blocks.json");
  const known = await readFile(cache, "utf8").then(
    (t) => JSON.parse(t) as (string | null)[],
    () => undefined,
  );
  if (known) return known;
  const hashes: (string | null)[] = [];
  const fh = await open(diskFile, "r");
  try {
    const buf = Buffer.alloc(BLOCK_SIZE);
    for (let index = 0; ; index++) {
      const { bytesRead } = await fh.read(buf, 0, BLOCK_SIZE, index * BLOCK_SIZE);
      if (bytesRead === 0) break;
      const block = bytesRead === BLOCK_SIZE ? buf : Buffer.concat([buf.subarray(0, bytesRead), ZERO.subarray(bytesRead)]);
      hashes.push(block.equals(ZERO) ? null : blockChecksum(block));
    }
  } finally {
    await fh.close();
  }
  await writeFileAtomic(cache, JSON.stringify(hashes));
  return hashes;
}

/** One block of the disk, zero-padded to the block size. */
export async function readDiskBlock(diskFile: string, index: number): Promise<Buffer> {
  const fh = await open(diskFile, "r");
  try {
    const buf = Buffer.alloc(BLOCK_SIZE);
    await fh.read(buf, 0, BLOCK_SIZE, index * BLOCK_SIZE);
    return buf;
  } finally {
    await fh.close();
  }
}
