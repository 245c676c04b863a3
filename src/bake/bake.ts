/**
 * kiln bake: spec → layers → disk → store. Reads like a table of contents; each stage is a
 * timed step on stderr, each layer is cached by the identity of its inputs, and the image
 * enters the store only when complete.
 */
import { InputError, SpecError } from "../errors.js";
import path from "node:path";
import { requireTools } from "../exec.js";
import { openSandbox } from "../sandbox.js";
import { makeScratchDir, removeDir } from "../fsutil.js";
import { forgetCopies } from "../file-identity.js";
import type { KilnHome } from "../home.js";
import { assembleDisk, diskSignatureFor } from "../image/disk.js";
import type { ImageManifest } from "../image/manifest.js";
import { type CommittedImage, ImageStore } from "../image/store.js";
import { makePrivateDir, writePrivateFileAtomic } from "../private-fs.js";
import { buildLock, kernelBuildChange, readLock, writeLock, type Lock } from "../packages/lock.js";
import { describeChange, diffPackages } from "../packages/outdated.js";
import { imageSbom } from "../packages/sbom.js";
import { findUnpinned, refuseUnpinned, unpinnedWarning } from "../packages/pinning.js";
import { countFiles, formatBytes, type Progress } from "../progress.js";
import { loadSpec } from "../config/load.js";
import type { Spec, SpecOverrides } from "../config/types.js";
import { buildAppLayer, stageApp, type AppLayer, type StagedApp } from "./app.js";
import { loadBakers } from "./bakers.js";
import { buildBootPartition } from "./boot.js";
import { createBakeContext, type BakeContext } from "./context.js";
import { buildInitramfs } from "./initramfs.js";
import { prepareKernel, startMinimalKernel } from "./kernel.js";
import { collectLibraries, findElfFiles, type ElfRoot } from "./libs.js";
import { immutableDirKey, isBeneath, KeyedResults } from "./keyed-results.js";
import { ElfScanCache } from "../elf/scan-cache.js";
import { buildSystemLayer } from "./system.js";
import { verifyUsedPackages } from "./verify-packages.js";

export const BAKE_TOOLS = [
  "apt-cache",
  "apt-get",
  "dpkg-deb",
  "dpkg",
  "mkfs.erofs",
  "mkfs.fat",
  "mcopy",
  "mmd",
  "syslinux",
  "gcc",
  "npm",
] as const;

export interface BakeResult {
  readonly image: CommittedImage;
  readonly lockChanged: boolean;
  readonly seconds: number;
}

/** An app layer that is not staged from the app directory: a rebake reuses the stored image's bytes. */
export interface AppLayerSource {
  stage(spec: Spec, ctx: BakeContext): Promise<StagedApp>;
  layer(ctx: BakeContext): Promise<AppLayer>;
}

export interface BakeOptions {
  /** Fail unless kiln.lock pins exactly the packages this bake uses (and write nothing). */
  readonly frozen?: boolean;
  /** Resolve every base package afresh (apt candidates, newest Node.js in range): rebake. */
  readonly ignoreLock?: boolean;
  readonly app?: AppLayerSource;
  /** Last touch to the manifest before the image is stored (rebake records what changed). */
  readonly finishManifest?: (manifest: ImageManifest) => ImageManifest;
  /** --no-sandbox: run the stages that touch untrusted content on the host (KILN_NO_SANDBOX=1 too). */
  readonly noSandbox?: boolean;
}

const ENTRY_HINT =
  "kiln bakes the app's files as they are: build the app first if it has a build step, or fix the start command " +
  "(cmd: in kiln.yml or --cmd; package.json's scripts.start or main); paths are relative to the app directory";

export async function bake(
  target: string,
  overrides: SpecOverrides,
  home: KilnHome,
  progress: Progress,
  options: BakeOptions = {},
): Promise<BakeResult> {
  const started = performance.now();
  const bakers = await loadBakers();
  const spec = await loadSpec(target, overrides, bakers);
  const baker = bakers.find((b) => b.name === spec.baker)!;
  const entry = (await baker.entryProblems?.(spec)) ?? [];
  if (entry.length > 0) {
    throw new SpecError(spec.appFile ?? spec.appDir, entry, ENTRY_HINT);
  }
  // A reused app layer (rebake) resolves nothing; otherwise loose versions are refused or announced.
  const unpinned = options.app ? [] : await findUnpinned(spec.baker, spec.appDir, spec.appFile);
  if (options.frozen) refuseUnpinned(unpinned);
  await requireTools(BAKE_TOOLS);
  const sandboxed = !options.noSandbox && process.env.KILN_NO_SANDBOX !== "1";
  const sandbox = await openSandbox({ enabled: sandboxed, warn: (message) => progress.info(message) });
  progress.info(`Baking ${spec.name}:${spec.version} (${spec.baker}) from ${spec.appFile ?? spec.appDir}`);
  for (const u of unpinned) progress.info(unpinnedWarning(u));

  // Bake scratch holds the image being built (env baked into it): owner only.
  await makePrivateDir(home.tmp);
  const scratch = await makeScratchDir(home.tmp, "bake");
  // A bake that fails before its Kernel step stops the compile (the next bake resumes it).
  let stopKernelBuild = async () => {};
  try {
    const lock = options.ignoreLock ? undefined : await readLock(spec.appDir);
    if (options.frozen && !lock)
      throw new InputError(`--frozen: ${spec.appDir} has no kiln.lock`, {
        hint: "bake once without --frozen to write kiln.lock, commit it, then bake with --frozen",
      });
    const ctx = createBakeContext(home, scratch, lock, progress, sandbox, { frozen: Boolean(options.frozen) });
    // A first minimal-kernel build takes minutes: it compiles while the app is staged.
    const kernelBuild = new AbortController();
    const minimal = spec.kernel.kind === "minimal" ? startMinimalKernel(ctx, kernelBuild.signal) : undefined;
    minimal?.catch(() => undefined); // awaited at the Kernel step, which reports a failure
    stopKernelBuild = async () => {
      kernelBuild.abort();
      await minimal?.catch(() => undefined);
    };
    const signature = diskSignatureFor(spec.name);
    const signatureHex = signature.toString(16).padStart(8, "0");

    // What is derived from a cached dependency layer (its ELF files, its SBOM components), by the layer's key.
    const results = new KeyedResults(path.join(home.cache, "derived"));
    const runtime = await progress.step(
      `Runtime (${spec.baker})`,
      () => baker.prepareRuntime(spec, ctx),
      (r) => r.packages.map((p) => `${p.name} ${p.version}`).join(", "),
    );
    const staged = await progress.step(options.app ? "App files (reused)" : "App files", () =>
      options.app ? options.app.stage(spec, ctx) : stageApp(spec, baker, runtime, ctx),
    );
    // A dependency layer from kiln's cache never changes: what is derived from it is kept by its key.
    // (A rebake's layer, unpacked into scratch for this bake only, is scanned afresh.)
    const depsKey =
      staged.deps && isBeneath(home.cache, staged.deps.hostDir) ? await immutableDirKey(staged.deps.key, staged.deps.hostDir) : undefined;
    const libs = await progress.step(
      "Shared libraries",
      async () => {
        // Results are remembered by file identity and content: a rebake reads only what changed.
        const cache = await ElfScanCache.open(path.join(home.cache, "elf-scan"));
        const scan = { cache, onFile: countFiles(progress, "Shared libraries") };
        const roots: ElfRoot[] = [...(await findElfFiles(staged.appDir, "/app", scan))];
        if (staged.deps) {
          const options = depsKey ? { ...scan, immutable: { key: depsKey, results } } : scan;
          roots.push(...(await findElfFiles(staged.deps.hostDir, staged.deps.imageDir, options)));
        }
        for (const file of runtime.files) {
          const found = await findElfFiles(path.dirname(file.source), path.posix.dirname(file.dest), scan);
          roots.push(...found.filter((f) => f.hostPath === file.source));
        }
        // Runtime trees (a JRE, a stdlib's lib-dynload) resolve their own libraries inside the tree.
        // The dependency layer's mount point comes first: the first prefix that matches wins.
        const staging = new Map(staged.deps ? [[staged.deps.imageDir, staged.deps.hostDir]] : []);
        staging.set("/app", staged.appDir);
        for (const tree of runtime.trees ?? []) {
          const extra = tree.libraryPath ?? [];
          for (const root of await findElfFiles(tree.source, tree.dest, scan)) {
            roots.push(
              extra.length === 0
                ? root
                : {
                    ...root,
                    info: {
                      ...root.info,
                      rpath: [...root.info.rpath, ...extra],
                      runpath: root.info.runpath.length > 0 ? [...root.info.runpath, ...extra] : [],
                    },
                  },
            );
          }
          staging.set(tree.dest, tree.source);
        }
        await cache.save();
        return collectLibraries(spec, roots, staging, ctx);
      },
      (l) => `${l.length} files`,
    );
    // App problems (wrong architecture, missing libraries) surface before the kernel work.
    const kernel = await progress.step(
      "Kernel",
      () => prepareKernel(spec, ctx, minimal),
      (k) =>
        k.kind === "minimal"
          ? `${k.release}, no modules${k.compiled && k.build ? `, compiled in ${k.build.buildSeconds}s` : " (cached)"}`
          : `${k.release}, ${k.modules.size} modules`,
    );
    const init = await progress.step(
      "Initramfs",
      () => buildInitramfs(kernel, ctx),
      (i) => `${formatBytes(i.bytes)}${i.cached ? " (cached)" : ""}`,
    );
    const boot = await progress.step(
      "Boot partition (BIOS + UEFI)",
      () => buildBootPartition(kernel, init, `${spec.name} ${spec.version}`, signatureHex, ctx),
      (b) => (b.cached ? "(cached)" : ""),
    );
    const system = await progress.step(
      "System layer",
      () => buildSystemLayer(runtime, libs, ctx),
      (s) => `${formatBytes(s.bytes)}${s.cached ? " (cached)" : ""}`,
    );
    const app = await progress.step(
      "App layer",
      () => (options.app ? options.app.layer(ctx) : buildAppLayer(staged, ctx)),
      (a) => `${formatBytes(a.bytes)}${a.cached ? " (cached)" : ""}`,
    );

    // Cached layers record the packages they were built from: verify each from its bytes.
    await progress.step(
      "Package check",
      () => verifyUsedPackages(ctx),
      (n) => `${n} packages verified`,
    );

    const imageDir = await makeScratchDir(home.tmp, "image");
    try {
      const disk = await progress.step(
        "Disk",
        () =>
          assembleDisk(
            {
              bootCode: boot.mbrCode,
              diskSignature: signature,
              boot: { path: boot.path, bytes: boot.bytes, sha256: boot.sha256 },
              system: { path: system.path, bytes: system.bytes, sha256: system.sha256 },
              app: { path: app.path, bytes: app.bytes, sha256: app.sha256 },
              ...(app.deps ? { deps: { path: app.deps.path, bytes: app.deps.bytes, sha256: app.deps.sha256 } } : {}),
            },
            path.join(imageDir, "disk.raw"),
          ),
        (d) => `${formatBytes(d.layout.totalBytes)} ${d.digest.slice(0, 19)}`,
      );
      const { stat } = await import("node:fs/promises");
      const allocated = (await stat(path.join(imageDir, "disk.raw"))).blocks * 512;
      const kernelBytes = (await stat(kernel.vmlinuz)).size;
      const newLock = buildLock(
        ctx.used,
        kernel.build && {
          key: kernel.build.key,
          release: kernel.build.release,
          configSha256: kernel.build.configSha256,
          compiler: kernel.build.compiler,
          imageSha256: kernel.build.imageSha256,
        },
      );
      if (options.frozen) checkFrozen(lock!, newLock);
      const bakedAt = new Date().toISOString();
      const sbom = await progress.step(
        "SBOM",
        () =>
          imageSbom(
            { name: spec.name, version: spec.version, digest: disk.digest, bakedAt, packages: newLock.packages },
            // The dependency layer's host directory is named like its mount point (node_modules).
            staged.deps
              ? [
                  { dir: staged.appDir },
                  { dir: path.dirname(staged.deps.hostDir), ...(depsKey ? { immutable: { key: depsKey, results } } : {}) },
                ]
              : [{ dir: staged.appDir }],
            unpinned.map((u) => path.relative(spec.appDir, u.file)),
          ),
        (b) => `${b.components.length} components`,
      );
      const baseManifest: ImageManifest = {
        manifestVersion: 1,
        name: spec.name,
        version: spec.version,
        digest: disk.digest,
        baker: spec.baker,
        bakedAt,
        cmd: staged.argv,
        port: spec.port,
        env: staged.env,
        healthcheck: spec.healthcheck,
        resources: spec.resources,
        kernel: {
          package: kernel.package.name,
          version: kernel.package.version,
          release: kernel.release,
          cmdline: boot.cmdline,
          modules: [...kernel.modules.keys()].sort(),
          ...(kernel.build ? { kind: "minimal" as const, build: kernel.build, builtIn: kernel.builtIn } : {}),
        },
        diskSignature: signatureHex,
        layout: disk.layout,
        diskDescriptor: disk.descriptor,
        layers: [
          { name: "kernel", sha256: kernel.build?.imageSha256 ?? kernel.package.sha256, bytes: kernelBytes, cached: true },
          { name: "init", sha256: init.sha256, bytes: init.bytes, cached: init.cached },
          { name: "boot", sha256: boot.sha256, bytes: boot.bytes, cached: boot.cached },
          { name: "system", sha256: system.sha256, bytes: system.bytes, cached: system.cached },
          ...(app.deps ? [{ name: "deps" as const, sha256: app.deps.sha256, bytes: app.deps.bytes, cached: app.deps.cached }] : []),
          { name: "app", sha256: app.sha256, bytes: app.bytes, cached: app.cached },
        ],
        sizes: {
          kernel: kernelBytes,
          init: init.bytes,
          libs: system.libBytes,
          runtime: system.runtimeBytes,
          app: app.appBytes,
          rawDisk: disk.layout.totalBytes,
          allocated,
        },
        packages: newLock.packages,
        files: system.files,
        lock: newLock,
        sbom,
        baseInputs: {
          ...(spec.kernel.kind === "debian" ? { kernelPackage: spec.kernel.package } : { kernel: "minimal" as const }),
          ...(spec.baker === "node" && spec.node.version ? { nodeRange: spec.node.version } : {}),
        },
      };
      const manifest = options.finishManifest ? options.finishManifest(baseManifest) : baseManifest;
      const image = await new ImageStore(home).commit(imageDir, manifest);
      await writePrivateFileAtomic(path.join(image.dir, "sbom.json"), `${JSON.stringify(sbom, null, 2)}\n`);
      const lockChanged = options.frozen ? false : await writeLock(spec.appDir, newLock);
      return { image, lockChanged, seconds: (performance.now() - started) / 1000 };
    } finally {
      await removeDir(imageDir);
    }
  } finally {
    await stopKernelBuild();
    forgetCopies(scratch);
    await removeDir(scratch);
  }
}

/** --frozen: the lock must list exactly what this bake used, nothing more or less. */
function checkFrozen(lock: Lock, used: Lock): void {
  const changes = diffPackages(lock.packages, used.packages).map(describeChange);
  const kernel = kernelBuildChange(lock.kernelBuild, used.kernelBuild);
  if (kernel) changes.push(kernel);
  if (changes.length === 0) return;
  throw new InputError(`--frozen: kiln.lock does not match what this bake uses:\n${changes.map((c) => `  - ${c}`).join("\n")}`, {
    hint: "bake without --frozen (or kiln rebake) to update kiln.lock, review and commit it, then bake with --frozen",
  });
}
