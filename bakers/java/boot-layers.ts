/**
 * A Spring Boot fat jar split the way Spring Boot's layered jars split it: the libraries in
 * BOOT-INF/lib/ become their own cached layer (keyed by their names and bytes), everything else
 * (the launcher, META-INF, BOOT-INF/classes) is the app part, exploded under /app/<jar stem>/.
 * Spring Boot's JarLauncher runs from such an exploded directory, so a one-line change rewrites
 * only the small app part. The jar is hostile input: every entry is checked before anything is
 * written, and nothing in it runs on the build host.
 */
import { chmod, mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { constants, inflateRawSync } from "node:zlib";
import { InputError } from "../../src/errors.js";
import { sha256 } from "../../src/fsutil.js";
import { readZipEntries, type JarInfo, type ZipEntry } from "./jar.js";
import { JVM_OPTIONS } from "./jvm.js";

export const BOOT_LIB = "BOOT-INF/lib/";
/** Bumped when the library layer's layout changes, so old cache entries are not reused. */
const FORMAT = "kiln-boot-lib 1";
/** Bounds for one entry and the whole jar, inflated: far above real apps, far below a zip bomb's aim. */
export const MAX_ENTRY_BYTES = 1024 ** 3;
export const MAX_JAR_BYTES = 4 * 1024 ** 3;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

export interface BootLibrary {
  /** File name in BOOT-INF/lib/. */
  readonly name: string;
  readonly entry: ZipEntry;
  readonly sha256: string;
}

export interface BootSplit {
  readonly app: readonly ZipEntry[];
  readonly libs: readonly BootLibrary[];
  /** The library layer's cache key: format, then each library's name and sha256, sorted. */
  readonly key: string;
}

/** How an exploded Spring Boot jar starts: its manifest's launcher on the exploded directory's class path. */
export function bootLaunch(jarName: string, info: JarInfo): { dir: string; cmd: string[] } | undefined {
  if (info.layout !== "spring-boot" || !info.mainClass || !info.startClass) return undefined;
  const stem = jarName.replace(/\.jar$/i, "");
  // The stem becomes a directory under /app and the dependency layer's mount point: plain names only.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(stem)) return undefined;
  const dir = `/app/${stem}`;
  return { dir, cmd: ["java", ...JVM_OPTIONS, "-cp", dir, info.mainClass] };
}

function refuse(jarName: string, entry: string, problem: string): never {
  throw new InputError(`${jarName}: entry ${JSON.stringify(entry)} ${problem}`, {
    hint: "rebuild the jar with Maven's or Gradle's Spring Boot plugin; or set cmd: [java, -jar, <jar>] in kiln.yml to run it unexploded",
  });
}

/** Checks one entry name: relative, no `.`/`..`/empty segments, no backslashes or control characters. */
function checkName(jarName: string, name: string): void {
  if (name.startsWith("/")) refuse(jarName, name, "is an absolute path");
  if (name.includes("\\")) refuse(jarName, name, "contains a backslash (a Windows path separator)");
  if (/[\u0000-\u001f\u007f]/.test(name)) refuse(jarName, name, "contains a control character");
  const segments = (name.endsWith("/") ? name.slice(0, -1) : name).split("/");
  for (const s of segments) {
    if (s === "") refuse(jarName, name, "has an empty path segment");
    if (s === "." || s === "..") refuse(jarName, name, `has a '${s}' path segment, which would lead out of the extracted jar`);
  }
}

/** Refuses links, devices and encrypted or unknown compression; returns whether it is a directory. */
function checkKind(jarName: string, e: ZipEntry): boolean {
  const unixMode = e.madeBy >> 8 === 3 ? e.externalAttributes >>> 16 : 0;
  const type = unixMode & S_IFMT;
  if (type === S_IFLNK) refuse(jarName, e.name, "is a symlink; kiln extracts regular files and directories only");
  if (type !== 0 && type !== S_IFREG && type !== S_IFDIR) refuse(jarName, e.name, "is not a regular file or directory");
  if (e.flags & 1) refuse(jarName, e.name, "is encrypted");
  if (e.method !== 0 && e.method !== 8) refuse(jarName, e.name, `uses compression method ${e.method}; jars use stored (0) or deflated (8)`);
  if (e.size > MAX_ENTRY_BYTES) refuse(jarName, e.name, `declares ${e.size} bytes, over the ${MAX_ENTRY_BYTES}-byte bound per entry`);
  return e.name.endsWith("/") || type === S_IFDIR;
}

/**
 * Checks every entry (names, kinds, methods, sizes, duplicates, files that would have to be
 * directories) and sorts them into the app part and the libraries, whose bytes it hashes.
 */
export function planBootSplit(jarName: string, zip: Buffer): BootSplit {
  const entries = readZipEntries(zip);
  const files = new Set<string>();
  const dirs = new Set<string>();
  let total = 0;
  for (const e of entries) {
    checkName(jarName, e.name);
    const isDir = checkKind(jarName, e);
    const clean = e.name.replace(/\/$/, "");
    if (files.has(clean) || (isDir && dirs.has(clean))) refuse(jarName, e.name, "is in the jar twice");
    (isDir ? dirs : files).add(clean);
    total += e.size;
    if (total > MAX_JAR_BYTES) refuse(jarName, e.name, `brings the jar over ${MAX_JAR_BYTES} bytes inflated`);
  }
  // A file must not also be a parent of another entry (nor a directory entry of the same name).
  for (const name of [...files, ...dirs]) {
    const parts = name.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      if (files.has(parent)) refuse(jarName, parent, `is a file, but ${JSON.stringify(name)} needs it to be a directory`);
    }
    if (files.has(name) && dirs.has(name)) refuse(jarName, name, "is both a file and a directory");
  }
  const app: ZipEntry[] = [];
  const libs: BootLibrary[] = [];
  for (const e of entries) {
    if (e.name === BOOT_LIB) continue;
    if (!e.name.startsWith(BOOT_LIB)) {
      app.push(e);
      continue;
    }
    const name = e.name.slice(BOOT_LIB.length);
    if (name.includes("/") || !name.toLowerCase().endsWith(".jar"))
      refuse(jarName, e.name, "is not a jar directly in BOOT-INF/lib/, where Spring Boot keeps only library jars");
    libs.push({ name, entry: e, sha256: sha256(inflateEntry(jarName, zip, e)) });
  }
  libs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const key = sha256([FORMAT, ...libs.map((l) => `${l.name} ${l.sha256}`)].join("\n")).slice(0, 32);
  return { app, libs, key };
}

/** One entry's bytes, refused when they do not inflate to exactly the declared size (no zip bombs). */
export function inflateEntry(jarName: string, zip: Buffer, e: ZipEntry): Buffer {
  const at = e.headerOffset;
  if (at + 30 > zip.length || zip.readUInt32LE(at) !== 0x04034b50) refuse(jarName, e.name, "has a corrupt local header");
  const start = at + 30 + zip.readUInt16LE(at + 26) + zip.readUInt16LE(at + 28);
  if (start + e.compressedSize > zip.length) refuse(jarName, e.name, "runs past the end of the jar");
  const raw = zip.subarray(start, start + e.compressedSize);
  let data: Buffer;
  if (e.method === 0) data = raw;
  else {
    try {
      data = inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size + 1), finishFlush: constants.Z_SYNC_FLUSH });
    } catch {
      refuse(jarName, e.name, `does not inflate to its declared size of ${e.size} bytes`);
    }
  }
  if (data.length !== e.size) refuse(jarName, e.name, `holds ${data.length} bytes, not its declared size of ${e.size} bytes`);
  return data;
}

/**
 * Writes checked entries (from planBootSplit) under `dest`, without `strip` at the front of
 * their names: files 0644, directories 0755 (the layers are hashed, so modes must not vary).
 */
export async function writeBootEntries(
  jarName: string,
  zip: Buffer,
  entries: readonly ZipEntry[],
  dest: string,
  strip = "",
): Promise<void> {
  await mkdir(dest, { recursive: true, mode: 0o755 });
  for (const e of entries) {
    const rel = e.name.slice(strip.length).replace(/\/$/, "");
    if (!e.name.startsWith(strip) || rel === "") continue;
    const target = path.join(dest, rel);
    if (!target.startsWith(dest + path.sep)) refuse(jarName, e.name, "leads out of the extracted jar");
    if (e.name.endsWith("/")) {
      await mkdir(target, { recursive: true });
      await chmod(target, 0o755);
      continue;
    }
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, inflateEntry(jarName, zip, e), { mode: 0o644 });
    await chmod(target, 0o644);
  }
  await normaliseDirs(dest);
}

/** mkdir's modes follow the umask; the layer's directories are 0755 whatever it is. */
async function normaliseDirs(root: string): Promise<void> {
  await chmod(root, 0o755);
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (entry.isDirectory()) await normaliseDirs(path.join(root, entry.name));
  }
}
