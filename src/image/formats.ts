/**
 * Every disk format kiln writes, as one table. Each one is made from the store's raw disk
 * (opened read-only, never modified), cached per digest under images/<sha256>/formats/, and
 * published by an atomic rename, so a cached file is always complete.
 *
 * qemu-img does the conversions: it writes all of these formats correctly and is already a
 * kiln dependency. What qemu-img does not do is write the same bytes twice: VDI and VHD get
 * random UUIDs (and VHD a timestamp), VMDK a random content id. kiln replaces those fields
 * with values derived from the image digest, so one digest gives byte-identical files in
 * every format on every machine, like the raw disk itself.
 */
import { createHash, randomBytes } from "node:crypto";
import { open, mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { InputError } from "../errors.js";
import { run } from "../exec.js";
import { exists } from "../fsutil.js";
import { buildOva, type OvaTarget } from "./ova.js";
import type { StoredImage } from "./store.js";

export const DISK_FORMATS = ["raw", "vdi", "vmdk", "vmdk-stream", "vhd", "qcow2", "ova"] as const;
export type DiskFormat = (typeof DISK_FORMATS)[number];

export interface FormatSpec {
  readonly name: DiskFormat;
  /** Who takes it; shown in help and errors. */
  readonly summary: string;
  /** Extension of an exported file. */
  readonly extension: string;
  /** qemu's name for the format (qemu-img -f, -drive format=); undefined for archives. */
  readonly qemuFormat: string | undefined;
  /** How the file is made from the raw disk. */
  readonly make: Maker;
}

type Maker =
  | { readonly kind: "store" }
  | { readonly kind: "qemu-img"; readonly options: string; readonly normalize?: (file: string, digest: string) => Promise<void> }
  | { readonly kind: "ova" };

export const FORMATS: Readonly<Record<DiskFormat, FormatSpec>> = {
  raw: {
    name: "raw",
    summary: "raw disk: QEMU, dd to a device, EBS snapshots",
    extension: "raw",
    qemuFormat: "raw",
    make: { kind: "store" },
  },
  vdi: {
    name: "vdi",
    summary: "VirtualBox (dynamic VDI)",
    extension: "vdi",
    qemuFormat: "vdi",
    make: { kind: "qemu-img", options: "", normalize: normalizeVdi },
  },
  vmdk: {
    name: "vmdk",
    summary: "VirtualBox, VMware Workstation/Fusion (monolithicSparse VMDK)",
    extension: "vmdk",
    qemuFormat: "vmdk",
    make: { kind: "qemu-img", options: "subformat=monolithicSparse,adapter_type=ide", normalize: normalizeVmdk },
  },
  "vmdk-stream": {
    name: "vmdk-stream",
    summary: "VMware ESXi, OVA, AWS VM import (streamOptimized VMDK)",
    extension: "vmdk",
    qemuFormat: "vmdk",
    make: { kind: "qemu-img", options: "subformat=streamOptimized,adapter_type=ide", normalize: normalizeVmdk },
  },
  // Azure takes only fixed VHDs whose virtual size is a whole number of MiB; force_size keeps
  // qemu from rounding the size to a CHS geometry (kiln disks are MiB multiples already).
  vhd: {
    name: "vhd",
    summary: "Hyper-V, Azure (fixed VHD, 1 MiB aligned)",
    extension: "vhd",
    qemuFormat: "vpc",
    make: { kind: "qemu-img", options: "subformat=fixed,force_size=on", normalize: normalizeVhd },
  },
  qcow2: {
    name: "qcow2",
    summary: "QEMU/KVM, OpenStack (qcow2)",
    extension: "qcow2",
    qemuFormat: "qcow2",
    make: { kind: "qemu-img", options: "" },
  },
  ova: {
    name: "ova",
    summary: "VirtualBox/VMware appliance (OVF descriptor + streamOptimized VMDK)",
    extension: "ova",
    qemuFormat: undefined,
    make: { kind: "ova" },
  },
};

/** One line per format, for --help. */
export function describeFormats(): string {
  return DISK_FORMATS.map((f) => `${f.padEnd(12)} ${FORMATS[f].summary}`).join("\n");
}

/**
 * Parses --format values ("vdi,vmdk", repeated flags). Every unknown name is reported at
 * once, before any work starts.
 */
export function parseFormats(values: string | readonly string[]): DiskFormat[] {
  const words = (typeof values === "string" ? [values] : values)
    .flatMap((v) => v.split(","))
    .map((w) => w.trim().toLowerCase())
    .filter(Boolean);
  const unknown = words.filter((w) => !(DISK_FORMATS as readonly string[]).includes(w));
  if (unknown.length > 0) {
    throw new InputError(
      `unknown disk format${unknown.length === 1 ? "" : "s"} ${unknown.map((u) => `'${u}'`).join(", ")}; kiln knows: ${DISK_FORMATS.join(", ")}`,
      {
        hint: `formats:\n${describeFormats()
          .split("\n")
          .map((l) => `    ${l}`)
          .join("\n")}`,
      },
    );
  }
  if (words.length === 0) throw new InputError("no disk format given", { hint: `choose from ${DISK_FORMATS.join(", ")}` });
  return [...new Set(words as DiskFormat[])];
}

export interface FormatFile {
  readonly format: DiskFormat;
  readonly path: string;
  /** File size in bytes (what a download or upload moves). */
  readonly bytes: number;
  /** Whether it came from the cache. */
  readonly cached: boolean;
  /** Conversion time (0 when cached). */
  readonly seconds: number;
}

export interface EnsureOptions {
  /** Hypervisor the OVA's virtual hardware is described for (default virtualbox). */
  readonly ovaTarget?: OvaTarget;
}

function cacheName(format: DiskFormat, options: EnsureOptions): string {
  switch (format) {
    case "raw":
      return "disk.raw";
    case "vmdk-stream":
      return "disk-stream.vmdk";
    case "ova":
      return `${options.ovaTarget ?? "virtualbox"}.ova`;
    default:
      return `disk.${FORMATS[format].extension}`;
  }
}

/** Returns the image in `format`, converting (once per digest) when it is not cached yet. */
export async function ensureFormat(image: StoredImage, format: DiskFormat, options: EnsureOptions = {}): Promise<FormatFile> {
  const spec = FORMATS[format];
  if (spec.make.kind === "store") return { format, path: image.disk, bytes: (await stat(image.disk)).size, cached: true, seconds: 0 };
  const dir = path.join(image.dir, "formats");
  const file = path.join(dir, cacheName(format, options));
  if (await exists(file)) return { format, path: file, bytes: (await stat(file)).size, cached: true, seconds: 0 };

  const started = performance.now();
  // Converting inside a scratch directory under the final name keeps the name qemu-img
  // writes into a VMDK's embedded descriptor equal to the published one.
  const scratch = path.join(dir, `.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(scratch, { recursive: true });
  try {
    const out = path.join(scratch, path.basename(file));
    if (spec.make.kind === "qemu-img") {
      await run([
        "qemu-img",
        "convert",
        "-q",
        "-f",
        "raw",
        "-O",
        spec.qemuFormat!,
        ...(spec.make.options ? ["-o", spec.make.options] : []),
        image.disk,
        out,
      ]);
      await spec.make.normalize?.(out, image.digest);
    } else {
      const vmdk = await ensureFormat(image, "vmdk-stream");
      await buildOva(image, vmdk.path, out, options.ovaTarget ?? "virtualbox");
    }
    await rename(out, file);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return { format, path: file, bytes: (await stat(file)).size, cached: false, seconds: (performance.now() - started) / 1000 };
}

/**
 * Writes the image in `format` to `dest`: through a temporary file in dest's directory and a
 * rename, so `dest` is either the old file or the complete new one. All-zero blocks become
 * holes (a fixed VHD or a raw disk is mostly zeros).
 */
export async function exportFormat(
  image: StoredImage,
  format: DiskFormat,
  dest: string,
  options: EnsureOptions = {},
): Promise<FormatFile & { readonly source: string }> {
  const converted = await ensureFormat(image, format, options);
  const started = performance.now();
  await copySparse(converted.path, dest);
  return { ...converted, path: dest, source: converted.path, seconds: converted.seconds + (performance.now() - started) / 1000 };
}

const BLOCK = 64 * 1024;
const ZEROS = Buffer.alloc(BLOCK);

/** Copies a file, leaving holes where the source has all-zero 64 KiB blocks; atomic via rename. */
export async function copySparse(src: string, dest: string): Promise<void> {
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.tmp-${randomBytes(4).toString("hex")}`);
  const input = await open(src, "r");
  try {
    const output = await open(tmp, "w");
    try {
      const size = (await input.stat()).size;
      const buf = Buffer.alloc(16 * BLOCK);
      for (let offset = 0; offset < size; ) {
        const { bytesRead } = await input.read(buf, 0, buf.length, offset);
        if (bytesRead === 0) break;
        for (let at = 0; at < bytesRead; at += BLOCK) {
          const block = buf.subarray(at, Math.min(at + BLOCK, bytesRead));
          if (block.length === BLOCK && block.equals(ZEROS)) continue;
          await output.write(block, 0, block.length, offset + at);
        }
        offset += bytesRead;
      }
      await output.truncate(size);
    } finally {
      await output.close();
    }
    await rename(tmp, dest);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  } finally {
    await input.close();
  }
}

export interface DiskFileInfo {
  /** Format as qemu-img detects it (vpc for VHD). */
  readonly format: string;
  readonly virtualBytes: number;
  readonly fileBytes: number;
  /** e.g. { type: "vmdk", data: { "create-type": "streamOptimized", … } } */
  readonly formatSpecific: { readonly type?: string; readonly data?: Readonly<Record<string, unknown>> } | undefined;
}

/**
 * What qemu-img reads from a disk file: the format probed, or opened as `qemuFormat` when
 * given (qemu cannot probe a fixed VHD: its only header is the footer at the end).
 */
export async function inspectDiskFile(file: string, qemuFormat?: string): Promise<DiskFileInfo> {
  const { stdout } = await run(["qemu-img", "info", "--output=json", ...(qemuFormat ? ["-f", qemuFormat] : []), file]);
  const info = JSON.parse(stdout) as { format: string; "virtual-size": number; "format-specific"?: DiskFileInfo["formatSpecific"] };
  return {
    format: info.format,
    virtualBytes: info["virtual-size"],
    fileBytes: (await stat(file)).size,
    formatSpecific: info["format-specific"],
  };
}

// ---- making conversions reproducible --------------------------------------------------------

/** 16 bytes derived from the digest and a purpose, shaped like an RFC 4122 version 4 UUID. */
export function derivedUuid(digest: string, purpose: string): Buffer {
  const bytes = createHash("sha256").update(`kiln-uuid-v1\0${digest}\0${purpose}`).digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  return Buffer.from(bytes);
}

export function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

async function patchFile(file: string, patches: readonly { offset: number; data: Buffer }[]): Promise<void> {
  const fh = await open(file, "r+");
  try {
    for (const p of patches) await fh.write(p.data, 0, p.data.length, p.offset);
  } finally {
    await fh.close();
  }
}

async function readAt(file: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(file, "r");
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

// VDI header (VirtualBox's VDIHEADER1PLUS, as qemu's block/vdi.c writes it).
const VDI_SIGNATURE = 0xbeda107f;
const VDI_UUID_IMAGE = 0x188;
const VDI_UUID_LAST_MODIFY = 0x198;

export function checkVdiHeader(header: Buffer): void {
  if (header.length < 0x200 || header.readUInt32LE(0x40) !== VDI_SIGNATURE) throw new Error("not a VDI file (signature missing)");
  const version = header.readUInt32LE(0x44);
  if (version !== 0x00010001) throw new Error(`unexpected VDI header version 0x${version.toString(16)}`);
}

/**
 * Sets a VDI's image UUID (what VirtualBox's media registry keys disks by) and its
 * last-modification UUID. kiln uses digest-derived ones for cached files and fresh random
 * ones for the per-VM clones `kiln run --vbox` attaches.
 */
export async function setVdiUuids(file: string, image: Buffer, lastModify: Buffer): Promise<void> {
  checkVdiHeader(await readAt(file, 0, 0x200));
  await patchFile(file, [
    { offset: VDI_UUID_IMAGE, data: image },
    { offset: VDI_UUID_LAST_MODIFY, data: lastModify },
  ]);
}

export async function readVdiUuid(file: string): Promise<string> {
  const header = await readAt(file, 0, 0x200);
  checkVdiHeader(header);
  return formatUuid(header.subarray(VDI_UUID_IMAGE, VDI_UUID_IMAGE + 16));
}

async function normalizeVdi(file: string, digest: string): Promise<void> {
  await setVdiUuids(file, derivedUuid(digest, "vdi-image"), derivedUuid(digest, "vdi-modify"));
}

/** Where a sparse VMDK's embedded descriptor is (SparseExtentHeader: magic "KDMV"). */
export function vmdkDescriptorRange(header: Buffer): { offset: number; length: number } {
  if (header.subarray(0, 4).toString("latin1") !== "KDMV") throw new Error("not a sparse VMDK (magic KDMV missing)");
  const sector = Number(header.readBigUInt64LE(28));
  const sectors = Number(header.readBigUInt64LE(36));
  if (sector === 0 || sectors === 0) throw new Error("sparse VMDK without an embedded descriptor");
  return { offset: sector * 512, length: sectors * 512 };
}

/**
 * Replaces the descriptor's random content id (CID) with `cid`. qemu prints the CID without
 * zero padding, so the text can grow by a few bytes: it is re-padded with NULs to the size of
 * the descriptor area, which qemu leaves mostly empty.
 */
export function withContentId(descriptor: Buffer, cid: string): Buffer {
  const end = descriptor.indexOf(0);
  const text = descriptor.subarray(0, end < 0 ? descriptor.length : end).toString("latin1");
  if (!/^CID=[0-9a-f]{1,8}$/m.test(text)) throw new Error("VMDK descriptor has no CID line");
  const replaced = Buffer.from(text.replace(/^CID=[0-9a-f]{1,8}$/m, `CID=${cid}`), "latin1");
  if (replaced.length > descriptor.length) throw new Error("VMDK descriptor area too small for the new CID");
  const out = Buffer.alloc(descriptor.length);
  replaced.copy(out);
  return out;
}

async function normalizeVmdk(file: string, digest: string): Promise<void> {
  const { offset, length } = vmdkDescriptorRange(await readAt(file, 0, 512));
  const descriptor = await readAt(file, offset, length);
  const cid = createHash("sha256").update(`kiln-vmdk-cid\0${digest}`).digest("hex").slice(0, 8);
  await patchFile(file, [{ offset, data: withContentId(descriptor, cid) }]);
}

// VHD footer (Microsoft "Virtual Hard Disk Image Format Specification"): 512 bytes, big-endian.
const VHD_EPOCH = Date.UTC(2000, 0, 1) / 1000;
/** 2020-01-01, kiln's fixed timestamp everywhere (FAT entries, OVA members). */
export const FIXED_EPOCH = 1577836800;

export interface VhdFooter {
  readonly cookie: string;
  readonly version: number;
  readonly dataOffset: bigint;
  readonly timestamp: number;
  readonly creatorApp: string;
  readonly originalSize: number;
  readonly currentSize: number;
  readonly diskType: "fixed" | "dynamic" | "differencing" | "unknown";
  readonly checksum: number;
  readonly checksumValid: boolean;
  readonly uuid: string;
}

export function vhdChecksum(footer: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 512; i++) if (i < 64 || i > 67) sum = (sum + footer[i]!) >>> 0;
  return ~sum >>> 0;
}

export function parseVhdFooter(footer: Buffer): VhdFooter {
  if (footer.length !== 512) throw new Error(`a VHD footer is 512 bytes, got ${footer.length}`);
  const types: Record<number, VhdFooter["diskType"]> = { 2: "fixed", 3: "dynamic", 4: "differencing" };
  const checksum = footer.readUInt32BE(64);
  return {
    cookie: footer.subarray(0, 8).toString("latin1"),
    version: footer.readUInt32BE(12),
    dataOffset: footer.readBigUInt64BE(16),
    timestamp: footer.readUInt32BE(24) + VHD_EPOCH,
    creatorApp: footer.subarray(28, 32).toString("latin1"),
    originalSize: Number(footer.readBigUInt64BE(40)),
    currentSize: Number(footer.readBigUInt64BE(48)),
    diskType: types[footer.readUInt32BE(60)] ?? "unknown",
    checksum,
    checksumValid: checksum === vhdChecksum(footer),
    uuid: formatUuid(footer.subarray(68, 84)),
  };
}

export async function readVhdFooter(file: string): Promise<VhdFooter> {
  const size = (await stat(file)).size;
  return parseVhdFooter(await readAt(file, size - 512, 512));
}

/** Pins a fixed VHD footer's timestamp and UUID, and recomputes its checksum. */
export function normalizeVhdFooter(footer: Buffer, digest: string): Buffer {
  const out = Buffer.from(footer);
  if (out.subarray(0, 8).toString("latin1") !== "conectix") throw new Error("not a VHD footer (cookie conectix missing)");
  out.writeUInt32BE(FIXED_EPOCH - VHD_EPOCH, 24);
  derivedUuid(digest, "vhd").copy(out, 68);
  out.writeUInt32BE(vhdChecksum(out), 64);
  return out;
}

async function normalizeVhd(file: string, digest: string): Promise<void> {
  const size = (await stat(file)).size;
  const footer = await readAt(file, size - 512, 512);
  // A fixed VHD has only the trailing footer (a dynamic one would also have a copy at 0).
  if (parseVhdFooter(footer).diskType !== "fixed") throw new Error("expected a fixed VHD");
  await patchFile(file, [{ offset: size - 512, data: normalizeVhdFooter(footer, digest) }]);
}
