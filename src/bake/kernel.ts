/**
 * Kernel layer. `kernel: debian` (the default): the Debian kernel package (pinned), checked
 * against kernel-configs/kiln.config, and the modules the initramfs needs with their load order
 * and device aliases. `kernel: minimal`: the kernel kiln compiles from Debian's kernel source
 * (src/kernel/build.ts), everything built in, no modules.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { InputError, KilnError } from "../errors.js";
import { parseModinfo, type ModuleInfo } from "../kmod/modinfo.js";
import { checkKernelConfig, parseFragment, parseKernelConfig } from "../kmod/kconfig.js";
import { planModuleLoad } from "../kmod/module-set.js";
import { lockEntryOf, packageIdentity, type DebianPackage } from "../packages/apt.js";
import type { Spec } from "../config/types.js";
import type { BakeContext } from "./context.js";
import { sha256, writeFileAtomic } from "../fsutil.js";
import { parseKernelConfig as readConfigValues } from "../kmod/kconfig.js";
import {
  buildMinimalKernel,
  KERNEL_SOURCE_PACKAGE,
  minimalKernelInputs,
  type BuiltKernel,
  type KernelBuildRecord,
} from "../kernel/build.js";
import { resolveDebian } from "./context.js";

export interface KernelLayer {
  readonly kind: "debian" | "minimal";
  /** The kernel image package, or for a minimal kernel the source package it was built from. */
  readonly package: DebianPackage;
  /** What the layers built on this kernel are keyed by: the package, or the minimal kernel's build key. */
  readonly identity: string;
  /** The minimal kernel's build (source, configuration, compiler). */
  readonly build?: KernelBuildRecord;
  /** The minimal kernel was compiled by this bake (not found in the cache). */
  readonly compiled?: boolean;
  /** Drivers that matter to push (ixgbevf: SR-IOV), built into the kernel rather than modules. */
  readonly builtIn: readonly string[];
  /** `uname -r` of the kernel, e.g. 6.1.0-56-cloud-amd64. */
  readonly release: string;
  readonly vmlinuz: string;
  readonly modules: ReadonlyMap<string, { path: string; info: ModuleInfo }>;
  /** Modules in load order (dependencies first). */
  readonly loadOrder: readonly string[];
  /** Filesystem and input modules loaded unconditionally; device drivers are loaded by alias. */
  readonly alwaysLoad: readonly string[];
}

const ALWAYS_LOAD = ["erofs", "vfat", "nls_cp437", "nls_ascii", "evdev", "button"];

/** A metapackage (linux-image-cloud-amd64) depends on exactly one versioned image package. */
async function resolveKernelPackage(name: string, ctx: BakeContext): Promise<DebianPackage> {
  const lockedImage = ctx.previousLock?.packages.find((p) => p.role === "kernel");
  if (lockedImage)
    return { name: lockedImage.name, version: lockedImage.version, sha256: lockedImage.sha256, source: lockedImage.source, depends: "" };
  const meta = await ctx.apt.resolve(name);
  if (/^linux-image-\d/.test(meta.name)) return meta;
  const target = /(linux-image-\d[^\s,(|]*)/.exec(meta.depends)?.[1];
  if (!target)
    throw new InputError(`kernel.package ${name} is not a Linux kernel image package (it depends on: ${meta.depends || "nothing"})`, {
      hint: "use linux-image-cloud-amd64 or a versioned linux-image-* package",
    });
  const version = /\(=\s*([^)\s]+)\)/.exec(meta.depends)?.[1];
  return ctx.apt.resolve(target, version);
}

interface KernelIndex {
  readonly release: string;
  readonly vmlinuz: string;
  readonly modules: [string, { path: string; info: ModuleInfo }][];
  readonly loadOrder: string[];
  readonly alwaysLoad: string[];
}

/** The checked kernel and its module tables, cached per (package, fragment): warm bakes skip the scan. */
export async function prepareKernel(spec: Spec, ctx: BakeContext, minimal?: Promise<MinimalKernel>): Promise<KernelLayer> {
  if (spec.kernel.kind === "minimal") return minimalKernelLayer(ctx, await (minimal ?? startMinimalKernel(ctx)));
  const pkg = await resolveKernelPackage(spec.kernel.package, ctx);
  const tree = await ctx.apt.unpack(pkg);
  ctx.used.push(lockEntryOf(pkg, "kernel"));
  const fragmentText = await readFile(path.join(ctx.kernelConfigs, "kiln.config"), "utf8");
  const indexFile = path.join(ctx.layers, `kernel-${sha256(`${packageIdentity(pkg)}\0${fragmentText}`).slice(0, 32)}.json`);
  const known = await readFile(indexFile, "utf8").then(
    (t) => JSON.parse(t) as KernelIndex,
    () => undefined,
  );
  const index = known ?? (await indexKernel(pkg, tree, fragmentText));
  if (!known) await writeFileAtomic(indexFile, JSON.stringify(index));
  const rooted = (rel: string) => path.join(tree, rel);
  return {
    kind: "debian",
    package: pkg,
    identity: packageIdentity(pkg),
    builtIn: [],
    release: index.release,
    vmlinuz: rooted(index.vmlinuz),
    modules: new Map(index.modules.map(([name, m]) => [name, { path: rooted(m.path), info: m.info }])),
    loadOrder: index.loadOrder,
    alwaysLoad: index.alwaysLoad,
  };
}

async function indexKernel(pkg: DebianPackage, tree: string, fragmentText: string): Promise<KernelIndex> {
  const boot = path.join(tree, "boot");
  const files = await readdir(boot);
  const vmlinuzName = files.find((f) => f.startsWith("vmlinuz-"));
  const configName = files.find((f) => f.startsWith("config-"));
  if (!vmlinuzName || !configName) throw new KilnError(`kernel package ${pkg.name} has no /boot/vmlinuz-* or /boot/config-*`);
  const release = vmlinuzName.slice("vmlinuz-".length);

  const fragment = parseFragment(fragmentText);
  const check = checkKernelConfig(fragment, parseKernelConfig(await readFile(path.join(boot, configName), "utf8")));
  if (check.missing.length > 0) {
    throw new InputError(
      `kernel ${pkg.name} ${pkg.version} lacks features kiln images need:\n${check.missing.map((m) => `  - ${m}`).join("\n")}`,
      {
        hint: "choose another kernel.package in kiln.yml (the default linux-image-cloud-amd64 has all of them)",
      },
    );
  }
  const wanted = [...new Set([...check.modules, ...ALWAYS_LOAD])];
  const modules = await readModules(path.join(tree, "lib", "modules", release), wanted);
  const plan = planModuleLoad(new Map([...modules].map(([name, m]) => [name, m.info])), wanted);
  // Built-in drivers (nvme in the cloud kernel) are "missing" as modules and need nothing.
  return {
    release,
    vmlinuz: path.join("boot", vmlinuzName),
    modules: [...modules].map(([name, m]) => [name, { path: path.relative(tree, m.path), info: m.info }]),
    loadOrder: plan.order,
    alwaysLoad: ALWAYS_LOAD.filter((m) => modules.has(m)),
  };
}

/** Reads .modinfo of the wanted modules and everything they depend on. */
async function readModules(modulesDir: string, wanted: readonly string[]): Promise<Map<string, { path: string; info: ModuleInfo }>> {
  const paths = new Map<string, string>();
  async function index(dir: string): Promise<void> {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await index(full);
      else if (entry.name.endsWith(".ko")) paths.set(entry.name.slice(0, -3).replace(/-/g, "_"), full);
    }
  }
  await index(path.join(modulesDir, "kernel"));
  const found = new Map<string, { path: string; info: ModuleInfo }>();
  const queue = [...wanted];
  while (queue.length > 0) {
    const name = queue.shift()!;
    if (found.has(name)) continue;
    const file = paths.get(name);
    if (!file) continue;
    const info = parseModinfo(await readFile(file), path.basename(file));
    found.set(name, { path: file, info });
    queue.push(...info.depends, ...info.softdepsPre);
  }
  return found;
}

/** Driver names (as their modules are called) of the built-in options push asks about. */
const BUILT_IN_DRIVERS: Readonly<Record<string, string>> = {
  ixgbevf: "CONFIG_IXGBEVF",
  ena: "CONFIG_ENA_ETHERNET",
  nvme: "CONFIG_BLK_DEV_NVME",
  xen_blkfront: "CONFIG_XEN_BLKDEV_FRONTEND",
  xen_netfront: "CONFIG_XEN_NETDEV_FRONTEND",
};

/**
 * Starts (or finds) the minimal kernel's build. A bake calls this first thing, so a first
 * compile runs while the app is staged; a progress line reports it every few seconds.
 */
export interface MinimalKernel {
  readonly source: DebianPackage;
  readonly built: BuiltKernel;
}

export async function startMinimalKernel(ctx: BakeContext, signal?: AbortSignal): Promise<MinimalKernel> {
  const source = await resolveDebian(ctx, KERNEL_SOURCE_PACKAGE);
  const inputs = await minimalKernelInputs(source, ctx.kernelConfigs);
  const started = performance.now();
  const built = await buildMinimalKernel(inputs, {
    apt: ctx.apt,
    cache: ctx.home.cache,
    ...(signal ? { signal } : {}),
    onProgress: (done) =>
      ctx.progress.info(
        `  Kernel build (first bake with this kernel; runs beside the other steps) … ${((performance.now() - started) / 1000).toFixed(0)}s, ${done}`,
      ),
  });
  return { source, built };
}

async function minimalKernelLayer(ctx: BakeContext, { source, built }: MinimalKernel): Promise<KernelLayer> {
  const { record } = built;
  ctx.used.push(lockEntryOf(source, "kernel-source"));
  const config = readConfigValues(await readFile(built.config, "utf8"));
  return {
    kind: "minimal",
    package: source,
    identity: `minimal:${record.key}:${record.imageSha256}`,
    build: record,
    compiled: !built.cached,
    builtIn: Object.entries(BUILT_IN_DRIVERS)
      .filter(([, option]) => config.get(option) === "y")
      .map(([name]) => name),
    release: record.release,
    vmlinuz: built.image,
    modules: new Map(),
    loadOrder: [],
    alwaysLoad: [],
  };
}
