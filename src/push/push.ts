/**
 * kiln push: the image's raw disk straight into an EBS snapshot with the EBS direct APIs
 * (only non-zero blocks, only blocks that differ from the previous image of the same app when
 * it exists), then RegisterImage. Idempotent per digest and region; an interrupted push resumes
 * from its progress record; a failed one deletes its incomplete snapshot.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { KilnError } from "../errors.js";
import type { AwsClients } from "../aws/clients.js";
import { completeSnapshot, putSnapshotBlock, startSnapshot } from "../aws/ebs.js";
import {
  copyAmi,
  deleteSnapshot,
  findKilnAmis,
  findKilnSnapshot,
  registerAmi,
  tagResources,
  waitAmiAvailable,
  waitSnapshotCompleted,
} from "../aws/ec2.js";
import { isThrottling, translateAwsError } from "../aws/errors.js";
import { writeFileAtomic } from "../fsutil.js";
import type { KilnHome } from "../home.js";
import { ImageStore, type StoredImage } from "../image/store.js";
import { BLOCK_SIZE, aggregateChecksum, blockChecksum, planBlocks } from "./blocks.js";
import { readDiskBlock, scanDiskBlocks } from "./scan.js";
import { uploadBlocks, UploadInterrupted } from "./upload.js";

export interface PushOptions {
  readonly ref: string;
  readonly clients: AwsClients;
  readonly home: KilnHome;
  readonly concurrency?: number;
  readonly maxRetries?: number;
  readonly kmsKeyArn?: string;
  readonly copyTo?: readonly AwsClients[];
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: { doneBlocks: number; totalBlocks: number; bytes: number; seconds: number }) => void;
  readonly log?: (message: string) => void;
}

export interface PushResult {
  readonly ref: string;
  readonly digest: string;
  readonly region: string;
  readonly ami: string;
  readonly snapshot: string;
  readonly reused: boolean;
  readonly resumed: boolean;
  readonly parentSnapshot: string | undefined;
  readonly uploadedBlocks: number;
  readonly uploadedBytes: number;
  readonly skippedBlocks: { readonly zero: number; readonly unchanged: number; readonly alreadyUploaded: number };
  readonly totalBlocks: number;
  readonly retries: number;
  readonly maxInFlight: number;
  readonly seconds: number;
  readonly copies: readonly { region: string; ami: string }[];
}

interface ProgressRecord {
  snapshotId: string;
  parentSnapshotId: string | null;
  checksums: Record<string, string>;
}

export function amiTags(image: StoredImage): Record<string, string> {
  return { "kiln:app": image.manifest.name, "kiln:version": image.manifest.version, "kiln:digest": image.digest };
}

export function amiName(image: StoredImage): string {
  // AMI names allow [A-Za-z0-9()[] ./'@_-] and must be unique per account and region.
  return `kiln/${image.manifest.name}/${image.manifest.version}/${image.digest.slice(7, 19)}`.replace(/[^A-Za-z0-9()[\] ./'@_-]/g, "_");
}

async function findParent(opts: PushOptions, image: StoredImage): Promise<{ snapshotId: string; disk: StoredImage } | undefined> {
  const store = new ImageStore(opts.home);
  for (const ami of await findKilnAmis(opts.clients, { "kiln:app": image.manifest.name })) {
    const digest = ami.tags["kiln:digest"];
    if (!digest || digest === image.digest) continue;
    try {
      const disk = await store.resolve(digest);
      if (disk.manifest.layout.volumeGiB !== image.manifest.layout.volumeGiB) continue;
      // The snapshot kiln uploaded (tagged with the digest) is the one whose blocks we know.
      const snapshotId = (await findKilnSnapshot(opts.clients, digest)) ?? ami.snapshotId;
      if (!snapshotId) continue;
      return { snapshotId, disk };
    } catch {
      // that image is not in this machine's store: cannot diff against it; try an older one
    }
  }
  return undefined;
}

export async function pushImage(opts: PushOptions): Promise<PushResult> {
  const started = performance.now();
  const image = await new ImageStore(opts.home).resolve(opts.ref);
  const region = opts.clients.region;
  const tags = amiTags(image);
  const existing = (await findKilnAmis(opts.clients, { "kiln:digest": image.digest }))[0];
  const volumeBlocks = (image.manifest.layout.volumeGiB * 1024 * 1024 * 1024) / BLOCK_SIZE;
  if (existing) {
    return {
      ref: image.ref,
      digest: image.digest,
      region,
      ami: existing.imageId,
      snapshot: existing.snapshotId ?? "",
      reused: true,
      resumed: false,
      parentSnapshot: undefined,
      uploadedBlocks: 0,
      uploadedBytes: 0,
      skippedBlocks: { zero: 0, unchanged: volumeBlocks, alreadyUploaded: 0 },
      totalBlocks: volumeBlocks,
      retries: 0,
      maxInFlight: 0,
      seconds: (performance.now() - started) / 1000,
      copies: await copyToRegions(opts, image, existing.imageId),
    };
  }

  const hashes = await scanDiskBlocks(image.dir, image.disk);
  const parent = await findParent(opts, image);
  const parentHashes = parent ? await scanDiskBlocks(parent.disk.dir, parent.disk.disk) : undefined;
  const plan = planBlocks(hashes, parentHashes);
  const recordFile = path.join(opts.home.root, "push", region, `${image.digest.slice(7)}.json`);
  let record = await readFile(recordFile, "utf8").then(
    (t) => JSON.parse(t) as ProgressRecord,
    () => undefined,
  );
  if (record && record.parentSnapshotId !== (parent?.snapshotId ?? null)) record = undefined;
  const resumed = record !== undefined;
  if (!record) {
    const snapshotId = await startSnapshot(opts.clients, {
      volumeGiB: image.manifest.layout.volumeGiB,
      description: `kiln ${image.ref} ${image.digest}`,
      tags,
      timeoutMinutes: 24 * 60,
      clientToken: createHash("sha256")
        .update(`${image.digest}:${randomBytes(8).toString("hex")}`)
        .digest("hex")
        .slice(0, 64),
      ...(parent ? { parentSnapshotId: parent.snapshotId } : {}),
      ...(opts.kmsKeyArn ? { kmsKeyArn: opts.kmsKeyArn } : {}),
    });
    record = { snapshotId, parentSnapshotId: parent?.snapshotId ?? null, checksums: {} };
    await writeFileAtomic(recordFile, JSON.stringify(record));
  }
  const progress = record;
  const todo = plan.upload.filter((i) => !(String(i) in progress.checksums));
  opts.log?.(
    `${resumed ? "Resuming" : "Uploading"} ${image.ref} to ${progress.snapshotId} in ${region}: ${todo.length} of ${plan.totalBlocks} blocks (${plan.skippedZero} zero, ${plan.skippedUnchanged} unchanged${parent ? ` from ${parent.disk.ref}` : ""}${resumed ? `, ${plan.upload.length - todo.length} already uploaded` : ""})`,
  );

  let stats;
  let lastSave = 0;
  try {
    stats = await uploadBlocks({
      indexes: todo,
      concurrency: opts.concurrency ?? 64,
      maxRetries: opts.maxRetries ?? 8,
      read: (i) => readDiskBlock(image.disk, i),
      checksum: blockChecksum,
      isRetryable: isThrottling,
      put: (i, data, sum) => putSnapshotBlock(opts.clients, progress.snapshotId, i, data, sum),
      ...(opts.signal ? { signal: opts.signal } : {}),
      onBlock: (i, sum) => {
        progress.checksums[String(i)] = sum;
        const done = Object.keys(progress.checksums).length;
        if (performance.now() - lastSave > 1000 || done === plan.upload.length) {
          lastSave = performance.now();
          void writeFileAtomic(recordFile, JSON.stringify(progress));
          opts.onProgress?.({
            doneBlocks: done,
            totalBlocks: plan.upload.length,
            bytes: done * BLOCK_SIZE,
            seconds: (performance.now() - started) / 1000,
          });
        }
      },
    });
    await writeFileAtomic(recordFile, JSON.stringify(progress));
    const all = new Map(Object.entries(progress.checksums).map(([k, v]) => [Number(k), v]));
    await completeSnapshot(opts.clients, progress.snapshotId, all.size, aggregateChecksum(all));
    await waitSnapshotCompleted(opts.clients, progress.snapshotId);
    await tagResources(opts.clients, [progress.snapshotId], tags);
  } catch (error) {
    if (error instanceof UploadInterrupted) {
      await writeFileAtomic(recordFile, JSON.stringify(progress));
      throw new UploadInterrupted(
        `push of ${image.ref} interrupted after ${Object.keys(progress.checksums).length} of ${plan.upload.length} blocks`,
        { hint: "run the same kiln push again: it resumes where it stopped" },
      );
    }
    // Anything else: leave nothing half-made behind.
    await deleteSnapshot(opts.clients, progress.snapshotId).catch(() => undefined);
    await rm(recordFile, { force: true });
    throw error instanceof KilnError ? error : translateAwsError(error, "PutSnapshotBlock", progress.snapshotId);
  }

  let ami: string;
  try {
    ami = await registerAmi(opts.clients, {
      name: amiName(image),
      description: `kiln ${image.ref} ${image.digest}`,
      snapshotId: progress.snapshotId,
      volumeGiB: image.manifest.layout.volumeGiB,
      bootMode: "uefi-preferred",
      tags,
    });
  } catch (error) {
    await deleteSnapshot(opts.clients, progress.snapshotId).catch(() => undefined);
    await rm(recordFile, { force: true });
    throw error;
  }
  await rm(recordFile, { force: true });
  return {
    ref: image.ref,
    digest: image.digest,
    region,
    ami,
    snapshot: progress.snapshotId,
    reused: false,
    resumed,
    parentSnapshot: parent?.snapshotId,
    uploadedBlocks: stats.checksums.size,
    uploadedBytes: stats.bytes,
    skippedBlocks: {
      zero: plan.skippedZero + (volumeBlocks - plan.totalBlocks),
      unchanged: plan.skippedUnchanged,
      alreadyUploaded: plan.upload.length - todo.length,
    },
    totalBlocks: volumeBlocks,
    retries: stats.retries,
    maxInFlight: stats.maxInFlight,
    seconds: (performance.now() - started) / 1000,
    copies: await copyToRegions(opts, image, ami),
  };
}

async function copyToRegions(opts: PushOptions, image: StoredImage, ami: string): Promise<{ region: string; ami: string }[]> {
  const copies: { region: string; ami: string }[] = [];
  for (const target of opts.copyTo ?? []) {
    const there = (await findKilnAmis(target, { "kiln:digest": image.digest }))[0];
    const copied = there?.imageId ?? (await copyAmi(target, opts.clients.region, ami, amiName(image)));
    if (!there) await tagResources(target, [copied], amiTags(image));
    // A copy is usable only once available: a promote in that region must not find it pending.
    if (there?.state !== "available") await waitAmiAvailable(target, copied);
    copies.push({ region: target.region, ami: copied });
  }
  return copies;
}
