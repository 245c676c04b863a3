/**
 * The minimal kernel (`kernel: minimal`): compiled from Debian's kernel source package, so
 * Debian's security fixes reach it through the same pinning, `kiln outdated` and `kiln rebake`
 * as every other base package. Built once per (source package, configuration, compiler) and
 * kept in KILN_HOME/cache/kernels/<key>/; every image that asks for it reuses that build.
 */
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { InputError, KilnError } from "../errors.js";
import { run } from "../exec.js";
import { exists, makeScratchDir, publishDir, removeDir, sha256, sha256File, writeFileAtomic } from "../fsutil.js";
import { packageIdentity, type AptSource, type DebianPackage } from "../packages/apt.js";
import { acquireLockFile } from "../providers/local/lock-file.js";
import { parseConfigFragment, renderFragment, unmetLines, type FragmentLine } from "./fragment.js";

/** Debian's source package of the kernel series kiln builds (bookworm: 6.1 LTS). */
export const KERNEL_SOURCE_PACKAGE = "linux-source-6.1";

/** Bumped when the way kiln builds changes (not the inputs): the key then names a new build. */
const RECIPE = "kiln-minimal-kernel/1";

export interface KernelArch {
  /** The kernel's ARCH= and fragment suffix. */
  readonly kernelArch: "x86_64";
  /** Where `make` leaves the bootable image, relative to the source tree. */
  readonly imagePath: string;
  readonly makeTarget: string;
}

export const X86_64: KernelArch = { kernelArch: "x86_64", imagePath: "arch/x86/boot/bzImage", makeTarget: "bzImage" };

/** What kiln.lock and `kiln kernel show` record of a built kernel. */
export interface KernelBuildRecord {
  readonly key: string;
  readonly arch: string;
  readonly source: { readonly name: string; readonly version: string; readonly sha256: string };
  /** `uname -r`. */
  readonly release: string;
  readonly configSha256: string;
  readonly compiler: string;
  readonly imageSha256: string;
  readonly imageBytes: number;
  readonly buildSeconds: number;
}

export interface BuiltKernel {
  readonly record: KernelBuildRecord;
  readonly image: string;
  readonly config: string;
  readonly cached: boolean;
}

export interface KernelInputs {
  readonly source: DebianPackage;
  readonly fragments: readonly FragmentLine[];
  readonly compiler: string;
  readonly arch: KernelArch;
}

export interface KernelBuildOptions {
  readonly apt: AptSource;
  /** KILN_HOME/cache. */
  readonly cache: string;
  /** Called every few seconds with what the compile has done. */
  readonly onProgress?: (line: string) => void;
  readonly signal?: AbortSignal;
}

/** The fragment files for an architecture, in the order they apply (common first). */
export async function readKernelFragments(configDir: string, arch: KernelArch): Promise<FragmentLine[]> {
  const lines: FragmentLine[] = [];
  for (const name of ["minimal.config", `minimal-${arch.kernelArch}.config`]) {
    lines.push(...parseConfigFragment(await readFile(path.join(configDir, name), "utf8"), name));
  }
  return lines;
}

/** The host compiler's identity: part of the key, since another gcc makes another kernel. */
export async function compilerIdentity(): Promise<string> {
  const { stdout } = await run(["gcc", "--version"], { hint: "the minimal kernel is compiled with gcc: apt-get install gcc" });
  return stdout.split("\n")[0]!.trim();
}

/** Everything the minimal kernel is built from: the source package (pinned), kiln's fragments, the compiler. */
export async function minimalKernelInputs(source: DebianPackage, configDir: string, arch: KernelArch = X86_64): Promise<KernelInputs> {
  const [fragments, compiler] = await Promise.all([readKernelFragments(configDir, arch), compilerIdentity()]);
  return { source, fragments, compiler, arch };
}

export function kernelBuildKey(inputs: KernelInputs): string {
  return sha256(
    [RECIPE, inputs.arch.kernelArch, packageIdentity(inputs.source), inputs.compiler, renderFragment(inputs.fragments)].join("\0"),
  ).slice(0, 32);
}

export function kernelsDir(cache: string): string {
  return path.join(cache, "kernels");
}

/** A finished build of these inputs, if one is kept. */
export async function findBuiltKernel(cache: string, key: string): Promise<BuiltKernel | undefined> {
  const dir = path.join(kernelsDir(cache), key);
  const text = await readFile(path.join(dir, "kernel.json"), "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  return {
    record: JSON.parse(text) as KernelBuildRecord,
    image: path.join(dir, "vmlinuz"),
    config: path.join(dir, "config"),
    cached: true,
  };
}

/** The kernel for these inputs: the kept build, or a new one (one process builds, others wait). */
export async function buildMinimalKernel(inputs: KernelInputs, options: KernelBuildOptions): Promise<BuiltKernel> {
  const key = kernelBuildKey(inputs);
  const found = await findBuiltKernel(options.cache, key);
  if (found) return found;
  const dir = kernelsDir(options.cache);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const release = await waitForLock(path.join(dir, `${key}.lock`), options.signal);
  try {
    return (await findBuiltKernel(options.cache, key)) ?? (await compileKernel(key, inputs, options));
  } finally {
    await release();
  }
}

class KernelBuildBusy extends KilnError {}

async function waitForLock(file: string, signal: AbortSignal | undefined): Promise<() => Promise<void>> {
  for (;;) {
    try {
      return await acquireLockFile(file, "kiln kernel build", (h) => new KernelBuildBusy(h ? `pid ${h.pid}` : "another kiln"));
    } catch (error) {
      if (!(error instanceof KernelBuildBusy)) throw error;
      if (signal?.aborted) throw new KilnError("kernel build cancelled");
      // Another kiln is compiling this very kernel: wait for it rather than compile it twice.
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** KBUILD_* fixed so two builds of the same inputs give the same bytes (no date, user or host inside). */
const REPRODUCIBLE_ENV = {
  KBUILD_BUILD_TIMESTAMP: "1970-01-01 00:00:00 UTC",
  KBUILD_BUILD_USER: "kiln",
  KBUILD_BUILD_HOST: "kiln",
  KBUILD_BUILD_VERSION: "1",
};

async function compileKernel(key: string, inputs: KernelInputs, options: KernelBuildOptions): Promise<BuiltKernel> {
  const started = performance.now();
  const { arch } = inputs;
  const dir = kernelsDir(options.cache);
  await removeStaleTrees(dir, key, inputs.source);
  const tree = await extractSource(inputs.source, dir, options);
  // Out of tree (make O=): the source stays pristine for the next configuration, and an
  // interrupted build keeps its objects, so make picks up where it stopped.
  const buildDir = path.join(dir, `build-${key}`);
  await mkdir(buildDir, { recursive: true, mode: 0o700 });
  const make = (args: string[], onLine?: (line: string) => void) =>
    run(["make", "-C", tree, `O=${buildDir}`, `ARCH=${arch.kernelArch}`, ...args], {
      env: REPRODUCIBLE_ENV,
      hint: "the kernel build needs make, gcc, flex, bison, bc and libelf-dev (scripts/install-deps.sh installs them)",
      ...(options.signal ? { signal: options.signal } : {}),
      ...(onLine ? { onStdoutLine: onLine } : {}),
    });

  await make(["tinyconfig"]);
  const configFile = path.join(buildDir, ".config");
  await writeFile(configFile, `${await readFile(configFile, "utf8")}\n${renderFragment(inputs.fragments)}`);
  await make(["olddefconfig"]);
  const finalConfig = await readFile(configFile, "utf8");
  const unmet = unmetLines(inputs.fragments, finalConfig);
  if (unmet.length > 0) {
    throw new InputError(
      `the minimal kernel's configuration does not hold after make olddefconfig:\n${unmet.map((u) => `  - ${u}`).join("\n")}`,
      { hint: "add the options these depend on to kernel-configs/minimal*.config (make menuconfig shows a symbol's dependencies)" },
    );
  }

  let compiled = 0;
  const ticker = setInterval(() => options.onProgress?.(`${compiled} files compiled`), 10_000);
  try {
    await make([`-j${os.availableParallelism()}`, arch.makeTarget], (line) => {
      if (/^\s+(CC|AS|LD)\s/.test(line)) compiled++;
    });
  } finally {
    clearInterval(ticker);
  }
  const release = (await readFile(path.join(buildDir, "include", "config", "kernel.release"), "utf8")).trim();

  const scratch = await makeScratchDir(dir, "kernel");
  const image = path.join(scratch, "vmlinuz");
  await copyFile(path.join(buildDir, arch.imagePath), image);
  await writeFile(path.join(scratch, "config"), finalConfig);
  const record: KernelBuildRecord = {
    key,
    arch: arch.kernelArch,
    source: { name: inputs.source.name, version: inputs.source.version, sha256: inputs.source.sha256 },
    release,
    configSha256: sha256(finalConfig),
    compiler: inputs.compiler,
    imageSha256: await sha256File(image),
    imageBytes: (await stat(image)).size,
    buildSeconds: Math.round((performance.now() - started) / 100) / 10,
  };
  await writeFileAtomic(path.join(scratch, "kernel.json"), `${JSON.stringify(record, null, 2)}\n`);
  await publishDir(scratch, path.join(dir, key));
  await removeDir(buildDir);
  const built = await findBuiltKernel(options.cache, key);
  if (!built) throw new KilnError(`kernel build ${key} finished but its files are not in ${dir}`);
  return { ...built, cached: false };
}

function sourceTreeName(source: DebianPackage): string {
  return `source-${source.sha256.slice(0, 16)}`;
}

/**
 * An unpacked source is about 1.5 GB and a build tree more: keep only this source and this
 * build. Builds of other keys are dropped unless another kiln holds their lock.
 */
async function removeStaleTrees(dir: string, key: string, source: DebianPackage): Promise<void> {
  const names = await readdir(dir);
  // Another kiln compiling (a lock other than ours) may be reading any source tree: keep them all then.
  const othersBuilding = names.some((n) => n.endsWith(".lock") && n !== `${key}.lock`);
  for (const name of names) {
    const other = /^build-([0-9a-f]{32})$/.exec(name)?.[1];
    const staleBuild = other !== undefined && other !== key && !names.includes(`${other}.lock`);
    const staleSource = name.startsWith("source-") && name !== sourceTreeName(source) && !othersBuilding;
    if (staleBuild || staleSource) await removeDir(path.join(dir, name));
  }
}

/** Debian's package carries the source as one tar.xz; unpacked once per source version. */
async function extractSource(source: DebianPackage, dir: string, options: KernelBuildOptions): Promise<string> {
  const unpacked = path.join(dir, sourceTreeName(source));
  const tree = path.join(unpacked, source.name);
  if (await exists(path.join(tree, "Makefile"))) return tree;
  const deb = await options.apt.verify(source);
  const scratch = await makeScratchDir(dir, "source");
  try {
    await run(["dpkg-deb", "-x", deb, path.join(scratch, "deb")]);
    const srcDir = path.join(scratch, "deb", "usr", "src");
    const tarballs = (await readdir(srcDir)).filter((f) => f.endsWith(".tar.xz"));
    if (tarballs.length !== 1) throw new KilnError(`${source.name} ${source.version} does not hold one usr/src/*.tar.xz`);
    // The package was verified against the archive index like every base package; GNU tar still
    // refuses members that climb out of the directory with ..
    await run(["tar", "-xJf", path.join(srcDir, tarballs[0]!), "-C", scratch, "--no-same-owner"]);
    await removeDir(path.join(scratch, "deb"));
    if (!(await exists(path.join(scratch, source.name, "Makefile"))))
      throw new KilnError(`${source.name}'s tarball has no ${source.name}/Makefile`);
    await publishDir(scratch, unpacked);
  } catch (error) {
    await removeDir(scratch);
    throw error;
  }
  return tree;
}
