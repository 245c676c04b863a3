import { constants as zc, gzipSync } from "node:zlib";

/**
 * Initramfs archives in the SVR4 "newc" cpio format, the only one the kernel unpacks.
 * Everything that could vary between two bakes of the same content (mtimes, inode
 * numbers, owners, entry order) is fixed, so an unchanged initramfs is byte-identical
 * and hashes the same.
 */

export type CpioEntry =
  | { path: string; type: "dir"; mode: number }
  | { path: string; type: "file"; mode: number; data: Buffer }
  | { path: string; type: "symlink"; target: string }
  | { path: string; type: "char"; mode: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const HEADER_SIZE = 110;
const MAX_FIELD = 0xffffffff;
const TRAILER = "TRAILER!!!";

export function buildCpio(entries: readonly CpioEntry[]): Buffer {
  const sorted = withParents(entries);
  const chunks: Buffer[] = [];
  sorted.forEach((entry, i) => chunks.push(encodeEntry(entry, i + 1)));
  chunks.push(encodeRecord({ ino: 0, mode: 0, nlink: 1, rdevMajor: 0, rdevMinor: 0, name: TRAILER, data: Buffer.alloc(0) }));
  return Buffer.concat(chunks);
}

/**
 * Gzip with every header field pinned. Node's zlib already writes mtime 0, but we zero it
 * anyway and force OS=3 (Unix), which zlib would otherwise set per build platform.
 * The deflate stream itself is stable for a given Node release (it bundles its own zlib);
 * a different zlib build may compress differently, so cache keys should hash the
 * uncompressed archive.
 */
export function gzipDeterministic(buf: Buffer): Buffer {
  const out = gzipSync(buf, {
    level: 9,
    memLevel: 8,
    windowBits: 15,
    strategy: zc.Z_DEFAULT_STRATEGY,
  });
  if (out[0] !== 0x1f || out[1] !== 0x8b || out[3] !== 0) {
    throw new Error("zlib produced an unexpected gzip header (extra header fields present)");
  }
  out.writeUInt32LE(0, 4);
  out[9] = 3;
  return out;
}

/** Validates, sorts by path bytes and fills in missing parent directories. */
function withParents(entries: readonly CpioEntry[]): CpioEntry[] {
  const byPath = new Map<string, CpioEntry>();
  for (const entry of entries) {
    validateEntry(entry);
    if (byPath.has(entry.path)) throw new Error(`cpio: duplicate path "${entry.path}"`);
    byPath.set(entry.path, entry);
  }
  for (const entry of [...byPath.values()]) {
    for (const parent of parentsOf(entry.path)) {
      const existing = byPath.get(parent);
      if (existing === undefined) {
        byPath.set(parent, { path: parent, type: "dir", mode: 0o755 });
      } else if (existing.type !== "dir") {
        // Unpacking would have to go through a file or symlink; the kernel's result is surprising.
        throw new Error(`cpio: "${entry.path}" is inside "${parent}", which is a ${existing.type}, not a directory`);
      }
    }
  }
  // Byte order, not JS string order: UTF-16 code-unit comparison differs for non-BMP names.
  const keyed = [...byPath.values()].map((entry) => ({ entry, key: Buffer.from(entry.path) }));
  keyed.sort((a, b) => Buffer.compare(a.key, b.key));
  return keyed.map((k) => k.entry);
}

function parentsOf(path: string): string[] {
  const parts = path.split("/");
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join("/"));
  return out;
}

function validateEntry(entry: CpioEntry): void {
  const p = entry.path;
  if (typeof p !== "string" || p === "" || p.startsWith("/") || p.includes("\0")) {
    throw new Error(`cpio: invalid path "${String(p)}" (must be relative, non-empty, without NUL)`);
  }
  if (p.split("/").some((part) => part === "" || part === "." || part === "..")) {
    throw new Error(`cpio: invalid path "${p}" (empty, "." or ".." component)`);
  }
  if (entry.type !== "symlink" && !(Number.isInteger(entry.mode) && entry.mode >= 0 && entry.mode <= 0o7777)) {
    throw new Error(`cpio: "${p}" has invalid mode ${entry.mode} (permission bits 0..0o7777 only)`);
  }
  if (entry.type === "symlink" && (entry.target === "" || entry.target.includes("\0"))) {
    throw new Error(`cpio: symlink "${p}" has an empty or NUL-containing target`);
  }
  if (entry.type === "char" && !(isField(entry.major) && isField(entry.minor))) {
    throw new Error(`cpio: "${p}" has invalid device numbers ${entry.major}:${entry.minor}`);
  }
  if (entry.type === "file" && entry.data.length > MAX_FIELD) {
    throw new Error(`cpio: "${p}" is larger than the newc format's 4 GiB limit`);
  }
}

function isField(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= MAX_FIELD;
}

function encodeEntry(entry: CpioEntry, ino: number): Buffer {
  const base = { ino, name: entry.path, rdevMajor: 0, rdevMinor: 0, nlink: 1, data: Buffer.alloc(0) };
  switch (entry.type) {
    case "dir":
      return encodeRecord({ ...base, mode: S_IFDIR | entry.mode, nlink: 2 });
    case "file":
      return encodeRecord({ ...base, mode: S_IFREG | entry.mode, data: entry.data });
    case "symlink":
      return encodeRecord({ ...base, mode: S_IFLNK | 0o777, data: Buffer.from(entry.target) });
    case "char":
      return encodeRecord({ ...base, mode: S_IFCHR | entry.mode, rdevMajor: entry.major, rdevMinor: entry.minor });
  }
}

interface CpioRecord {
  ino: number;
  mode: number;
  nlink: number;
  rdevMajor: number;
  rdevMinor: number;
  name: string;
  data: Buffer;
}

function encodeRecord(r: CpioRecord): Buffer {
  const name = Buffer.from(`${r.name}\0`);
  // Field order per the newc spec; uid, gid, mtime, devmajor/minor and check stay 0.
  const fields = [r.ino, r.mode, 0, 0, r.nlink, 0, r.data.length, 0, 0, r.rdevMajor, r.rdevMinor, name.length, 0];
  const header = Buffer.from(`070701${fields.map((f) => f.toString(16).toUpperCase().padStart(8, "0")).join("")}`, "ascii");
  return Buffer.concat([header, name, zeros(pad4(HEADER_SIZE + name.length)), r.data, zeros(pad4(r.data.length))]);
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function zeros(n: number): Buffer {
  return Buffer.alloc(n);
}
