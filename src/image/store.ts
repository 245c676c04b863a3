/**
 * The local image store: content-addressed images (images/<sha256>/disk.raw + manifest.json)
 * and refs (refs/<name>/<version> → digest). An image appears only by an atomic rename of a
 * complete directory, so a failed bake never leaves anything half-written behind. Images hold
 * the env baked into them: the store is private to its owner (0700 directories, 0600 files).
 */
import { readdir, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import { InputError, NotFoundError } from "../errors.js";
import type { KilnHome } from "../home.js";
import { exists, removeDir } from "../fsutil.js";
import { makePrivateDir, tightenTree, writePrivateFileAtomic } from "../private-fs.js";
import type { ImageManifest } from "./manifest.js";

export interface StoredImage {
  readonly ref: string;
  readonly digest: string;
  readonly dir: string;
  readonly disk: string;
  readonly manifest: ImageManifest;
}

export function parseRef(ref: string): { name: string; version: string | undefined } {
  const at = ref.lastIndexOf(":");
  if (ref.startsWith("sha256:")) return { name: ref, version: undefined };
  if (at <= 0) return { name: ref, version: undefined };
  return { name: ref.slice(0, at), version: ref.slice(at + 1) };
}

export class ImageStore {
  constructor(private readonly home: KilnHome) {}

  private imageDir(digest: string): string {
    return path.join(this.home.images, digest.replace(/^sha256:/, ""));
  }

  /**
   * Moves a complete staged image directory into the store and points the ref at it. Two bakes
   * of the same inputs may commit one digest at the same time: the loser of the rename finds
   * the winner's identical image and keeps it, so every commit succeeds.
   */
  async commit(stagedDir: string, manifest: ImageManifest): Promise<StoredImage> {
    const dir = this.imageDir(manifest.digest);
    const manifestText = `${JSON.stringify(manifest, null, 2)}\n`;
    await makePrivateDir(this.home.images);
    await writePrivateFileAtomic(path.join(stagedDir, "manifest.json"), manifestText);
    await tightenTree(stagedDir);
    const moved = await rename(stagedDir, dir).then(
      () => true,
      async (error: NodeJS.ErrnoException) => {
        // ENOTEMPTY/EEXIST: the digest is already stored (same bytes); keep that copy.
        if ((error.code !== "ENOTEMPTY" && error.code !== "EEXIST") || !(await exists(path.join(dir, "disk.raw")))) throw error;
        await removeDir(stagedDir);
        return false;
      },
    );
    // Same bytes already stored: refresh its manifest (bake time, ref).
    if (!moved) await writePrivateFileAtomic(path.join(dir, "manifest.json"), manifestText);
    await writePrivateFileAtomic(path.join(this.home.refs, manifest.name, manifest.version), `${manifest.digest}\n`);
    return { ref: `${manifest.name}:${manifest.version}`, digest: manifest.digest, dir, disk: path.join(dir, "disk.raw"), manifest };
  }

  async resolve(ref: string): Promise<StoredImage> {
    const { name, version } = parseRef(ref);
    let digest: string;
    if (name.startsWith("sha256:")) digest = name;
    else {
      const versions = await this.versions(name);
      const wanted = version ?? versions.sort().at(-1);
      if (!wanted || !versions.includes(wanted)) {
        throw new NotFoundError(`image ${ref} is not in the local store${versions.length ? ` (${name} has ${versions.join(", ")})` : ""}`, {
          hint: "kiln images lists what is there; kiln bake creates it",
        });
      }
      digest = (await readFile(path.join(this.home.refs, name, wanted), "utf8")).trim();
    }
    const dir = this.imageDir(digest);
    if (!(await exists(path.join(dir, "manifest.json"))))
      throw new NotFoundError(`image ${ref} (${digest}) is missing from the store`, { hint: "bake it again" });
    const manifest = JSON.parse(await readFile(path.join(dir, "manifest.json"), "utf8")) as ImageManifest;
    return { ref: `${manifest.name}:${manifest.version}`, digest, dir, disk: path.join(dir, "disk.raw"), manifest };
  }

  private async versions(name: string): Promise<string[]> {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(name))
      throw new InputError(`'${name}' is not an image name`, { hint: "refer to images as name:version, e.g. hello-node:0.1.0" });
    return readdir(path.join(this.home.refs, name)).catch(() => []);
  }

  async list(): Promise<StoredImage[]> {
    const out: StoredImage[] = [];
    for (const name of (await readdir(this.home.refs).catch(() => [])).sort()) {
      for (const version of (await readdir(path.join(this.home.refs, name)).catch(() => [])).sort()) {
        if (version.includes(".tmp-")) continue;
        try {
          out.push(await this.resolve(`${name}:${version}`));
        } catch {
          // a ref whose image was removed by hand: skip it
        }
      }
    }
    return out;
  }

  /** Removes a ref; removes the image too when no other ref points at it. */
  async remove(ref: string): Promise<{ ref: string; digest: string; imageRemoved: boolean }> {
    const image = await this.resolve(ref);
    await rm(path.join(this.home.refs, image.manifest.name, image.manifest.version), { force: true });
    const stillUsed = (await this.list()).some((i) => i.digest === image.digest);
    if (!stillUsed) await rm(image.dir, { recursive: true, force: true });
    return { ref: image.ref, digest: image.digest, imageRemoved: !stillUsed };
  }
}
