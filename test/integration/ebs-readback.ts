/**
 * Reading a snapshot back block by block (EBS direct APIs): how tests prove what kiln uploaded.
 * kiln itself never reads blocks, so these calls live here, not in src/aws, and `kiln iam-policy`
 * need not grant ebs:GetSnapshotBlock.
 */
import { GetSnapshotBlockCommand, ListSnapshotBlocksCommand } from "@aws-sdk/client-ebs";
import type { AwsClients } from "../../src/aws/clients.js";

export async function getSnapshotBlock(clients: AwsClients, snapshotId: string, index: number, blockToken: string): Promise<Buffer> {
  const out = await clients.ebs.send(new GetSnapshotBlockCommand({ SnapshotId: snapshotId, BlockIndex: index, BlockToken: blockToken }));
  return Buffer.from(await out.BlockData!.transformToByteArray());
}

/** Block index → block token of every block the snapshot holds. */
export async function listSnapshotBlockTokens(clients: AwsClients, snapshotId: string): Promise<Map<number, string>> {
  const tokens = new Map<number, string>();
  let token: string | undefined;
  do {
    const out = await clients.ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snapshotId, NextToken: token }));
    // moto answers BlockIndex as a string; real AWS as a number.
    for (const block of out.Blocks ?? []) tokens.set(Number(block.BlockIndex), block.BlockToken!);
    token = out.NextToken;
  } while (token);
  return tokens;
}
