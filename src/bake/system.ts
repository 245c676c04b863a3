/**
 * System layer: everything in the app's root that is not the app — the runtime, the shared
 * libraries, a few /etc files and the mount points the init fills (app, tmp, run, proc, dev).
 * No shell, no busybox, no package manager. Cached by the identities of its inputs.
 */
import { constants } from "node:fs";
import { chmod, copyFile, mkdir, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { confinedPath, printable, resolveBeneath } from "../confine.js";
import { InputError } from "../errors.js";
import { makeErofs } from "../image/erofs.js";
import {
  copyTreeNormalized,
  exists,
  hashTree,
  listTree,
  makeScratchDir,
  removeDir,
  sha256,
  cachedSha256,
  writeFileAtomic,
} from "../fsutil.js";
import type { Runtime, RuntimeTree } from "./baker.js";
import type { BakeContext } from "./context.js";
import type { LibFile } from "./libs.js";

export const APP_UID = 1000;
export const APP_GID = 1000;

export interface SystemLayer {
  readonly path: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly cached: boolean;
  /** Uncompressed sizes, for `kiln inspect` and the size report. */
  readonly runtimeBytes: number;
  readonly libBytes: number;
  readonly files: readonly { path: string; bytes: number; kind: "runtime" | "lib" | "etc" }[];
}

const ETC_FILES: Record<string, string> = {
  "etc/passwd": `root:x:0:0:root:/nonexistent:/nonexistent\napp:x:${APP_UID}:${APP_GID}:app:/tmp:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n`,
  "etc/group": `root:x:0:\napp:x:${APP_GID}:\nnogroup:x:65534:\n`,
  "etc/hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
  "etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
  "etc/os-release": 'NAME="kiln"\nID=kiln\nPRETTY_NAME="kiln minimal image"\n',
};

export async function buildSystemLayer(runtime: Runtime, libs: readonly LibFile[], ctx: BakeContext): Promise<SystemLayer> {
  const trees = runtime.trees ?? [];
  const treeHashes = await Promise.all(trees.map((t) => treeHash(t, ctx)));
  const inputs = [
    ...runtime.files.map((f) => `${f.dest}\0${runtime.key}\0${f.mode}`),
    ...trees.map((t, i) => `tree\0${t.dest}\0${treeHashes[i]!}`),
    ...libs.map((l) => `${l.dest}\0${l.identity}`),
    ...Object.entries(ETC_FILES).map(([p, c]) => `${p}\0${sha256(c)}`),
  ];
  const key = sha256(inputs.join("\n")).slice(0, 32);
  const out = path.join(ctx.layers, `system-${key}.erofs`);
  const sizes = await Promise.all([
    ...runtime.files.map(async (f) => ({ path: f.dest, bytes: (await stat(f.source)).size, kind: "runtime" as const })),
    // One line per tree: a JRE or a standard library is hundreds of files.
    ...trees.map(async (t) => ({
      path: `${t.dest}/`,
      bytes: (await listTree(t.source)).reduce((a, e) => a + e.size, 0),
      kind: "runtime" as const,
    })),
    ...libs.map(async (l) => ({ path: l.dest, bytes: (await stat(l.source)).size, kind: "lib" as const })),
  ]);
  const files = [...sizes, ...Object.entries(ETC_FILES).map(([p, c]) => ({ path: `/${p}`, bytes: c.length, kind: "etc" as const }))];
  const summary = {
    runtimeBytes: sizes.filter((s) => s.kind === "runtime").reduce((a, s) => a + s.bytes, 0),
    libBytes: sizes.filter((s) => s.kind === "lib").reduce((a, s) => a + s.bytes, 0),
    files,
  };
  if (await exists(out)) return { path: out, sha256: await cachedSha256(out), bytes: (await stat(out)).size, cached: true, ...summary };

  const root = await makeScratchDir(ctx.scratch, "system");
  try {
    for (const dir of ["app", "tmp", "run", "proc", "dev", "etc", "usr/bin", "lib/x86_64-linux-gnu"])
      await mkdir(path.join(root, dir), { recursive: true });
    for (const [rel, content] of Object.entries(ETC_FILES)) await writeFile(path.join(root, rel), content);
    // The init writes DNS servers from DHCP to the writable /run.
    await symlink("/run/resolv.conf", path.join(root, "etc/resolv.conf"));
    for (const t of trees) await copyTreeNormalized(t.source, path.join(root, t.dest));
    for (const f of runtime.files) await placeFile(root, f.dest, f.source, f.mode);
    for (const l of libs) await placeFile(root, l.dest, l.source, 0o755);
    const tmp = path.join(ctx.scratch, `system-${key}.erofs`);
    await makeErofs(root, tmp, key);
    await mkdir(ctx.layers, { recursive: true });
    await rename(tmp, out);
  } finally {
    await removeDir(root);
  }
  return { path: out, sha256: await cachedSha256(out), bytes: (await stat(out)).size, cached: false, ...summary };
}

const treeHashes = new Map<string, Promise<string>>();

/**
 * Content hash of a runtime tree. Trees in kiln's cache are immutable, so their hash is
 * computed once and kept in a sidecar file: warm bakes do not read the tree again. Trees
 * elsewhere (a baker's own directory) are hashed on every bake.
 */
function treeHash(tree: RuntimeTree, ctx: BakeContext): Promise<string> {
  const source = path.resolve(tree.source);
  if (!source.startsWith(path.resolve(ctx.home.cache) + path.sep)) return hashTree(source);
  let known = treeHashes.get(source);
  if (!known) {
    known = (async () => {
      const sidecar = `${source}.tree-sha256`;
      const stored = (await readFile(sidecar, "utf8").catch(() => "")).trim();
      if (/^[0-9a-f]{64}$/.test(stored)) return stored;
      const digest = await hashTree(source);
      await writeFileAtomic(sidecar, `${digest}\n`);
      return digest;
    })();
    treeHashes.set(source, known);
  }
  return known;
}

/**
 * Copies `source` to the image path `dest` under `root`. `dest` can come from a program's
 * headers (its dynamic loader), so it is confined to the root and never written through a link.
 */
export async function placeFile(root: string, dest: string, source: string, mode: number): Promise<void> {
  const target = confinedPath(root, dest, "an image path");
  const parent = path.relative(root, path.dirname(target)).split(path.sep).join("/");
  await mkdir(path.dirname(target), { recursive: true });
  const resolved = await resolveBeneath(root, parent);
  if (!("rel" in resolved) || resolved.rel !== parent) {
    throw new InputError(`the image path ${printable(dest)} lies under a symlink`, {
      hint: "a runtime tree and a library claim the same directory; report this to kiln's maintainers",
    });
  }
  await rm(target, { force: true });
  await copyFile(source, target, constants.COPYFILE_EXCL);
  await chmod(target, mode);
}
