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
import {
  completeSnapshot,
  isSnapshotNotYetVisible,
  isTransientEbsError,
  putSnapshotBlock,
  type SnapshotEncryption,
  startSnapshot,
} from "../aws/ebs.js";
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
import { translateAwsError } from "../aws/errors.js";
import { writeFileAtomic } from "../fsutil.js";
import type { KilnHome } from "../home.js";
import { ImageStore, type StoredImage } from "../image/store.js";
import { BLOCK_SIZE, aggregateChecksum, blockChecksum, planBlocks } from "./blocks.js";
import { readDiskBlock, scanDiskBlocks } from "./scan.js";
import { chooseParent, type ParentCandidate, validateKmsKeyArn } from "./parent.js";
import { retryTransient } from "./retry.js";
import { RetriesExhausted, uploadBlocks, UploadInterrupted } from "./upload.js";

export interface PushOptions {
  readonly ref: string;
  readonly clients: AwsClients;
  readonly home: KilnHome;
  readonly concurrency?: number;
  readonly maxRetries?: number;
  /** Retry tuning (tests shorten the delays); defaults suit real AWS. */
  readonly retry?: {
    readonly budget?: number;
    readonly baseDelayMs?: number;
    readonly maxDelayMs?: number;
    /** How long the first block waits for a just-started snapshot to become visible. */
    readonly visibilityWaitMs?: number;
  };
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
  /** Why earlier snapshots were not used as the parent (encryption), when any were passed over. */
  readonly parentNotes: readonly string[];
  /** The snapshot's encryption: the parent's with a parent, else what was asked (or the account default). */
  readonly encryption: { readonly encrypted: boolean; readonly kmsKeyId: string | undefined } | undefined;
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

/** Earlier pushes of the same app whose disks this machine still has (their blocks can be diffed), newest first. */
async function findParentCandidates(opts: PushOptions, image: StoredImage): Promise<ParentCandidate[]> {
  const store = new ImageStore(opts.home);
  const candidates: ParentCandidate[] = [];
  for (const ami of await findKilnAmis(opts.clients, { "kiln:app": image.manifest.name })) {
    const digest = ami.tags["kiln:digest"];
    if (!digest || digest === image.digest) continue;
    try {
      const disk = await store.resolve(digest);
      if (disk.manifest.layout.volumeGiB !== image.manifest.layout.volumeGiB) continue;
      // The snapshot kiln uploaded (tagged with the digest) is the one whose blocks we know.
      const snapshotId = (await findKilnSnapshot(opts.clients, digest)) ?? ami.snapshotId;
      if (!snapshotId) continue;
      candidates.push({ snapshotId, disk });
    } catch {
      // that image is not in this machine's store: cannot diff against it; try an older one
    }
  }
  return candidates;
}

export async function pushImage(opts: PushOptions): Promise<PushResult> {
  const started = performance.now();
  const image = await new ImageStore(opts.home).resolve(opts.ref);
  const region = opts.clients.region;
  const tags = amiTags(image);
  if (opts.kmsKeyArn) validateKmsKeyArn(opts.kmsKeyArn, region);
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
      parentNotes: [],
      encryption: undefined,
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
  const choice = await chooseParent(opts.clients, await findParentCandidates(opts, image), opts.kmsKeyArn);
  const parent = choice.parent;
  if (choice.notes.length > 0) opts.log?.(`${parent ? `Building on ${parent.disk.ref}` : "Uploading in full"}: ${choice.notes.join("; ")}`);
  const parentHashes = parent ? await scanDiskBlocks(parent.disk.dir, parent.disk.disk) : undefined;
  const plan = planBlocks(hashes, parentHashes);
  const recordFile = path.join(opts.home.root, "push", region, `${image.digest.slice(7)}.json`);
  let record = await readFile(recordFile, "utf8").then(
    (t) => JSON.parse(t) as ProgressRecord,
    () => undefined,
  );
  if (record && record.parentSnapshotId !== (parent?.snapshotId ?? null)) record = undefined;
  const resumed = record !== undefined;
  const retry = {
    attempts: (opts.maxRetries ?? 8) + 1,
    baseDelayMs: opts.retry?.baseDelayMs ?? 100,
    maxDelayMs: opts.retry?.maxDelayMs ?? 10_000,
  };
  let retries = 0;
  let encryption: SnapshotEncryption | undefined = choice.encryption;
  if (!record) {
    const common = {
      volumeGiB: image.manifest.layout.volumeGiB,
      description: `kiln ${image.ref} ${image.digest}`,
      tags,
      timeoutMinutes: 24 * 60,
      // One token for every attempt of this push: a retried StartSnapshot returns the same snapshot.
      clientToken: createHash("sha256")
        .update(`${image.digest}:${randomBytes(8).toString("hex")}`)
        .digest("hex")
        .slice(0, 64),
    };
    const started = await retryTransient(
      "StartSnapshot",
      () =>
        startSnapshot(
          opts.clients,
          parent
            ? { ...common, parentSnapshotId: parent.snapshotId }
            : { ...common, ...(opts.kmsKeyArn ? { kmsKeyArn: opts.kmsKeyArn } : {}) },
        ),
      isTransientEbsError,
      retry,
      () => retries++,
    );
    if (started.blockSize !== BLOCK_SIZE) {
      await deleteSnapshot(opts.clients, started.snapshotId).catch(() => undefined);
      throw new KilnError(`EBS answered a block size of ${started.blockSize} bytes for ${started.snapshotId}; kiln writes ${BLOCK_SIZE}`, {
        hint: "the endpoint is not speaking the EBS direct APIs as AWS documents them (an emulator? check AWS_ENDPOINT_URL)",
      });
    }
    if (!parent)
      encryption = started.kmsKeyArn ? { encrypted: true, kmsKeyId: started.kmsKeyArn } : { encrypted: false, kmsKeyId: undefined };
    record = { snapshotId: started.snapshotId, parentSnapshotId: parent?.snapshotId ?? null, checksums: {} };
    await writeFileAtomic(recordFile, JSON.stringify(record));
  }
  const progress = record;
  const todo = plan.upload.filter((i) => !(String(i) in progress.checksums));
  opts.log?.(
    `${resumed ? "Resuming" : "Uploading"} ${image.ref} to ${progress.snapshotId} in ${region}: ${todo.length} of ${plan.totalBlocks} blocks ` +
      `(${plan.skippedZero} zero, ${plan.skippedUnchanged} unchanged${parent ? ` from ${parent.disk.ref}` : ""}` +
      `${resumed ? `, ${plan.upload.length - todo.length} already uploaded` : ""})`,
  );

  let stats;
  let lastSave = 0;
  try {
    stats = await uploadBlocks({
      indexes: todo,
      concurrency: opts.concurrency ?? 64,
      maxRetries: opts.maxRetries ?? 8,
      ...(opts.retry?.budget !== undefined ? { retryBudget: opts.retry.budget } : {}),
      baseDelayMs: retry.baseDelayMs,
      maxDelayMs: retry.maxDelayMs,
      read: (i) => readDiskBlock(image.disk, i),
      checksum: blockChecksum,
      isRetryable: isTransientEbsError,
      // Only a snapshot this push just started can be "not yet visible"; a resumed one exists.
      ...(resumed ? {} : { isNotYetVisible: isSnapshotNotYetVisible }),
      ...(opts.retry?.visibilityWaitMs !== undefined ? { visibilityWaitMs: opts.retry.visibilityWaitMs } : {}),
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
    retries += stats.retries;
    await retryTransient(
      "CompleteSnapshot",
      () => completeSnapshot(opts.clients, progress.snapshotId, all.size, aggregateChecksum(all)),
      isTransientEbsError,
      retry,
      () => retries++,
    );
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
    if (error instanceof RetriesExhausted) {
      const stored = Object.keys(progress.checksums).length;
      throw new KilnError(
        `push of ${image.ref} to ${region} gave up: EBS kept failing (${stored} of ${plan.upload.length} blocks stored; ${error.message}); ` +
          `the incomplete snapshot ${progress.snapshotId} was deleted`,
        { hint: "EBS is throttling or failing: run the same kiln push again later, or with a lower --concurrency", cause: error },
      );
    }
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
      ...amiNetworkFlags([...(image.manifest.kernel.modules ?? []), ...(image.manifest.kernel.builtIn ?? [])]),
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
    parentNotes: choice.notes,
    encryption,
    uploadedBlocks: stats.checksums.size,
    uploadedBytes: stats.bytes,
    skippedBlocks: {
      zero: plan.skippedZero + (volumeBlocks - plan.totalBlocks),
      unchanged: plan.skippedUnchanged,
      alreadyUploaded: plan.upload.length - todo.length,
    },
    totalBlocks: volumeBlocks,
    retries,
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

/**
 * Network flags of the AMI from the drivers the image carries. SriovNetSupport makes Xen types
 * with enhanced networking (C3, C4, D2, I2, M4, R3) give the instance only an Intel 82599
 * virtual function: without ixgbevf in the image such an instance would boot with no network.
 * Images baked before the module list was recorded did not carry the driver.
 */
export function amiNetworkFlags(modules: readonly string[] | undefined): { sriovNetSupport: boolean } {
  return { sriovNetSupport: modules?.includes("ixgbevf") ?? false };
}
