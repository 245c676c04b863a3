/**
 * Debian's Python (python3.11-minimal, libpython3.11-minimal, libpython3.11-stdlib, pinned in
 * kiln.lock) as an image runtime: the interpreter plus the standard library without its tests,
 * IDLE, tkinter and terminal modules, precompiled to bytecode once (unchecked-hash .pyc, fixed
 * hash seed, image paths in the code objects) so the bytes are the same on every bake and the
 * app does not recompile the stdlib on each boot of a read-only root.
 */
import { chmod, copyFile, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { resolveDebian, type BakeContext } from "../../src/bake/context.js";
import { copyTreeNormalized, exists, makeScratchDir, publishDir, removeDir, sha256 } from "../../src/fsutil.js";
import type { DebianPackage } from "../../src/packages/apt.js";
import type { Sandbox } from "../../src/sandbox.js";
import { keepStdlibPath } from "./requirements.js";

export const PYTHON_VERSION = "3.11";
export const PYTHON_PACKAGES = [
  `python${PYTHON_VERSION}-minimal`,
  `libpython${PYTHON_VERSION}-minimal`,
  `libpython${PYTHON_VERSION}-stdlib`,
] as const;
export const STDLIB_DEST = `/usr/lib/python${PYTHON_VERSION}`;
/** Where the app's requirements are installed; a .pth file in the stdlib puts it on sys.path. */
export const SITE_PACKAGES = "/app/.kiln/site-packages";
/** Changes whenever the way the runtime tree is made changes, so old caches are not reused. */
const RECIPE = "python-runtime-2";

export interface PythonRuntime {
  readonly key: string;
  readonly packages: readonly DebianPackage[];
  /** Host paths inside the prepared tree. */
  readonly python: string;
  readonly stdlib: string;
}

export async function preparePython(ctx: BakeContext): Promise<PythonRuntime> {
  const packages: DebianPackage[] = [];
  for (const name of PYTHON_PACKAGES) packages.push(await resolveDebian(ctx, name));
  const key = sha256([RECIPE, ...packages.map((p) => p.sha256)].join("\n")).slice(0, 16);
  const dir = path.join(ctx.home.cache, "python", `runtime-${key}`);
  const result = { key, packages, python: path.join(dir, `usr/bin/python${PYTHON_VERSION}`), stdlib: path.join(dir, STDLIB_DEST.slice(1)) };
  if (await exists(dir)) return result;
  const trees: string[] = [];
  for (const pkg of packages) trees.push(await ctx.apt.unpack(pkg));
  await mkdir(path.dirname(dir), { recursive: true });
  const scratch = await makeScratchDir(path.dirname(dir), "python");
  try {
    const python = path.join(scratch, `usr/bin/python${PYTHON_VERSION}`);
    await mkdir(path.dirname(python), { recursive: true });
    await copyFile(path.join(trees[0]!, `usr/bin/python${PYTHON_VERSION}`), python);
    await chmod(python, 0o755);
    const stdlib = path.join(scratch, STDLIB_DEST.slice(1));
    for (const tree of trees.slice(1))
      await copyTreeNormalized(path.join(tree, STDLIB_DEST.slice(1)), stdlib, (rel) => !keepStdlibPath(rel));
    // Debian's site.py adds /usr/lib/python3.X/dist-packages; this line there adds the app's packages.
    await mkdir(path.join(stdlib, "dist-packages"), { recursive: true });
    await writeFile(path.join(stdlib, "dist-packages", "kiln-app.pth"), `${SITE_PACKAGES}\n`);
    await compilePython(ctx.sandbox, python, stdlib, STDLIB_DEST);
    await publishDir(scratch, dir);
  } catch (error) {
    await removeDir(scratch);
    throw error;
  }
  return result;
}

const COMPILE = [
  "import compileall, py_compile, re, sys",
  "rx = re.compile(sys.argv[3]) if len(sys.argv) > 3 else None",
  // Files that do not compile (Python 2 leftovers in some packages) are skipped, as pip does.
  "compileall.compile_dir(sys.argv[1], ddir=sys.argv[2], rx=rx, force=True, quiet=2, workers=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)",
].join("\n");

/**
 * Byte-compiles a tree with the image's own interpreter (run on the build host, in the bake's
 * sandbox: the interpreter read-only, the tree writable): unchecked-hash .pyc files carry no
 * source timestamps (and are never rechecked against them), and `imageDir` is the path the code
 * objects (tracebacks) name, so the output is the same bytes wherever the tree sits on the host.
 * Paths matching the `exclude` regex are left alone.
 *
 * The tree is untrusted (the app's files): -I (isolated: no script or working directory on
 * sys.path, no user site, no PYTHON* variables) and a working directory the app does not control
 * keep an app's re.py or compileall.py from being imported here. -I also ignores PYTHONHASHSEED;
 * CPython 3.11's marshal writes sets in a fixed order, so the .pyc bytes do not depend on it.
 */
export async function compilePython(sandbox: Sandbox, python: string, dir: string, imageDir: string, exclude?: string): Promise<void> {
  // -B: the interpreter compiling the stdlib imports some of it; it must not leave timestamped
  // .pyc files of its own there (force=True replaces any that exist).
  const runtimeRoot = path.resolve(path.dirname(python), "../..");
  const argv = [python, "-I", "-B", "-c", COMPILE, dir, imageDir, ...(exclude ? [exclude] : [])];
  await sandbox.run(argv, { readOnly: [runtimeRoot], writable: [dir], cwd: "/" }, { timeoutMs: 600_000 });
}
