/**
 * The local image store: content-addressed images (images/<sha256>/disk.raw + manifest.json)
 * and refs (refs/<name>/<version> → digest). An image appears only by an atomic rename of a
 * complete directory, so a failed bake never leaves anything half-written behind. Images hold
 * the env baked into them: the store is private to its owner (0700 directories, 0600 files).
 * Changes to which images and refs exist take the store lock (store-lock.ts).
 */
import { readdir, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import { InputError, NotFoundError } from "../errors.js";
import type { KilnHome } from "../home.js";
import { exists, removeDir } from "../fsutil.js";
import { makePrivateDir, tightenTree, writePrivateFileAtomic } from "../private-fs.js";
import { diskUsage } from "./disk-usage.js";
import type { ImageManifest } from "./manifest.js";
import { isFullDigest, looksLikeDigest, matchDigest, shortDigest } from "./short-digest.js";
import { withStoreLock } from "./store-lock.js";
import { describeUses, type ImageUse, ROLLBACK_RELEASES_KEPT, readImageUses } from "./usage.js";

export interface StoredImage {
  readonly ref: string;
  readonly digest: string;
  readonly dir: string;
  readonly disk: string;
  readonly manifest: ImageManifest;
}

/** A committed image; `movedFrom`: the digest its ref named before this commit (a rebake with other content). */
export interface CommittedImage extends StoredImage {
  readonly movedFrom?: string;
}

/** One stored image, whether or not a ref names it (kiln images --all, prune). */
export interface StoreEntry {
  readonly digest: string;
  /** The refs that name it now, sorted; empty for an image whose refs moved on. */
  readonly refs: readonly string[];
  /** name:version it was baked as (its manifest). */
  readonly bakedAs: string;
  readonly image: StoredImage;
  /** Bytes it takes on disk (allocated blocks, formats included). */
  readonly bytes: number;
  readonly usedBy: readonly ImageUse[];
}

export interface Removal {
  readonly digest: string;
  /** The refs removed. */
  readonly refs: readonly string[];
  readonly imageRemoved: boolean;
  /** Environments that needed the removed image (only with force). */
  readonly usedBy: readonly ImageUse[];
}

export function parseRef(ref: string): { name: string; version: string | undefined } {
  const at = ref.lastIndexOf(":");
  if (ref.startsWith("sha256:")) return { name: ref, version: undefined };
  if (at <= 0) return { name: ref, version: undefined };
  return { name: ref.slice(0, at), version: ref.slice(at + 1) };
}

/** What to tell someone whose image is gone: a bake gives the digest back only from the very same inputs. */
const MISSING_HINT =
  "it was removed from this machine's store (kiln rm, kiln prune) or never baked here. A bake gives this digest again only from " +
  "byte-identical inputs (the same app files, kiln.yml and kiln.lock); otherwise promote or run an image that kiln images lists";

/** Why rm will not remove an image environments need, and what to do instead. */
function refusal(refs: readonly string[], digest: string, usedBy: readonly ImageUse[]): InputError {
  const what = refs.length ? `${refs.join(", ")} (${shortDigest(digest)})` : digest;
  const running = usedBy.some((u) => u.role !== "rollback");
  const breaks = running
    ? "kiln scale and kiln rollback there cannot start that release again"
    : "kiln rollback cannot return to that release";
  const instead = running
    ? "promote another image there (or kiln destroy the environment) first"
    : `it stops being a rollback target after ${ROLLBACK_RELEASES_KEPT} newer releases there`;
  return new InputError(`${what} is ${describeUses(usedBy)}; without it ${breaks}`, {
    hint: `${instead}; --force removes it anyway (a bake gives the same digest back only from byte-identical inputs)`,
  });
}

export class ImageStore {
  constructor(private readonly home: KilnHome) {}

  private imageDir(digest: string): string {
    if (!isFullDigest(digest)) throw new InputError(`'${digest}' is not a digest`, { hint: "a digest is sha256: and 64 hex characters" });
    return path.join(this.home.images, digest.slice("sha256:".length));
  }

  /**
   * Moves a complete staged image directory into the store and points the ref at it. Two bakes
   * of the same inputs may commit one digest at the same time: the loser of the rename finds
   * the winner's identical image and keeps it, so every commit succeeds.
   */
  async commit(stagedDir: string, manifest: ImageManifest): Promise<CommittedImage> {
    const dir = this.imageDir(manifest.digest);
    const manifestText = `${JSON.stringify(manifest, null, 2)}\n`;
    const refFile = path.join(this.home.refs, manifest.name, manifest.version);
    await makePrivateDir(this.home.images);
    await writePrivateFileAtomic(path.join(stagedDir, "manifest.json"), manifestText);
    await tightenTree(stagedDir);
    const movedFrom = await withStoreLock(this.home, `commit ${manifest.name}:${manifest.version}`, async () => {
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
      const before = (await readFile(refFile, "utf8").catch(() => "")).trim();
      await writePrivateFileAtomic(refFile, `${manifest.digest}\n`);
      return before && before !== manifest.digest ? before : undefined;
    });
    const ref = `${manifest.name}:${manifest.version}`;
    return { ref, digest: manifest.digest, dir, disk: path.join(dir, "disk.raw"), manifest, ...(movedFrom ? { movedFrom } : {}) };
  }

  /** name:version, name (its newest version), sha256:<64 hex>, or a unique digest prefix (sha256:3f2a, 3f2a91). */
  async resolve(ref: string): Promise<StoredImage> {
    const { digest, label } = await this.locate(ref);
    const dir = this.imageDir(digest);
    if (!(await exists(path.join(dir, "manifest.json"))))
      throw new NotFoundError(`image ${label} is missing from the store`, { hint: MISSING_HINT });
    const manifest = JSON.parse(await readFile(path.join(dir, "manifest.json"), "utf8")) as ImageManifest;
    return { ref: `${manifest.name}:${manifest.version}`, digest, dir, disk: path.join(dir, "disk.raw"), manifest };
  }

  /**
   * The digest `ref` names and, when it was given as a name, the ref (name:version) that named it.
   * A name that happens to be hex (cafe) is a name first, as git prefers a ref to an object prefix.
   */
  private async locate(ref: string): Promise<{ digest: string; label: string; ref?: string }> {
    const { name, version } = parseRef(ref);
    if (version === undefined && looksLikeDigest(name) && !(await this.hasName(name))) {
      const digest = await this.matchDigest(name);
      return { digest, label: digest };
    }
    const versions = await this.versions(name);
    const wanted = version ?? versions.sort().at(-1);
    if (!wanted || !versions.includes(wanted)) {
      throw new NotFoundError(`image ${ref} is not in the local store${versions.length ? ` (${name} has ${versions.join(", ")})` : ""}`, {
        hint: "kiln images lists what is there; kiln bake creates it",
      });
    }
    const digest = (await readFile(path.join(this.home.refs, name, wanted), "utf8")).trim();
    return { digest, label: `${name}:${wanted} (${digest})`, ref: `${name}:${wanted}` };
  }

  private async hasName(name: string): Promise<boolean> {
    return /^[a-z0-9][a-z0-9._-]*$/.test(name) && exists(path.join(this.home.refs, name));
  }

  /** The stored digest a full digest or a prefix names (short-digest.ts). */
  private async matchDigest(text: string): Promise<string> {
    const stored = await this.storedDigests();
    const refs = await this.refsByDigest();
    return matchDigest(text, stored, (d) => `(${(refs.get(d) ?? []).join(", ") || "no ref"})`);
  }

  private async storedDigests(): Promise<string[]> {
    const names = await readdir(this.home.images).catch(() => []);
    return names.filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  private async versions(name: string): Promise<string[]> {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(name))
      throw new InputError(`'${name}' is not an image name`, { hint: "refer to images as name:version, e.g. hello-node:0.1.0" });
    return readdir(path.join(this.home.refs, name)).catch(() => []);
  }

  /** Every ref (name:version, sorted) with the digest it names; temporary files of a write in progress are skipped. */
  private async refs(): Promise<{ ref: string; digest: string }[]> {
    const out: { ref: string; digest: string }[] = [];
    for (const name of (await readdir(this.home.refs).catch(() => [])).sort()) {
      for (const version of (await readdir(path.join(this.home.refs, name)).catch(() => [])).sort()) {
        if (version.includes(".tmp-")) continue;
        const digest = (await readFile(path.join(this.home.refs, name, version), "utf8").catch(() => "")).trim();
        if (digest) out.push({ ref: `${name}:${version}`, digest });
      }
    }
    return out;
  }

  private async refsByDigest(): Promise<Map<string, string[]>> {
    const map = new Map<string, string[]>();
    for (const { ref, digest } of await this.refs()) map.set(digest, [...(map.get(digest) ?? []), ref]);
    return map;
  }

  /** The images refs name, one entry per ref. */
  async list(): Promise<StoredImage[]> {
    const out: StoredImage[] = [];
    for (const { ref } of await this.refs()) {
      try {
        out.push(await this.resolve(ref));
      } catch {
        // a ref whose image was removed by hand: skip it
      }
    }
    return out;
  }

  /** Every stored image, referenced or not, with its refs, size on disk and the local environments that use it. */
  async listAll(): Promise<StoreEntry[]> {
    const refs = await this.refsByDigest();
    const uses = await readImageUses(this.home);
    const out: StoreEntry[] = [];
    for (const digest of await this.storedDigests()) {
      const image = await this.resolve(digest).catch(() => undefined);
      if (!image) continue; // a directory without a manifest: not an image
      out.push({
        digest,
        refs: refs.get(digest) ?? [],
        bakedAs: image.ref,
        image,
        bytes: await diskUsage(image.dir),
        usedBy: uses.filter((u) => u.digest === digest),
      });
    }
    return out.sort((a, b) => a.bakedAs.localeCompare(b.bakedAs) || a.image.manifest.bakedAt.localeCompare(b.image.manifest.bakedAt));
  }

  /**
   * Removes a ref (name:version), or an image and every ref naming it (a digest or prefix). The
   * image goes when no other ref names it; that is refused while a local environment runs it or
   * keeps it for rollback, unless `force`.
   */
  async remove(ref: string, opts: { force?: boolean } = {}): Promise<Removal> {
    return withStoreLock(this.home, `rm ${ref}`, async () => {
      const located = await this.locate(ref);
      let image: StoredImage;
      try {
        image = await this.resolve(located.digest);
      } catch (error) {
        if (!located.ref || !(error instanceof NotFoundError)) throw error;
        // A ref whose image is gone already: removing the ref loses nothing.
        await this.removeRef(located.ref);
        return { digest: located.digest, refs: [located.ref], imageRemoved: false, usedBy: [] };
      }
      const naming = (await this.refsByDigest()).get(image.digest) ?? [];
      // By name: that one ref. By digest: the image, so every ref naming it goes too.
      const removedRefs = located.ref ? [located.ref] : naming;
      const imageGoes = naming.every((r) => removedRefs.includes(r));
      const usedBy = imageGoes ? (await readImageUses(this.home)).filter((u) => u.digest === image.digest) : [];
      if (usedBy.length > 0 && !opts.force) throw refusal(removedRefs, image.digest, usedBy);
      for (const r of removedRefs) await this.removeRef(r);
      if (imageGoes) await rm(image.dir, { recursive: true, force: true });
      return { digest: image.digest, refs: removedRefs, imageRemoved: imageGoes, usedBy };
    });
  }

  private async removeRef(ref: string): Promise<void> {
    const { name, version } = parseRef(ref);
    if (version !== undefined) await rm(path.join(this.home.refs, name, version), { force: true });
  }

  /** Deletes images by digest (prune); the caller holds the store lock and has checked nothing needs them. */
  async deleteImagesLocked(digests: readonly string[]): Promise<void> {
    for (const digest of digests) await rm(this.imageDir(digest), { recursive: true, force: true });
  }
}
