/**
 * A tarball (.tar, .tar.gz, .tgz) as a native app: its files become /app. Extracted with
 * tar-stream (no tar binary); a single top-level directory (myapp-1.0/…) is stripped, as
 * release tarballs usually have one.
 *
 * The archive is hostile until proven otherwise, so extraction never follows a link:
 * - every name is checked (no absolute paths, no ".."), and every directory on the way to an
 *   entry is lstat'ed: an existing component that is not a plain directory is refused;
 * - files are created with O_CREAT|O_EXCL|O_NOFOLLOW, so nothing is ever written through a link;
 * - symlinks are created last, after every file, and each one is then resolved beneath the
 *   root (a chain of links inside the tree that ends outside it is caught too);
 * - a hard link is a copy of a regular file extracted earlier from the same archive, nothing else;
 * - modes become 0755 or 0644 (no setuid, setgid, sticky or world-writable bits);
 * - the archive is bounded (EXTRACT_LIMITS) so a small file cannot fill the disk.
 */
import { constants, createReadStream } from "node:fs";
import { chmod, copyFile, lstat, mkdir, open, readdir, symlink, unlink } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { extract, type Header } from "tar-stream";
import { lexicalTarget, printable, resolveBeneath } from "../confine.js";
import { InputError } from "../errors.js";
import { fsInputError } from "../fs-errors.js";

export interface ExtractLimits {
  /** Entries of any kind, links and directories included. */
  readonly maxEntries: number;
  /** Bytes written: file data plus the copies hard links become. */
  readonly maxBytes: number;
}

/** Generous for any app (a big JRE tree is ~1 000 files, 200 MB); an archive past them is refused. */
export const EXTRACT_LIMITS: ExtractLimits = { maxEntries: 200_000, maxBytes: 16 * 1024 ** 3 };

/** gzip magic, or "ustar" at offset 257 of a plain tar. */
export function isTarball(head: Buffer): "tar.gz" | "tar" | undefined {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "tar.gz";
  if (head.length >= 262 && head.toString("latin1", 257, 262) === "ustar") return "tar";
  return undefined;
}

export async function tarballKind(file: string): Promise<"tar.gz" | "tar" | undefined> {
  const fh = await open(file, "r");
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    return isTarball(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/** The image name a tarball suggests: myapp-1.0.tar.gz → myapp-1.0. */
export function tarballBaseName(file: string): string {
  return path.basename(file).replace(/\.(tar\.gz|tgz|tar)$/i, "");
}

/**
 * An entry's path relative to the extraction root, or undefined when it would land outside
 * it (absolute paths, ".." segments) or is the root itself.
 */
export function safeEntryPath(name: string): string | undefined {
  const parts = name
    .replace(/\\/g, "/")
    .split("/")
    .filter((p) => p !== "" && p !== ".");
  if (parts.length === 0 || parts.some((p) => p === "..") || name.startsWith("/") || name.includes("\0")) return undefined;
  return parts.join("/");
}

/** Extracts a tarball into `dest` (created); returns the directory holding the app's files. */
export async function extractTarball(file: string, dest: string, limitsOverride: Partial<ExtractLimits> = {}): Promise<string> {
  const limits = { ...EXTRACT_LIMITS, ...limitsOverride };
  const kind = await tarballKind(file);
  if (!kind) throw new InputError(`${file} is not a tar or tar.gz archive`);
  await mkdir(dest, { recursive: true });
  const tree = new ConfinedTree(dest, path.basename(file), limits);
  const ex = extract();
  const feeding = kind === "tar.gz" ? pipeline(createReadStream(file), createGunzip(), ex) : pipeline(createReadStream(file), ex);
  // A failure while reading is also seen by the loop below; this keeps it from going unhandled.
  feeding.catch(() => undefined);
  try {
    for await (const entry of ex) await tree.add(entry.header, entry);
    await feeding;
  } catch (error) {
    ex.destroy();
    if (error instanceof InputError) throw error;
    const unreadable = new InputError(`${path.basename(file)} is not a readable tar archive: ${(error as Error).message}`, {
      hint: "check that the file is complete (gzip -t, tar -tf) and was made with tar",
      cause: error,
    });
    throw fsInputError(error, `${path.basename(file)}: an entry`) ?? unreadable;
  }
  await tree.finish();
  const top = await readdir(dest);
  // lstat, not stat: a lone top-level symlink must not make kiln copy what it points to.
  if (top.length === 1 && (await lstat(path.join(dest, top[0]!))).isDirectory()) return path.join(dest, top[0]!);
  return dest;
}

/** The extraction root and what was put in it so far. */
class ConfinedTree {
  private readonly files = new Set<string>();
  /** Symlinks to create at the end, by entry path; a later entry of the same name replaces one. */
  private readonly links = new Map<string, { target: string; name: string }>();
  private readonly problems: string[] = [];
  private entries = 0;
  private bytes = 0;

  constructor(
    private readonly root: string,
    private readonly archive: string,
    private readonly limits: ExtractLimits,
  ) {}

  async add(header: Header, stream: EntryData): Promise<void> {
    if (++this.entries > this.limits.maxEntries) throw this.tooBig(`more than ${this.limits.maxEntries} entries`);
    const rel = safeEntryPath(header.name);
    const type = header.type ?? "file";
    if (rel === undefined) {
      // "./" (the archive's root) is harmless; anything else that escapes is reported.
      const isRoot = header.name
        .replace(/\\/g, "/")
        .split("/")
        .every((p: string) => p === "" || p === ".");
      if (!isRoot) this.refuse(header.name, "would land outside the app directory");
      return drain(stream);
    }
    try {
      if (type === "file" || type === "contiguous-file") return await this.addFile(rel, header, stream);
      if (type === "directory") await this.addDirectory(rel, header.name);
      else if (type === "symlink") await this.addSymlink(rel, header.name, header.linkname ?? "");
      else if (type === "link") await this.addHardLink(rel, header.name, header.linkname ?? "");
      // Devices, FIFOs and other special entries have no place in an app directory.
      await drain(stream);
    } catch (error) {
      throw fsInputError(error, `${this.archive}: entry ${printable(header.name)}`) ?? error;
    }
  }

  /** Creates the symlinks, then checks where each one really leads; throws with every problem found. */
  async finish(): Promise<void> {
    const links = [...this.links].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [rel, { target }] of links) {
      const host = path.join(this.root, rel);
      if ((await lstat(host).catch(() => undefined))?.isFile()) await unlink(host);
      await symlink(target, host);
    }
    for (const [rel, { target, name }] of links) {
      const resolved = await resolveBeneath(this.root, rel);
      if ("rel" in resolved) continue;
      this.refuse(
        name,
        resolved.escape === "loop"
          ? `is a symlink loop (-> ${printable(target)})`
          : `is a symlink to ${printable(target)}, which leads outside the app directory through other links`,
      );
      await unlink(path.join(this.root, rel));
    }
    if (this.problems.length === 0) return;
    const shown = this.problems.slice(0, 10);
    const more = this.problems.length > shown.length ? `\n  … and ${this.problems.length - shown.length} more` : "";
    throw new InputError(`${this.archive} has entries kiln refuses:\n${shown.map((p) => `  - ${p}`).join("\n")}${more}`, {
      hint: "build the tarball from inside the app directory (tar -C dir -czf app.tar.gz .), with links that stay inside it",
    });
  }

  private async addFile(rel: string, header: Header, stream: EntryData): Promise<void> {
    const size = header.size ?? 0;
    this.count(size);
    const host = await this.prepare(rel, header.name);
    if (host === undefined) return drain(stream);
    const mode = sanitizeMode(header.mode);
    const fh = await open(host, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    try {
      await fh.chmod(mode);
      for await (const chunk of stream) await fh.write(chunk as Uint8Array);
    } finally {
      await fh.close();
    }
    this.files.add(rel);
  }

  private async addDirectory(rel: string, name: string): Promise<void> {
    if (!(await this.parentsOf(rel, name))) return;
    this.links.delete(rel);
    const host = path.join(this.root, rel);
    const existing = await lstat(host).catch(() => undefined);
    if (existing?.isDirectory()) return;
    if (existing) return this.refuse(name, "is a directory, but an earlier entry made it a file");
    await mkdir(host, { mode: 0o755 });
    await chmod(host, 0o755);
  }

  private async addSymlink(rel: string, name: string, target: string): Promise<void> {
    if (target === "" || target.includes("\0")) return this.refuse(name, "is a symlink with an empty target");
    if (lexicalTarget(rel, target) === undefined)
      return this.refuse(name, `is a symlink to ${printable(target)}, outside the app directory`);
    if (!(await this.parentsOf(rel, name))) return;
    const existing = await lstat(path.join(this.root, rel)).catch(() => undefined);
    if (existing?.isDirectory()) return this.refuse(name, "is a symlink, but an earlier entry made it a directory");
    this.files.delete(rel);
    this.links.set(rel, { target, name });
  }

  private async addHardLink(rel: string, name: string, linkname: string): Promise<void> {
    const from = safeEntryPath(linkname);
    if (from === undefined || !this.files.has(from)) {
      return this.refuse(name, `is a hard link to ${printable(linkname)}, which is not a regular file extracted earlier from this archive`);
    }
    const source = path.join(this.root, from);
    const info = await lstat(source);
    this.count(info.size);
    const host = await this.prepare(rel, name);
    if (host === undefined) return;
    await copyFile(source, host, constants.COPYFILE_EXCL);
    await chmod(host, sanitizeMode(info.mode));
    this.files.add(rel);
  }

  /** The host path for a new file at `rel`: parents made, any earlier file of that name removed. */
  private async prepare(rel: string, name: string): Promise<string | undefined> {
    if (!(await this.parentsOf(rel, name))) return undefined;
    this.links.delete(rel);
    const host = path.join(this.root, rel);
    const existing = await lstat(host).catch(() => undefined);
    if (existing?.isDirectory()) {
      this.refuse(name, "is a file, but an earlier entry made it a directory");
      return undefined;
    }
    // A later entry of the same name replaces an earlier file, as tar does.
    if (existing) await unlink(host);
    return host;
  }

  /** Makes the directories above `rel`, refusing to pass through anything but a real directory. */
  private async parentsOf(rel: string, name: string): Promise<boolean> {
    if (this.hasLinkAbove(rel)) {
      this.refuse(name, "lies under a symlink the archive made earlier (kiln never writes through links)");
      return false;
    }
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) {
      const host = path.join(this.root, ...parts.slice(0, i));
      const info = await lstat(host).catch(() => undefined);
      if (info === undefined) {
        await mkdir(host, { mode: 0o755 });
        await chmod(host, 0o755);
      } else if (!info.isDirectory() || info.isSymbolicLink()) {
        this.refuse(name, `lies under ${parts.slice(0, i).join("/")}, which is not a directory`);
        return false;
      }
    }
    return true;
  }

  private hasLinkAbove(rel: string): boolean {
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) if (this.links.has(parts.slice(0, i).join("/"))) return true;
    return false;
  }

  private count(bytes: number): void {
    this.bytes += bytes;
    if (this.bytes > this.limits.maxBytes)
      throw this.tooBig(`more than ${this.limits.maxBytes} bytes of files (hard links counted as copies)`);
  }

  private tooBig(what: string): InputError {
    return new InputError(`${this.archive} has ${what}; kiln stops there rather than fill the disk`, {
      hint:
        `an app tarball is limited to ${EXTRACT_LIMITS.maxEntries} entries and ${EXTRACT_LIMITS.maxBytes / 1024 ** 3} GiB; ` +
        "check that this is the archive you meant",
    });
  }

  private refuse(name: string, why: string): void {
    this.problems.push(`${printable(name)} ${why}`);
  }
}

/** An entry's data as tar-stream hands it over. */
type EntryData = AsyncIterable<unknown>;

/** 0755 when any execute bit is set, else 0644: the image does not depend on the archive's modes. */
function sanitizeMode(mode: number | undefined): number {
  return (mode ?? 0o644) & 0o111 ? 0o755 : 0o644;
}

async function drain(stream: EntryData): Promise<void> {
  for await (const _ of stream) {
    // discarded: the entry is skipped
  }
}
