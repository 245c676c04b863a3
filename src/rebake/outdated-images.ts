/**
 * kiln outdated over images: refresh the package indexes, then for each image of the app in
 * the store (its newest version) and each image live in one of its environments — or every
 * image in the store with `all` — list the base packages that have newer versions.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseKilnYaml } from "../config/yaml.js";
import { loadBakers } from "../bake/bakers.js";
import { envStatus, type ProviderFactory } from "../deploy/promote.js";
import type { KilnHome } from "../home.js";
import { ImageStore, type StoredImage } from "../image/store.js";
import { AptSource } from "../packages/apt.js";
import { NpmSource } from "../packages/npm.js";
import { ArchiveUpdateSource, findUpdates, type PackageUpdate, type UpdateSource } from "../packages/outdated.js";
import type { Progress } from "../progress.js";
import { parseEnvironments } from "../config/environments.js";
import { loadSpec } from "../config/load.js";
import { appDirOf } from "./rebake.js";

export interface OutdatedImage {
  readonly ref: string;
  readonly digest: string;
  /** "store (newest)", "env dev", … */
  readonly where: readonly string[];
  readonly updates: readonly PackageUpdate[];
}

export interface OutdatedReport {
  readonly refreshed: boolean;
  readonly notes: readonly string[];
  readonly images: readonly OutdatedImage[];
  readonly updates: number;
  readonly securityUpdates: number;
  /** What the exit code says: some image has updates (security ones only, with securityOnly). */
  readonly rebakeNeeded: boolean;
}

export interface OutdatedOptions {
  readonly home: KilnHome;
  readonly config: string;
  readonly progress: Progress;
  readonly all?: boolean;
  readonly refresh?: boolean;
  readonly cves?: boolean;
  readonly securityOnly?: boolean;
  readonly providers?: ProviderFactory;
  readonly updates?: UpdateSource;
  /** Skip observing environments (no provider calls). */
  readonly environments?: boolean;
}

export { UP_TO_DATE_EXIT_CODE } from "./exit-codes.js";

interface Target {
  image: StoredImage;
  where: string[];
}

async function appName(config: string): Promise<string | undefined> {
  try {
    return (await loadSpec(appDirOf(config), {}, await loadBakers())).name;
  } catch {
    return undefined;
  }
}

async function environmentNames(config: string, app: string): Promise<string[]> {
  const file = path.join(appDirOf(config), "kiln.yml");
  const text = await readFile(file, "utf8").catch(() => "");
  const doc = (text ? parseKilnYaml(text, file) : {}) as Record<string, unknown> | null;
  if (!doc?.environments) return [];
  return [...parseEnvironments(doc.environments, app, "/", file).keys()];
}

async function collectTargets(opts: OutdatedOptions, notes: string[]): Promise<Target[]> {
  const store = new ImageStore(opts.home);
  const targets = new Map<string, Target>();
  const add = (image: StoredImage, where: string) => {
    const known = targets.get(image.digest);
    if (known) known.where.push(where);
    else targets.set(image.digest, { image, where: [where] });
  };
  const images = await store.list();
  const app = await appName(opts.config);
  if (opts.all || !app) {
    if (!app && !opts.all) notes.push(`no app in ${appDirOf(opts.config)}: checking every image in the store`);
    for (const image of images) add(image, "store");
  } else {
    const newest = images
      .filter((i) => i.manifest.name === app)
      .sort((a, b) => a.manifest.bakedAt.localeCompare(b.manifest.bakedAt))
      .at(-1);
    if (newest) add(newest, "store (newest)");
    else notes.push(`no image of ${app} in the store yet`);
  }
  if (app && opts.environments !== false) {
    for (const envName of await environmentNames(opts.config, app)) {
      try {
        const status = await envStatus({
          home: opts.home,
          config: appDirOf(opts.config),
          envName,
          progress: opts.progress,
          app,
          ...(opts.providers ? { providers: opts.providers } : {}),
        });
        for (const release of status.live.releases.filter((r) => r.serving)) {
          const image = await store.resolve(release.image.digest).catch(() => undefined);
          if (image) add(image, `env ${envName}`);
          else
            notes.push(`env ${envName} runs ${release.image.ref} (${release.image.digest.slice(0, 19)}), which is not in the local store`);
        }
      } catch (error) {
        notes.push(`env ${envName}: could not observe (${(error as Error).message.split("\n")[0]})`);
      }
    }
  }
  return [...targets.values()];
}

export async function outdated(opts: OutdatedOptions): Promise<OutdatedReport> {
  const notes: string[] = [];
  const apt = new AptSource(opts.home.cache);
  let refreshed = false;
  if (opts.refresh !== false) {
    const r = await opts.progress.step(
      "Refreshing package indexes",
      () => apt.update(),
      (x) => (x.refreshed ? "apt-get update" : "skipped"),
    );
    refreshed = r.refreshed;
    if (r.reason) notes.push(`apt indexes not refreshed: ${r.reason}`);
  }
  const source = opts.updates ?? new ArchiveUpdateSource(apt, new NpmSource(opts.home.cache));
  const targets = await collectTargets(opts, notes);
  const images: OutdatedImage[] = [];
  for (const t of targets) {
    const m = t.image.manifest;
    const updates = await opts.progress.step(
      `Checking ${t.image.ref}`,
      () =>
        findUpdates({ packages: m.packages, kernelPackage: m.baseInputs?.kernelPackage, nodeRange: m.baseInputs?.nodeRange }, source, {
          cves: opts.cves !== false,
        }),
      (u) => `${u.length} newer`,
    );
    images.push({ ref: t.image.ref, digest: t.image.digest, where: t.where, updates });
  }
  const all = images.flatMap((i) => i.updates);
  const securityUpdates = all.filter((u) => u.security).length;
  return {
    refreshed,
    notes,
    images,
    updates: all.length,
    securityUpdates,
    rebakeNeeded: opts.securityOnly ? securityUpdates > 0 : all.length > 0,
  };
}
