/**
 * Assembles the raw disk: MBR (syslinux boot code, content-independent signature, partition
 * table) and each layer image at its planned offset. All-zero chunks are skipped so the file
 * stays sparse; the digest is the sha256 of the disk's bytes.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { buildMbr } from "./mbr.js";
import { layoutToMbrPartitions, planDiskLayout, type DiskLayout } from "./layout.js";

export interface DiskParts {
  readonly bootCode: Buffer;
  readonly diskSignature: number;
  readonly boot: { path: string; bytes: number };
  readonly system: { path: string; bytes: number };
  readonly app: { path: string; bytes: number };
}

const CHUNK = 1024 * 1024;

export async function assembleDisk(parts: DiskParts, outFile: string): Promise<{ layout: DiskLayout; digest: string }> {
  const layout = planDiskLayout({ bootBytes: parts.boot.bytes, systemBytes: parts.system.bytes, appBytes: parts.app.bytes });
  const mbr = buildMbr({ bootCode: parts.bootCode, diskSignature: parts.diskSignature, partitions: layoutToMbrPartitions(layout) });
  const out = await open(outFile, "w");
  try {
    await out.truncate(layout.totalBytes);
    await out.write(mbr, 0, mbr.length, 0);
    const sources = { boot: parts.boot.path, system: parts.system.path, app: parts.app.path };
    for (const partition of layout.partitions) {
      let offset = partition.offsetBytes;
      for await (const chunk of createReadStream(sources[partition.name], { highWaterMark: CHUNK })) {
        const buf = chunk as Buffer;
        if (!isZero(buf)) await out.write(buf, 0, buf.length, offset);
        offset += buf.length;
      }
    }
  } finally {
    await out.close();
  }
  return { layout, digest: `sha256:${await hashFile(outFile)}` };
}

const ZERO = Buffer.alloc(CHUNK);
function isZero(buf: Buffer): boolean {
  return buf.length <= ZERO.length && buf.equals(ZERO.subarray(0, buf.length));
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * CHUNK })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** A stable 32-bit MBR signature from the app name: same across versions, so boot layers are shared. */
export function diskSignatureFor(name: string): number {
  const digest = createHash("sha256").update(`kiln-disk:${name}`).digest();
  return digest.readUInt32LE(0) || 1;
}
