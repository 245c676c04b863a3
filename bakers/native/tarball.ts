/**
 * A tarball (.tar, .tar.gz, .tgz) as a native app: its files become /app. Extracted with
 * tar-stream (no tar binary, nothing can escape the target directory); a single top-level
 * directory (myapp-1.0/…) is stripped, as release tarballs usually have one.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { copyFile, mkdir, open, readdir, stat, symlink } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { extract } from "tar-stream";
import { InputError } from "../../src/errors.js";

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
  const parts = name.replace(/\\/g, "/").split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0 || parts.some((p) => p === "..") || name.startsWith("/")) return undefined;
  return parts.join("/");
}

/** Extracts a tarball into `dest` (created); returns the directory holding the app's files. */
export async function extractTarball(file: string, dest: string): Promise<string> {
  const kind = await tarballKind(file);
  if (!kind) throw new InputError(`${file} is not a tar or tar.gz archive`);
  await mkdir(dest, { recursive: true });
  const ex = extract();
  const problems: string[] = [];
  ex.on("entry", (header, stream, next) => {
    const rel = safeEntryPath(header.name);
    const done = (error?: unknown) => (error ? next(error as Error) : next());
    const skip = () => {
      stream.on("end", () => done());
      stream.resume();
    };
    if (rel === undefined) {
      // "./" (the archive's root) is harmless; anything else that escapes is reported.
      if (!header.name.replace(/\\/g, "/").split("/").every((p) => p === "" || p === ".")) problems.push(header.name);
      skip();
      return;
    }
    const target = path.join(dest, rel);
    const work = async (): Promise<boolean> => {
      await mkdir(path.dirname(target), { recursive: true });
      if (header.type === "file" || header.type === "contiguous-file") {
        await pipeline(stream, createWriteStream(target, { mode: (header.mode ?? 0o644) & 0o111 ? 0o755 : 0o644 }));
        return true;
      }
      if (header.type === "directory") await mkdir(target, { recursive: true });
      else if (header.type === "symlink" && header.linkname) await symlink(header.linkname, target);
      else if (header.type === "link" && header.linkname) {
        const from = safeEntryPath(header.linkname);
        if (from === undefined) problems.push(`${header.name} -> ${header.linkname}`);
        else await copyFile(path.join(dest, from), target);
      }
      // Devices, FIFOs and other special entries have no place in an app directory.
      return false;
    };
    // A file's data is consumed by the pipeline; other entries' (empty) streams are drained after.
    work().then((consumed) => (consumed ? done() : skip()), done);
  });
  const input = createReadStream(file);
  if (kind === "tar.gz") await pipeline(input, createGunzip(), ex);
  else await pipeline(input, ex);
  if (problems.length > 0) {
    throw new InputError(`${path.basename(file)} has entries that would land outside the app directory: ${problems.slice(0, 5).join(", ")}`, { hint: "build the tarball from inside the app directory (tar -C dir -czf app.tar.gz .)" });
  }
  const top = await readdir(dest);
  if (top.length === 1 && (await stat(path.join(dest, top[0]!))).isDirectory()) return path.join(dest, top[0]!);
  return dest;
}
