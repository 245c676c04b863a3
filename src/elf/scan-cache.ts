/**
 * Remembers what scanning a file for ELF found, so a rebake does not read every file of the app
 * (every file in node_modules) again. Two levels, like git's index:
 *   - a stat index: (dev, ino, size, mtime, ctime) → "not ELF" or the content's sha256; a hit
 *     opens nothing;
 *   - a content store: sha256 → the parsed ElfInfo; a file seen before under another inode
 *     (the same addon in a new staging copy) is read once to hash it, but not parsed again.
 * A miss reads the file's first 4 bytes; only ELF files are read whole (as they were before).
 * KILN_HOME is private, but what is read back is still validated: a malformed entry is a miss.
 */
import { createHash } from "node:crypto";
import { open, readFile } from "node:fs/promises";
import path from "node:path";
import { fileIdentity } from "../file-identity.js";
import { writePrivateFileAtomic } from "../private-fs.js";
import { isElf, parseElf, type ElfInfo } from "./elf.js";

/** How files are read; tests inject a counting reader to prove a warm scan reads nothing. */
export interface FileReader {
  head(file: string, bytes: number): Promise<Buffer>;
  whole(file: string): Promise<Buffer>;
}

export const fsReader: FileReader = {
  async head(file, bytes) {
    const fh = await open(file, "r");
    try {
      const buf = Buffer.alloc(bytes);
      const { bytesRead } = await fh.read(buf, 0, bytes, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  },
  whole: (file) => readFile(file),
};

const INDEX_VERSION = 1;
const NOT_ELF = "n";
/** Entries kept from earlier bakes beyond the ones this scan used (staging copies get new inodes). */
const MAX_KEPT = 200_000;
const SHA256 = /^[0-9a-f]{64}$/;

export interface ScannedElf {
  readonly sha256: string;
  readonly info: ElfInfo;
}

export class ElfScanCache {
  private readonly used = new Map<string, string>();
  private readonly contents = new Map<string, ElfInfo>();
  private dirty = false;

  private constructor(
    private readonly dir: string | undefined,
    private readonly previous: Map<string, string>,
    private readonly reader: FileReader,
  ) {}

  /** Opens the cache under `dir` (KILN_HOME/cache/elf-scan); undefined `dir` scans without remembering. */
  static async open(dir: string | undefined, reader: FileReader = fsReader): Promise<ElfScanCache> {
    const previous = dir ? await readIndex(path.join(dir, "index.json")) : new Map<string, string>();
    return new ElfScanCache(dir, previous, reader);
  }

  /** The file's ElfInfo, or undefined when it is not an ELF file. Malformed ELF throws, as parseElf does. */
  async scan(file: string, label: string): Promise<ElfInfo | undefined> {
    return (await this.scanFile(file, label))?.info;
  }

  /** Like scan, with the content's sha256 the result is filed under (for lists of ELF files kept by a tree's key). */
  async scanFile(file: string, label: string): Promise<ScannedElf | undefined> {
    const key = await fileIdentity(file);
    const known = this.used.get(key) ?? this.previous.get(key);
    if (known === NOT_ELF) return this.remember(key, NOT_ELF, undefined);
    if (known !== undefined) {
      const info = await this.content(known);
      if (info) return this.remember(key, known, { sha256: known, info });
    }
    if (!isElf(await this.reader.head(file, 4))) return this.remember(key, NOT_ELF, undefined);
    const bytes = await this.reader.whole(file);
    const digest = createHash("sha256").update(bytes).digest("hex");
    const info = (await this.content(digest)) ?? parseElf(bytes, label);
    if (!this.contents.has(digest)) {
      this.contents.set(digest, info);
      if (this.dir) await writePrivateFileAtomic(this.contentFile(digest), `${JSON.stringify({ sha256: digest, info })}\n`);
    }
    return this.remember(key, digest, { sha256: digest, info });
  }

  /** The ElfInfo filed under a content sha256, if this cache holds a valid entry for it. */
  async infoOf(sha256: string): Promise<ElfInfo | undefined> {
    return SHA256.test(sha256) ? this.content(sha256) : undefined;
  }

  /** Writes the stat index: this scan's entries first, then earlier ones up to a bound. */
  async save(): Promise<void> {
    if (!this.dir || !this.dirty) return;
    const entries: Record<string, string> = Object.fromEntries(this.used);
    let kept = this.used.size;
    for (const [key, value] of this.previous) {
      if (kept >= MAX_KEPT) break;
      if (key in entries) continue;
      entries[key] = value;
      kept++;
    }
    await writePrivateFileAtomic(path.join(this.dir, "index.json"), JSON.stringify({ version: INDEX_VERSION, entries }));
    this.dirty = false;
  }

  private remember(key: string, value: string, found: ScannedElf | undefined): ScannedElf | undefined {
    if (this.used.get(key) !== value) {
      this.used.set(key, value);
      if (this.previous.get(key) !== value) this.dirty = true;
    }
    return found;
  }

  private contentFile(digest: string): string {
    return path.join(this.dir!, "content", digest.slice(0, 2), `${digest}.json`);
  }

  private async content(digest: string): Promise<ElfInfo | undefined> {
    const mem = this.contents.get(digest);
    if (mem || !this.dir) return mem;
    const text = await readFile(this.contentFile(digest), "utf8").catch(() => undefined);
    const info = text === undefined ? undefined : validContentEntry(text, digest);
    if (info) this.contents.set(digest, info);
    return info;
  }
}

async function readIndex(file: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, "utf8"));
  } catch {
    return out;
  }
  if (!isRecord(parsed) || parsed.version !== INDEX_VERSION || !isRecord(parsed.entries)) return out;
  for (const [key, value] of Object.entries(parsed.entries)) {
    if (!/^c?\d+:\d+:\d+:\d+:\d+$/.test(key)) continue;
    if (value === NOT_ELF || (typeof value === "string" && SHA256.test(value))) out.set(key, value);
  }
  return out;
}

/** An entry is used only when it names the digest it is filed under and every field has its type. */
function validContentEntry(text: string, digest: string): ElfInfo | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(parsed) || parsed.sha256 !== digest || !isRecord(parsed.info)) return undefined;
  return validElfInfo(parsed.info);
}

const TYPES: readonly string[] = ["exec", "dyn", "rel", "core", "other"];

function validElfInfo(v: Record<string, unknown>): ElfInfo | undefined {
  const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === "string" && !s.includes("\0"));
  const optString = (x: unknown) => x === undefined || (typeof x === "string" && !x.includes("\0"));
  const ok =
    (v.bits === 32 || v.bits === 64) &&
    typeof v.littleEndian === "boolean" &&
    Number.isInteger(v.machine) &&
    typeof v.machineName === "string" &&
    TYPES.includes(v.type as string) &&
    strings(v.needed) &&
    strings(v.runpath) &&
    strings(v.rpath) &&
    optString(v.interpreter) &&
    optString(v.soname) &&
    typeof v.isStatic === "boolean" &&
    typeof v.isPie === "boolean";
  if (!ok) return undefined;
  const info: ElfInfo = {
    bits: v.bits as 32 | 64,
    littleEndian: v.littleEndian as boolean,
    machine: v.machine as number,
    machineName: v.machineName as string,
    type: v.type as ElfInfo["type"],
    needed: [...(v.needed as string[])],
    runpath: [...(v.runpath as string[])],
    rpath: [...(v.rpath as string[])],
    isStatic: v.isStatic as boolean,
    isPie: v.isPie as boolean,
  };
  if (v.interpreter !== undefined) info.interpreter = v.interpreter as string;
  if (v.soname !== undefined) info.soname = v.soname as string;
  return info;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
