/**
 * kiln rebake REF: the same app bytes on updated base packages. The stored image's app
 * partition is reused unchanged; every base package is resolved afresh (apt's candidates, the
 * newest Node.js within the range); the result is a new version label (1.4.0-r2), a new
 * digest, an updated kiln.lock, and a manifest that records old → new per package.
 */
import path from "node:path";
import { bake } from "../bake/bake.js";
import { InputError } from "../errors.js";
import { makeScratchDir, removeDir } from "../fsutil.js";
import { makePrivateDir } from "../private-fs.js";
import type { KilnHome } from "../home.js";
import { type CommittedImage, ImageStore, type StoredImage } from "../image/store.js";
import { AptSource } from "../packages/apt.js";
import { NpmSource } from "../packages/npm.js";
import {
  ArchiveUpdateSource,
  diffPackages,
  findUpdates,
  type PackageChange,
  type PackageUpdate,
  type UpdateSource,
} from "../packages/outdated.js";
import type { Progress } from "../progress.js";
import { extractPartition, reuseAppLayer } from "./app-layer.js";

export const DEFAULT_VERSION_FORMAT = "{version}-r{n}";

export interface RebakeOptions {
  readonly home: KilnHome;
  readonly ref: string;
  /** The app directory (holds kiln.yml and kiln.lock), or its kiln.yml. */
  readonly config: string;
  readonly progress: Progress;
  /** Explicit version label; default from `versionFormat`. */
  readonly version?: string;
  /** "{version}-r{n}" (default): {version} is the original version, {n} counts rebakes from 2. */
  readonly versionFormat?: string;
  /** Rebake even when no base package has a newer version. */
  readonly force?: boolean;
  /** Only report what would change. */
  readonly dryRun?: boolean;
  readonly updates?: UpdateSource;
}

export interface RebakeResult {
  readonly rebaked: boolean;
  readonly from: StoredImage;
  readonly image: CommittedImage | undefined;
  /** What the archives offer (before the bake). */
  readonly updates: readonly PackageUpdate[];
  /** What changed in the image (after the bake). */
  readonly changes: readonly PackageChange[];
  readonly appLayerIdentical: boolean | undefined;
  readonly lockChanged: boolean;
  readonly seconds: number;
}

export function appDirOf(config: string): string {
  return /\.ya?ml$/.test(config) ? path.dirname(path.resolve(config)) : path.resolve(config);
}

/** Splits a version label made by `format` into the original version and the rebake number. */
export function parseVersionLabel(version: string, format = DEFAULT_VERSION_FORMAT): { base: string; n: number } {
  const [before, after] = format.split("{n}") as [string, string | undefined];
  const sep = before.replace("{version}", "");
  const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`^(.+)${escapeRegExp(sep)}(\\d+)${escapeRegExp(after ?? "")}$`).exec(version);
  return m ? { base: m[1]!, n: Number(m[2]) } : { base: version, n: 1 };
}

/** The next free label: the highest rebake number among the app's versions, plus one (first rebake: r2). */
export function nextVersionLabel(version: string, existing: readonly string[], format = DEFAULT_VERSION_FORMAT): string {
  if (!format.includes("{version}") || !format.includes("{n}"))
    throw new InputError(`rebake version format '${format}' needs {version} and {n}`, { hint: 'e.g. "{version}-r{n}"' });
  const { base } = parseVersionLabel(version, format);
  let n = 1;
  for (const v of existing) {
    const parsed = parseVersionLabel(v, format);
    if (parsed.base === base) n = Math.max(n, parsed.n);
  }
  return format.replace("{version}", base).replace("{n}", String(n + 1));
}

export async function rebake(opts: RebakeOptions): Promise<RebakeResult> {
  const started = performance.now();
  const store = new ImageStore(opts.home);
  const from = await store.resolve(opts.ref);
  const m = from.manifest;
  const appDir = appDirOf(opts.config);
  const apt = new AptSource(opts.home.cache);
  const source = opts.updates ?? new ArchiveUpdateSource(apt, new NpmSource(opts.home.cache));
  const updates = await opts.progress.step(
    "Checking base packages",
    () =>
      findUpdates({ packages: m.packages, kernelPackage: m.baseInputs?.kernelPackage, nodeRange: m.baseInputs?.nodeRange }, source, {
        cves: false,
      }),
    (u) => `${u.length} newer`,
  );
  const none = { from, image: undefined, updates, changes: [], appLayerIdentical: undefined, lockChanged: false };
  if (opts.dryRun || (updates.length === 0 && !opts.force))
    return { ...none, rebaked: false, seconds: (performance.now() - started) / 1000 };

  const versions = (await store.list()).filter((i) => i.manifest.name === m.name).map((i) => i.manifest.version);
  const label = opts.version ?? nextVersionLabel(m.version, versions, opts.versionFormat);
  if (versions.includes(label))
    throw new InputError(`${m.name}:${label} already exists`, { hint: "choose another --version, or kiln rm it first" });

  await makePrivateDir(opts.home.tmp);
  const scratch = await makeScratchDir(opts.home.tmp, "rebake");
  try {
    const app = await opts.progress.step(
      "Reusing the app layer",
      () => reuseAppLayer(from, scratch),
      (a) => `sha256 ${a.sha256.slice(0, 12)} from ${from.ref}`,
    );
    opts.progress.info(`Rebaking ${from.ref} as ${m.name}:${label} (same app, base packages re-resolved)`);
    const baked = await bake(appDir, { name: m.name, version: label }, opts.home, opts.progress, {
      ignoreLock: true,
      app,
      finishManifest: (next) => ({
        ...next,
        rebake: {
          from: { ref: from.ref, digest: from.digest },
          appLayerSha256: app.sha256,
          changes: diffPackages(m.packages, next.packages),
        },
      }),
    });
    const check = await extractPartition(baked.image, "app", path.join(scratch, "check.erofs"));
    return {
      rebaked: true,
      from,
      image: baked.image,
      updates,
      changes: baked.image.manifest.rebake?.changes ?? [],
      appLayerIdentical: check.sha256 === app.sha256,
      lockChanged: baked.lockChanged,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await removeDir(scratch);
  }
}
