/**
 * EBS direct APIs: write a snapshot block by block; and the two EC2 reads that decide a snapshot's
 * encryption (the parent's encryption, the account's encryption-by-default setting).
 */
import { CompleteSnapshotCommand, ListSnapshotBlocksCommand, PutSnapshotBlockCommand, StartSnapshotCommand } from "@aws-sdk/client-ebs";
import { DescribeSnapshotsCommand, GetEbsEncryptionByDefaultCommand } from "@aws-sdk/client-ec2";
import type { AwsClients } from "./clients.js";
import { aws, AwsError } from "./errors.js";

interface StartSnapshotCommon {
  readonly volumeGiB: number;
  readonly description: string;
  readonly tags: Readonly<Record<string, string>>;
  /** Minutes a pending snapshot may stay open (resumable pushes need headroom). */
  readonly timeoutMinutes: number;
  /** Makes a retried StartSnapshot return the snapshot the first attempt created. */
  readonly clientToken: string;
}

/**
 * With a parent, the snapshot takes the parent's encryption: StartSnapshot refuses Encrypted
 * together with ParentSnapshotId, and a KmsKeyArn with an encrypted parent ("Encryption outcomes
 * for EBS direct APIs"), so the type allows neither.
 */
export type StartSnapshotInput = StartSnapshotCommon &
  ({ readonly parentSnapshotId: string } | { readonly parentSnapshotId?: undefined; readonly kmsKeyArn?: string });

export interface StartedSnapshot {
  readonly snapshotId: string;
  /** Bytes per block as AWS answers it (524288); kiln's block arithmetic depends on it. */
  readonly blockSize: number;
  readonly kmsKeyArn: string | undefined;
}

export async function startSnapshot(clients: AwsClients, input: StartSnapshotInput): Promise<StartedSnapshot> {
  const kmsKeyArn = input.parentSnapshotId === undefined ? input.kmsKeyArn : undefined;
  const out = await aws("StartSnapshot", `a ${input.volumeGiB} GiB snapshot in ${clients.region}`, () =>
    clients.ebs.send(
      new StartSnapshotCommand({
        VolumeSize: input.volumeGiB,
        Description: input.description,
        Tags: Object.entries(input.tags).map(([Key, Value]) => ({ Key, Value })),
        Timeout: input.timeoutMinutes,
        ClientToken: input.clientToken,
        ...(input.parentSnapshotId ? { ParentSnapshotId: input.parentSnapshotId } : {}),
        ...(kmsKeyArn ? { Encrypted: true, KmsKeyArn: kmsKeyArn } : {}),
      }),
    ),
  );
  return { snapshotId: out.SnapshotId!, blockSize: Number(out.BlockSize), kmsKeyArn: out.KmsKeyArn };
}

export interface SnapshotEncryption {
  readonly encrypted: boolean;
  readonly kmsKeyId: string | undefined;
}

/** Whether a snapshot is encrypted and with which key (undefined when it does not exist). */
export async function describeSnapshotEncryption(clients: AwsClients, snapshotId: string): Promise<SnapshotEncryption | undefined> {
  const out = await aws("DescribeSnapshots", snapshotId, () =>
    clients.ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] })),
  ).catch((error: unknown) => {
    if (error instanceof AwsError && /NotFound/.test(error.code)) return { Snapshots: [] };
    throw error;
  });
  const snapshot = out.Snapshots?.[0];
  return snapshot ? { encrypted: snapshot.Encrypted === true, kmsKeyId: snapshot.KmsKeyId } : undefined;
}

/** The account's "EBS encryption by default" in this region: new snapshots are then always encrypted. */
export async function getEbsEncryptionByDefault(clients: AwsClients): Promise<boolean> {
  const out = await aws("GetEbsEncryptionByDefault", clients.region, () => clients.ec2.send(new GetEbsEncryptionByDefaultCommand({})));
  return out.EbsEncryptionByDefault === true;
}

/** The SDK error under a kiln AwsError, or the error itself. */
function rawError(error: unknown): {
  name?: string;
  message?: string;
  code?: string;
  Reason?: string;
  $metadata?: { httpStatusCode?: number };
} {
  const unwrapped = error instanceof AwsError ? error.cause : error;
  return (unwrapped ?? {}) as ReturnType<typeof rawError>;
}

/**
 * EBS answers worth another attempt: throttling and 5xx (the API reference says to always retry
 * them), dropped or reset connections, and the ValidationException "Failed to read block data"
 * that long uploads see when a block's body arrives short (nanovms/ops#1268).
 */
export function isTransientEbsError(error: unknown): boolean {
  const e = rawError(error);
  const status = e.$metadata?.httpStatusCode ?? 0;
  const name = e.name ?? "";
  if (/Throttl|TooManyRequests|SlowDown|RequestLimitExceeded|InternalServer|InternalError|ServiceUnavailable/.test(name)) return true;
  if (status === 429 || status >= 500) return true;
  if (/ECONNRESET|EPIPE|ETIMEDOUT|ECONNABORTED|EAI_AGAIN/.test(e.code ?? "") || /TimeoutError|RequestTimeout/.test(name)) return true;
  if (status === 0 && /socket hang up|ECONNRESET|other side closed|connection (?:closed|reset)/i.test(e.message ?? "")) return true;
  return name === "ValidationException" && /Failed to read block data/i.test(e.message ?? "");
}

/**
 * "The snapshot does not exist" from PutSnapshotBlock right after StartSnapshot: the new snapshot
 * is not yet visible to every endpoint; the EBS team's advice is to wait and retry for up to about
 * two minutes (awslabs/coldsnap#43, #56).
 */
export function isSnapshotNotYetVisible(error: unknown): boolean {
  const e = rawError(error);
  return e.name === "ResourceNotFoundException" && (e.Reason === undefined || e.Reason === "SNAPSHOT_NOT_FOUND");
}

/** One block; raw (untranslated) errors so the uploader can tell throttling from failure. */
export async function putSnapshotBlock(
  clients: AwsClients,
  snapshotId: string,
  index: number,
  data: Buffer,
  checksumBase64: string,
): Promise<void> {
  await clients.ebs.send(
    new PutSnapshotBlockCommand({
      SnapshotId: snapshotId,
      BlockIndex: index,
      BlockData: data,
      DataLength: data.length,
      Checksum: checksumBase64,
      ChecksumAlgorithm: "SHA256",
    }),
  );
}

export async function completeSnapshot(
  clients: AwsClients,
  snapshotId: string,
  changedBlocks: number,
  aggregateChecksum: string,
): Promise<string> {
  const out = await aws("CompleteSnapshot", snapshotId, () =>
    clients.ebs.send(
      new CompleteSnapshotCommand({
        SnapshotId: snapshotId,
        ChangedBlocksCount: changedBlocks,
        Checksum: aggregateChecksum,
        ChecksumAlgorithm: "SHA256",
        ChecksumAggregationMethod: "LINEAR",
      }),
    ),
  );
  return out.Status ?? "unknown";
}

/** Block indexes present in a snapshot (for resuming and verifying). */
export async function listSnapshotBlocks(clients: AwsClients, snapshotId: string): Promise<number[]> {
  const indexes: number[] = [];
  let token: string | undefined;
  do {
    const out = await aws("ListSnapshotBlocks", snapshotId, () =>
      clients.ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snapshotId, NextToken: token, MaxResults: 10000 })),
    );
    // moto answers BlockIndex as a string; real AWS as a number.
    for (const block of out.Blocks ?? []) indexes.push(Number(block.BlockIndex));
    token = out.NextToken;
  } while (token);
  return indexes.sort((a, b) => a - b);
}
