/** EBS direct APIs: write a snapshot block by block. */
import { CompleteSnapshotCommand, ListSnapshotBlocksCommand, PutSnapshotBlockCommand, StartSnapshotCommand } from "@aws-sdk/client-ebs";
import type { AwsClients } from "./clients.js";
import { aws } from "./errors.js";

export interface StartSnapshotInput {
  readonly volumeGiB: number;
  readonly description: string;
  readonly tags: Readonly<Record<string, string>>;
  readonly parentSnapshotId?: string;
  readonly kmsKeyArn?: string;
  readonly encrypted?: boolean;
  /** Minutes a pending snapshot may stay open (resumable pushes need headroom). */
  readonly timeoutMinutes: number;
  readonly clientToken: string;
}

export async function startSnapshot(clients: AwsClients, input: StartSnapshotInput): Promise<string> {
  const out = await aws("StartSnapshot", `a ${input.volumeGiB} GiB snapshot in ${clients.region}`, () =>
    clients.ebs.send(
      new StartSnapshotCommand({
        VolumeSize: input.volumeGiB,
        Description: input.description,
        Tags: Object.entries(input.tags).map(([Key, Value]) => ({ Key, Value })),
        Timeout: input.timeoutMinutes,
        ClientToken: input.clientToken,
        ...(input.parentSnapshotId ? { ParentSnapshotId: input.parentSnapshotId } : {}),
        ...(input.encrypted || input.kmsKeyArn ? { Encrypted: true } : {}),
        ...(input.kmsKeyArn ? { KmsKeyArn: input.kmsKeyArn } : {}),
      }),
    ),
  );
  return out.SnapshotId!;
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
