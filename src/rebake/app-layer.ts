/**
 * The app layer of a stored image, reused byte for byte by a rebake: the app partition's
 * content is cut out of the image's raw disk (offset and length from manifest.layout) and
 * unpacked (fsck.erofs --extract) so the bake can still compute the shared-library closure
 * and the SBOM from the app's files. The app is not staged again: no npm ci, no pip, no copy.
 */
import { mkdir, open, readFile, stat } from "node:fs/promises";
import path from "node:path";
import type { AppLayerSource } from "../bake/bake.js";
import { type DepsLayer, isPlainDepsDir } from "../bake/app.js";
import type { StagedDeps } from "../bake/baker.js";
import { printable } from "../confine.js";
import { InputError, KilnError, ToolMissingError } from "../errors.js";
import { run } from "../exec.js";
import { sha256File } from "../fsutil.js";
import type { StoredImage } from "../image/store.js";

const CHUNK = 4 * 1024 * 1024;

/** Copies the app partition's content bytes of a raw disk into `outFile`; returns their sha256. */
export async function extractPartition(
  image: StoredImage,
  name: "boot" | "system" | "deps" | "app",
  outFile: string,
): Promise<{ bytes: number; sha256: string }> {
  const partition = image.manifest.layout.partitions.find((p) => p.name === name);
  if (!partition) throw new KilnError(`image ${image.ref} has no ${name} partition in its manifest`);
  const input = await open(image.disk, "r");
  const output = await open(outFile, "w");
  try {
    const buffer = Buffer.alloc(CHUNK);
    for (let done = 0; done < partition.contentBytes; ) {
      const want = Math.min(CHUNK, partition.contentBytes - done);
      const { bytesRead } = await input.read(buffer, 0, want, partition.offsetBytes + done);
      if (bytesRead === 0) throw new KilnError(`${image.disk} ends inside its ${name} partition`);
      await output.write(buffer, 0, bytesRead, done);
      done += bytesRead;
    }
  } finally {
    await input.close();
    await output.close();
  }
  return { bytes: partition.contentBytes, sha256: await sha256File(outFile) };
}

export interface ReusedApp extends AppLayerSource {
  readonly sha256: string;
}

/** An AppLayerSource that gives the bake the stored image's app partition, unchanged. */
export async function reuseAppLayer(image: StoredImage, scratch: string): Promise<ReusedApp> {
  const m = image.manifest;
  const file = path.join(scratch, "app-layer.erofs");
  const carved = await extractPartition(image, "app", file);
  const recorded = m.layers.find((l) => l.name === "app")?.sha256;
  if (recorded && recorded !== carved.sha256) {
    throw new KilnError(
      `the app partition of ${image.ref} does not match its manifest (sha256 ${carved.sha256.slice(0, 12)}, manifest ${recorded.slice(0, 12)})`,
      { hint: "the image in the store is damaged: kiln rm it and bake again" },
    );
  }
  const root = path.join(scratch, "app-root");
  try {
    await run(["fsck.erofs", `--extract=${root}`, "--no-preserve-owner", file]);
  } catch (error) {
    if (error instanceof ToolMissingError) throw new ToolMissingError("fsck.erofs", "erofs-utils");
    throw error;
  }
  const deps = await reuseDepsLayer(image, scratch, root);
  return {
    sha256: carved.sha256,
    async stage(spec) {
      // The app layer carries the launch settings (kiln/launch.conf); a kiln.yml that changed
      // them since the bake needs a real bake, not a rebake.
      const drift: string[] = [];
      if (spec.port !== m.port) drift.push(`port ${m.port ?? "-"} → ${spec.port ?? "-"}`);
      if (spec.healthcheck.path !== m.healthcheck.path) drift.push(`healthcheck.path ${m.healthcheck.path} → ${spec.healthcheck.path}`);
      for (const [k, v] of Object.entries(spec.env)) if (m.env[k] !== v) drift.push(`env.${k}`);
      if (drift.length > 0) {
        throw new InputError(
          `kiln.yml changed settings that live in ${image.ref}'s app layer (${drift.join(", ")}); a rebake keeps the app layer as it is`,
          {
            hint: "bake a new version (kiln bake) to apply the new settings, or restore them in kiln.yml to rebake",
          },
        );
      }
      return { root, appDir: path.join(root, "app"), argv: m.cmd, env: m.env, ...(deps ? { deps: deps.staged } : {}) };
    },
    async layer() {
      const entries = (await stat(file)).size;
      return {
        path: file,
        sha256: carved.sha256,
        bytes: entries,
        cached: true,
        appBytes: m.sizes.app,
        fileCount: 0,
        ...(deps ? { deps: deps.layer } : {}),
      };
    },
  };
}

/** The stored image's dependency partition (if it has one), reused byte for byte like the app's. */
async function reuseDepsLayer(
  image: StoredImage,
  scratch: string,
  appRoot: string,
): Promise<{ staged: StagedDeps; layer: DepsLayer } | undefined> {
  if (!image.manifest.layout.partitions.some((p) => p.name === "deps")) return undefined;
  const file = path.join(scratch, "deps-layer.erofs");
  const carved = await extractPartition(image, "deps", file);
  const recorded = image.manifest.layers.find((l) => l.name === "deps")?.sha256;
  if (recorded !== carved.sha256) {
    throw new KilnError(`the dependency partition of ${image.ref} does not match its manifest`, {
      hint: "the image in the store is damaged: kiln rm it and bake again",
    });
  }
  // The app layer says where the init mounts it; the copy is named like that mount point, so the
  // SBOM scan sees node_modules/… (or site-packages/…) as in the image.
  const damaged = { hint: "the image in the store is damaged or was not made by kiln bake: kiln rm it and bake again" };
  const launch = await readFile(path.join(appRoot, "kiln", "launch.conf"), "utf8").catch(() => "");
  const imageDir = /^KILN_DEPS_DIR='([^'\n]*)'$/m.exec(launch)?.[1];
  if (imageDir === undefined)
    throw new KilnError(`${image.ref} has a dependency partition but its app layer does not say where it is mounted`, damaged);
  // The app layer is the one part of the old image a rebake trusts no more than the app: the mount
  // point must be what kiln bake writes (a plain directory under /app), so its last name
  // (node_modules, site-packages) is a plain name: never "..", which would unpack into scratch itself.
  if (!isPlainDepsDir(imageDir))
    throw new KilnError(
      `${image.ref}'s app layer mounts its dependency partition on KILN_DEPS_DIR ${printable(imageDir)}, which is not a plain directory under /app`,
      damaged,
    );
  const hostDir = path.join(scratch, "deps-root", path.posix.basename(imageDir));
  // fsck.erofs makes only the last directory of --extract.
  await mkdir(path.dirname(hostDir), { recursive: true });
  await run(["fsck.erofs", `--extract=${hostDir}`, "--no-preserve-owner", file]);
  return {
    staged: { imageDir, hostDir, key: carved.sha256.slice(0, 32), cached: true },
    layer: { path: file, sha256: carved.sha256, bytes: carved.bytes, cached: true },
  };
}
