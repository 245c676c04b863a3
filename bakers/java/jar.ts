/**
 * Reading jars without a JVM: the zip central directory, the manifest, class file versions.
 * Pure functions over a Buffer, so detection is fast and unit-testable. Zip64 (jars over 4 GiB
 * or 65535 entries) is reported, not read.
 */
import { constants, inflateRawSync } from "node:zlib";

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflated. */
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  /** Offset of the entry's local header. */
  readonly headerOffset: number;
  /** General purpose flags (bit 0: encrypted). */
  readonly flags: number;
  /** "Version made by": its high byte is the host system (3 = Unix, whose mode is in externalAttributes' high 16 bits). */
  readonly madeBy: number;
  readonly externalAttributes: number;
}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

export class ZipFormatError extends Error {}

export function isZip(bytes: Buffer): boolean {
  return bytes.length >= 4 && bytes.readUInt32LE(0) === LOCAL;
}

/** Lists a zip's entries from its central directory. */
export function readZipEntries(zip: Buffer): ZipEntry[] {
  // The end-of-central-directory record is in the last 22 + 65535 (comment) bytes.
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ZipFormatError("not a zip file (no end-of-central-directory record)");
  const count = zip.readUInt16LE(eocd + 10);
  const dirOffset = zip.readUInt32LE(eocd + 16);
  if (count === 0xffff || dirOffset === 0xffffffff) throw new ZipFormatError("zip64 archives are not supported");
  const entries: ZipEntry[] = [];
  let at = dirOffset;
  for (let n = 0; n < count; n++) {
    if (at + 46 > zip.length || zip.readUInt32LE(at) !== CENTRAL) throw new ZipFormatError(`corrupt central directory at entry ${n}`);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    entries.push({
      name: zip.toString("utf8", at + 46, at + 46 + nameLength),
      method: zip.readUInt16LE(at + 10),
      flags: zip.readUInt16LE(at + 8),
      madeBy: zip.readUInt16LE(at + 4),
      externalAttributes: zip.readUInt32LE(at + 38),
      compressedSize: zip.readUInt32LE(at + 20),
      size: zip.readUInt32LE(at + 24),
      headerOffset: zip.readUInt32LE(at + 42),
    });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** The uncompressed bytes of one entry. */
export function readZipEntry(zip: Buffer, entry: ZipEntry): Buffer {
  const at = entry.headerOffset;
  if (zip.readUInt32LE(at) !== LOCAL) throw new ZipFormatError(`corrupt local header for ${entry.name}`);
  const start = at + 30 + zip.readUInt16LE(at + 26) + zip.readUInt16LE(at + 28);
  const raw = zip.subarray(start, start + entry.compressedSize);
  if (entry.method === 0) return Buffer.from(raw);
  if (entry.method === 8) return inflateRawSync(raw);
  throw new ZipFormatError(`${entry.name}: unsupported compression method ${entry.method}`);
}

/** The first bytes of an entry, inflating only a prefix (enough for a class file header). */
function readZipEntryHead(zip: Buffer, entry: ZipEntry, compressedBytes = 1024): Buffer {
  if (entry.method !== 8) return readZipEntry(zip, entry);
  const at = entry.headerOffset;
  const start = at + 30 + zip.readUInt16LE(at + 26) + zip.readUInt16LE(at + 28);
  const raw = zip.subarray(start, start + Math.min(entry.compressedSize, compressedBytes));
  return inflateRawSync(raw, { finishFlush: constants.Z_SYNC_FLUSH });
}

/**
 * Parses META-INF/MANIFEST.MF main attributes (JAR spec: "Name: value" lines, continuation
 * lines start with one space, the main section ends at the first blank line).
 */
export function parseManifest(text: string): Record<string, string> {
  const attributes: Record<string, string> = {};
  let last: string | undefined;
  for (const line of text.replace(/\r\n?/g, "\n").split("\n")) {
    if (line === "") break;
    if (line.startsWith(" ") && last) {
      attributes[last] += line.slice(1);
      continue;
    }
    const colon = line.indexOf(": ");
    if (colon <= 0) continue;
    last = line.slice(0, colon);
    attributes[last] = line.slice(colon + 2);
  }
  return attributes;
}

export type JarLayout = "spring-boot" | "plain";

export interface JarInfo {
  readonly manifest: Record<string, string>;
  readonly layout: JarLayout;
  /** The class the JVM starts with `java -jar` (Spring Boot: its launcher). */
  readonly mainClass: string | undefined;
  /** Spring Boot: the application's own main class. */
  readonly startClass: string | undefined;
  /** Highest class file major version in the jar (61 = Java 17). */
  readonly classMajor: number | undefined;
}

export function inspectJar(zip: Buffer): JarInfo {
  const entries = readZipEntries(zip);
  const manifestEntry = entries.find((e) => e.name === "META-INF/MANIFEST.MF");
  const manifest = manifestEntry ? parseManifest(readZipEntry(zip, manifestEntry).toString("utf8")) : {};
  const layout: JarLayout = entries.some((e) => e.name.startsWith("BOOT-INF/")) ? "spring-boot" : "plain";
  let classMajor: number | undefined;
  for (const entry of entries) {
    // Versioned entries (META-INF/versions/N/) only load on Java N+, so they do not count.
    if (!entry.name.endsWith(".class") || entry.name.startsWith("META-INF/") || entry.name.endsWith("module-info.class")) continue;
    const major = classFileMajor(readZipEntryHead(zip, entry));
    if (major !== undefined && (classMajor === undefined || major > classMajor)) classMajor = major;
  }
  return {
    manifest,
    layout,
    mainClass: manifest["Main-Class"]?.trim() || undefined,
    startClass: manifest["Start-Class"]?.trim() || undefined,
    classMajor,
  };
}

/** A class file's major version (0xCAFEBABE, minor u2, major u2), or undefined if not a class file. */
export function classFileMajor(bytes: Buffer): number | undefined {
  if (bytes.length < 8 || bytes.readUInt32BE(0) !== 0xcafebabe) return undefined;
  return bytes.readUInt16BE(6);
}

/** Java release of a class file major version: 52 → 8, 61 → 17, 65 → 21. */
export function javaReleaseOf(major: number): number {
  return major - 44;
}

/** Image name and version from a jar's file name: shop-1.4.0.jar → shop, 1.4.0. */
export function nameAndVersionOf(fileName: string): { name: string; version?: string } {
  const base = fileName.replace(/\.jar$/i, "");
  const m = /^(.*?)-(\d+(?:\.\d+)*(?:[.-][A-Za-z0-9]+)*)$/.exec(base);
  if (m?.[1]) return { name: m[1], version: m[2]! };
  return { name: base };
}
