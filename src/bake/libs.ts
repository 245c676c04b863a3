/**
 * Shared libraries for the image: the ELF closure of the runtime and of every ELF file in the
 * app, each library taken from its pinned Debian package (never from the build host's disk),
 * plus the dynamic loader. Libraries the app ships itself (RUNPATH $ORIGIN) stay in the app.
 */
import { lstat, readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { InputError } from "../errors.js";
import { computeLibClosure, type LibRequest, type ResolvedLib } from "../elf/closure.js";
import { parseElf, type ElfInfo } from "../elf/elf.js";
import { ElfScanCache } from "../elf/scan-cache.js";
import type { KeyedResults } from "./keyed-results.js";
import { confinedPath, hostPathBeneath, printable } from "../confine.js";
import { lockEntryOf, type DebianPackage } from "../packages/apt.js";
import type { Spec } from "../config/types.js";
import { resolveDebian, type BakeContext } from "./context.js";

export const LIB_DIR = "/lib/x86_64-linux-gnu";
const TREE_LIB_DIRS = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64", "lib", "usr/lib"];
const HOST_LIB_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"];

export interface ElfRoot {
  /** Path inside the image, e.g. /usr/bin/node or /app/server. */
  readonly imagePath: string;
  /** Where the file is on the build host right now. */
  readonly hostPath: string;
  readonly info: ElfInfo;
}

export interface LibFile {
  readonly dest: string;
  readonly source: string;
  /** package sha256 + path in the package: identity without hashing the bytes again. */
  readonly identity: string;
}

/**
 * Follows symlinks inside an unpacked package tree the way they resolve in the image: absolute
 * links restart at the tree's root and ".." stops there, so nothing outside the tree is reached.
 */
async function realPathInTree(tree: string, rel: string): Promise<string | undefined> {
  const host = await hostPathBeneath(tree, rel, { inRoot: true });
  if (host === undefined) return undefined;
  const info = await lstat(host).catch(() => undefined);
  return info?.isFile() ? host : undefined;
}

/**
 * DT_NEEDED names are looked up by name in library directories; a name with a slash would be
 * a path (ld.so opens it relative to the working directory), and "../" in it climbs out of
 * whatever tree kiln joins it to, so only plain file names are accepted.
 */
function checkLibraryName(soname: string, neededBy: string): void {
  if (soname !== "" && soname !== "." && soname !== ".." && !/[/\0]/.test(soname)) return;
  throw new InputError(`${neededBy} needs the library '${printable(soname)}', which is not a plain file name`, {
    hint: "kiln resolves shared libraries by name (DT_NEEDED like libfoo.so.1); relink the program with -lfoo instead of a path",
  });
}

/** PT_INTERP must be a plain absolute path: it becomes a file in the image and is looked up in libc6. */
function checkInterpreter(interpreter: string, program: string): void {
  const plain = interpreter.startsWith("/") && !interpreter.endsWith("/") && !interpreter.includes("\0");
  if (plain && path.posix.normalize(interpreter) === interpreter) return;
  throw new InputError(`${program} names the dynamic loader '${printable(interpreter)}', which is not a plain absolute path`, {
    hint: "the interpreter (PT_INTERP) of an x86-64 glibc program is /lib64/ld-linux-x86-64.so.2; rebuild or patchelf --set-interpreter it",
  });
}

export interface ElfScanOptions {
  /** Remembers results across bakes (KILN_HOME/cache/elf-scan); without it every file is read. */
  readonly cache?: ElfScanCache;
  /** Called after each file, for progress on trees of many thousand files. */
  readonly onFile?: () => void;
  /**
   * For a directory that never changes once made (a cached dependency layer): the list of its
   * ELF files is remembered by the directory's key, so a rebake does not even list the tree.
   */
  readonly immutable?: { readonly key: string; readonly results: KeyedResults };
}

const SCAN_BATCH = 32;

/** An ELF file found in a tree, by its path relative to the tree and the sha256 its scan is filed under. */
interface TreeElf {
  readonly rel: string;
  readonly sha256: string;
}

/** A remembered list is used only when every path stays inside the tree it is joined to. */
function validTreeElves(value: unknown): TreeElf[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const out: TreeElf[] = [];
  for (const v of value as unknown[]) {
    const { rel, sha256 } = (v ?? {}) as { rel?: unknown; sha256?: unknown };
    if (typeof rel !== "string" || typeof sha256 !== "string") return undefined;
    const parts = rel.split("/");
    if (rel.includes("\0") || parts.some((p) => p === "" || p === "." || p === "..")) return undefined;
    out.push({ rel, sha256 });
  }
  return out;
}

/** Finds every ELF file under a staged directory (app files, node_modules addons). */
export async function findElfFiles(stagedDir: string, imageDir: string, options: ElfScanOptions = {}): Promise<ElfRoot[]> {
  const cache = options.cache ?? (await ElfScanCache.open(undefined));
  const toRoot = (rel: string, info: ElfInfo): ElfRoot[] =>
    // Prebuilt binaries for other platforms (common in node_modules) are never loaded here.
    info.machineName === "x86-64" && info.bits === 64 && (info.type === "exec" || info.type === "dyn")
      ? [{ imagePath: `${imageDir}/${rel}`, hostPath: path.join(stagedDir, rel), info }]
      : [];
  const immutable = options.cache ? options.immutable : undefined;
  const known = immutable ? await immutable.results.get("elf-tree", immutable.key, validTreeElves) : undefined;
  if (known) {
    const infos = await Promise.all(known.map((e) => cache.infoOf(e.sha256)));
    // Every entry's scan must still be in the content store; else the tree is walked as if new.
    if (infos.every((i) => i !== undefined)) return known.flatMap((e, n) => toRoot(e.rel, infos[n]!));
  }
  const out: ElfRoot[] = [];
  const elves: TreeElf[] = [];
  async function scanBatch(batch: readonly string[]): Promise<void> {
    const found = await Promise.all(batch.map((childRel) => cache.scanFile(path.join(stagedDir, childRel), `${imageDir}/${childRel}`)));
    batch.forEach((childRel, n) => {
      const elf = found[n];
      options.onFile?.();
      if (!elf) return;
      elves.push({ rel: childRel, sha256: elf.sha256 });
      out.push(...toRoot(childRel, elf.info));
    });
  }
  // Files are scanned a batch at a time (on a warm cache most are one stat), in sorted order.
  async function walk(rel: string): Promise<void> {
    let batch: string[] = [];
    for (const entry of (await readdir(path.join(stagedDir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const childRel = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isFile()) batch.push(childRel);
      if (batch.length === SCAN_BATCH || (entry.isDirectory() && batch.length > 0)) {
        await scanBatch(batch);
        batch = [];
      }
      if (entry.isDirectory()) await walk(childRel);
    }
    if (batch.length > 0) await scanBatch(batch);
  }
  await walk("");
  if (immutable) await immutable.results.put("elf-tree", immutable.key, elves);
  return out;
}

interface PackageTree {
  readonly pkg: DebianPackage;
  readonly tree: string;
}

class LibraryResolver {
  private readonly trees: PackageTree[] = [];
  constructor(
    private readonly ctx: BakeContext,
    private readonly stagedRoots: ReadonlyMap<string, string>,
  ) {}

  async addPackage(name: string): Promise<PackageTree> {
    const existing = this.trees.find((t) => t.pkg.name === name);
    if (existing) return existing;
    const pkg = await resolveDebian(this.ctx, name);
    const entry = { pkg, tree: await this.ctx.apt.unpack(pkg) };
    this.trees.push(entry);
    return entry;
  }

  get packages(): readonly DebianPackage[] {
    return this.trees.map((t) => t.pkg);
  }

  /**
   * Maps an image path to the staged host path, for libraries the app ships itself; links are
   * followed only inside the staged directory they belong to.
   */
  private readonly stagedPaths = new Map<string, Promise<string | undefined>>();

  /** staged(), asked once per image path: every program of a tree looks for libc in its $ORIGIN. */
  private stagedOnce(imagePath: string): Promise<string | undefined> {
    let host = this.stagedPaths.get(imagePath);
    if (!host) {
      host = this.staged(imagePath);
      this.stagedPaths.set(imagePath, host);
    }
    return host;
  }

  private async staged(imagePath: string): Promise<string | undefined> {
    for (const [prefix, dir] of this.stagedRoots) {
      if (imagePath !== prefix && !imagePath.startsWith(`${prefix}/`)) continue;
      const host = await hostPathBeneath(dir, imagePath.slice(prefix.length));
      return host !== undefined && (await lstat(host).catch(() => undefined))?.isFile() ? host : undefined;
    }
    return undefined;
  }

  /** Staged libraries parsed once per bake: a JRE's 29 programs each need its 20 MB libjvm.so. */
  private readonly parsed = new Map<string, Promise<ElfInfo>>();

  private parsedOnce(host: string): Promise<ElfInfo> {
    let info = this.parsed.get(host);
    if (!info) {
      info = readFile(host).then((bytes) => parseElf(bytes, host));
      this.parsed.set(host, info);
    }
    return info;
  }

  async resolve(req: LibRequest): Promise<(ResolvedLib & { identity: string; fromApp: boolean }) | undefined> {
    checkLibraryName(req.soname, req.neededBy);
    for (const dir of [...req.rpath, ...req.runpath]) {
      const imageDir = dir.replaceAll("$ORIGIN", req.origin).replaceAll("${ORIGIN}", req.origin);
      const host = await this.stagedOnce(path.posix.join(imageDir, req.soname));
      if (host) return { soname: req.soname, path: host, info: await this.parsedOnce(host), identity: `app:${host}`, fromApp: true };
    }
    const inTree = await this.findInTrees(req.soname);
    if (inTree) return inTree;
    const owner = await this.hostOwner(req.soname);
    if (!owner) return undefined;
    await this.addPackage(owner);
    return this.findInTrees(req.soname);
  }

  /**
   * Libraries found in the package trees, by soname: every root (a JRE has dozens) needs libc and
   * friends again, and each lookup walks the trees and reads and parses the library. A miss is
   * not kept: a package added later (the owner of another library) may ship it.
   */
  private readonly foundInTrees = new Map<string, Promise<(ResolvedLib & { identity: string; fromApp: boolean }) | undefined>>();

  private async findInTrees(soname: string): Promise<(ResolvedLib & { identity: string; fromApp: boolean }) | undefined> {
    // The lookups of one closure level run concurrently: the pending search is shared.
    let search = this.foundInTrees.get(soname);
    if (!search) {
      search = this.searchTrees(soname);
      this.foundInTrees.set(soname, search);
    }
    const found = await search;
    if (!found && this.foundInTrees.get(soname) === search) this.foundInTrees.delete(soname);
    return found;
  }

  /**
   * The names in each package tree's library directories, listed once: most trees lack most
   * sonames, and ruling a name out by listing is one readdir, not a confined walk per lookup.
   * A library directory that is a link (usr-merged trees) is not listed, so never ruled out.
   */
  private readonly listings = new Map<string, Promise<Map<string, ReadonlySet<string> | "unlisted">>>();

  private listing(tree: string): Promise<Map<string, ReadonlySet<string> | "unlisted">> {
    let known = this.listings.get(tree);
    if (!known) {
      known = (async () => {
        const out = new Map<string, ReadonlySet<string> | "unlisted">();
        for (const dir of TREE_LIB_DIRS) {
          const info = await lstat(path.join(tree, dir)).catch(() => undefined);
          if (info?.isDirectory()) out.set(dir, new Set(await readdir(path.join(tree, dir))));
          else if (info?.isSymbolicLink()) out.set(dir, "unlisted");
        }
        return out;
      })();
      this.listings.set(tree, known);
    }
    return known;
  }

  private async searchTrees(soname: string): Promise<(ResolvedLib & { identity: string; fromApp: boolean }) | undefined> {
    for (const { pkg, tree } of this.trees) {
      const listing = await this.listing(tree);
      for (const dir of TREE_LIB_DIRS) {
        const names = listing.get(dir);
        if (names === undefined || (names !== "unlisted" && !names.has(soname))) continue;
        const real = await realPathInTree(tree, `${dir}/${soname}`);
        if (real)
          return {
            soname,
            path: real,
            info: parseElf(await readFile(real), `${pkg.name}:${soname}`),
            identity: `${pkg.sha256}:${path.relative(tree, real)}`,
            fromApp: false,
          };
      }
    }
    return undefined;
  }

  /** Which Debian package ships this library on the build host; that package is then fetched. */
  private async hostOwner(soname: string): Promise<string | undefined> {
    for (const dir of HOST_LIB_DIRS) {
      const candidate = confinedPath(dir, soname, "a library name");
      if (
        await lstat(candidate).then(
          () => true,
          () => false,
        )
      ) {
        const owner = await this.ctx.apt.ownerOf(candidate);
        if (owner) return owner.replace(/:amd64$/, "");
      }
    }
    return undefined;
  }
}

/**
 * Computes the libraries the image needs. `stagedRoots` maps image directories (/app) to
 * where their files are staged, so app-shipped libraries resolve inside the app.
 */
export async function collectLibraries(
  spec: Spec,
  roots: readonly ElfRoot[],
  stagedRoots: ReadonlyMap<string, string>,
  ctx: BakeContext,
): Promise<LibFile[]> {
  const dynamic = roots.filter((r) => !r.info.isStatic);
  if (dynamic.length === 0) return [];
  const resolver = new LibraryResolver(ctx, stagedRoots);
  const libc = await resolver.addPackage("libc6");
  for (const extra of spec.packages) await resolver.addPackage(extra);

  const files = new Map<string, LibFile>();
  const missing: string[] = [];
  for (const root of dynamic) {
    const identities = new Map<string, string>();
    const closure = await computeLibClosure({ path: root.imagePath, info: root.info }, async (req) => {
      const found = await resolver.resolve(req);
      if (found) identities.set(found.soname, found.fromApp ? "" : found.identity);
      return found;
    });
    for (const m of closure.missing) missing.push(`${m.soname} (needed by ${m.neededBy})`);
    for (const lib of closure.libs) {
      const identity = identities.get(lib.soname);
      if (identity) files.set(`${LIB_DIR}/${lib.soname}`, { dest: `${LIB_DIR}/${lib.soname}`, source: lib.path, identity });
    }
    if (closure.interpreter) checkInterpreter(closure.interpreter, root.imagePath);
    if (closure.interpreter && !files.has(closure.interpreter)) {
      const real = await realPathInTree(libc.tree, closure.interpreter.slice(1));
      if (!real) missing.push(`${closure.interpreter} (the dynamic loader of ${root.imagePath}, not in libc6)`);
      else
        files.set(closure.interpreter, { dest: closure.interpreter, source: real, identity: `${libc.pkg.sha256}:${closure.interpreter}` });
    }
  }
  if (missing.length > 0) {
    const unique = [...new Set(missing)].sort();
    throw new InputError(`shared libraries not found:\n${unique.map((m) => `  - ${m}`).join("\n")}`, {
      hint: "add the Debian packages that ship them to packages: in kiln.yml (apt-file search <lib> names them), or ship the library in the app directory with RUNPATH $ORIGIN",
    });
  }
  for (const pkg of resolver.packages) ctx.used.push(lockEntryOf(pkg, "lib"));
  return [...files.values()].sort((a, b) => (a.dest < b.dest ? -1 : 1));
}
