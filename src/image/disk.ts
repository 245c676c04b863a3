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

export interface DiskPart {
  readonly path: string;
  readonly bytes: number;
  readonly sha256: string;
}

export interface DiskParts {
  readonly bootCode: Buffer;
  readonly diskSignature: number;
  readonly boot: DiskPart;
  readonly system: DiskPart;
  readonly app: DiskPart;
  /** Installed dependencies (partition 4), when the app has a dependency layer. */
  readonly deps?: DiskPart;
}

/**
 * The image digest: sha256 of a canonical description of every non-zero byte of the disk
 * (its size, the MBR sector, and each partition's offset and content hash; the rest is
 * zeros by construction). It identifies the bytes exactly like hashing the whole disk would,
 * without re-reading hundreds of MB of zeros on every bake.
 */
export function describeDisk(layout: DiskLayout, mbr: Buffer, hashes: Readonly<Record<string, string>>): string {
  const lines = ["kiln-disk-v1", `size ${layout.totalBytes}`, `mbr ${createHash("sha256").update(mbr).digest("hex")}`];
  for (const p of layout.partitions)
    lines.push(
      `partition ${p.number} ${p.name} offset ${p.offsetBytes} slot ${p.sizeBytes} bytes ${p.contentBytes} sha256 ${hashes[p.name]}`,
    );
  return `${lines.join("\n")}\n`;
}

const CHUNK = 1024 * 1024;

export async function assembleDisk(parts: DiskParts, outFile: string): Promise<{ layout: DiskLayout; digest: string; descriptor: string }> {
  const layout = planDiskLayout({
    bootBytes: parts.boot.bytes,
    systemBytes: parts.system.bytes,
    appBytes: parts.app.bytes,
    ...(parts.deps ? { depsBytes: parts.deps.bytes } : {}),
  });
  const mbr = buildMbr({ bootCode: parts.bootCode, diskSignature: parts.diskSignature, partitions: layoutToMbrPartitions(layout) });
  const out = await open(outFile, "w");
  try {
    await out.truncate(layout.totalBytes);
    await out.write(mbr, 0, mbr.length, 0);
    const sources = { boot: parts.boot.path, system: parts.system.path, app: parts.app.path, deps: parts.deps?.path ?? "" };
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
  const hashes = {
    boot: parts.boot.sha256,
    system: parts.system.sha256,
    app: parts.app.sha256,
    ...(parts.deps ? { deps: parts.deps.sha256 } : {}),
  };
  const descriptor = describeDisk(layout, mbr, hashes);
  return { layout, descriptor, digest: `sha256:${createHash("sha256").update(descriptor).digest("hex")}` };
}

const ZERO = Buffer.alloc(CHUNK);
function isZero(buf: Buffer): boolean {
  return buf.length <= ZERO.length && buf.equals(ZERO.subarray(0, buf.length));
}

/** Recomputes the digest from the disk's bytes (for verification and tests). */
export async function digestOfDiskFile(file: string, layout: DiskLayout): Promise<string> {
  const { open: openFile } = await import("node:fs/promises");
  const fh = await openFile(file, "r");
  try {
    const mbr = Buffer.alloc(512);
    await fh.read(mbr, 0, 512, 0);
    const hashes: Record<string, string> = {};
    for (const p of layout.partitions) {
      const hash = createHash("sha256");
      const buf = Buffer.alloc(CHUNK);
      for (let done = 0; done < p.contentBytes; ) {
        const n = Math.min(CHUNK, p.contentBytes - done);
        await fh.read(buf, 0, n, p.offsetBytes + done);
        hash.update(buf.subarray(0, n));
        done += n;
      }
      hashes[p.name] = hash.digest("hex");
    }
    return `sha256:${createHash("sha256")
      .update(describeDisk(layout, mbr, hashes))
      .digest("hex")}`;
  } finally {
    await fh.close();
  }
}

/** A stable 32-bit MBR signature from the app name: same across versions, so boot layers are shared. */
export function diskSignatureFor(name: string): number {
  const digest = createHash("sha256").update(`kiln-disk:${name}`).digest();
  return digest.readUInt32LE(0) || 1;
}
