/**
 * Which earlier snapshot a push may build on (ParentSnapshotId), given encryption. With a parent,
 * StartSnapshot takes the parent's encryption and key and accepts neither Encrypted nor a KmsKeyArn
 * ("Encryption outcomes for EBS direct APIs"), and an account with EBS encryption by default
 * refuses an unencrypted parent. So a parent is usable only when its encryption is what the push
 * needs; otherwise the next older one is tried, and with none the push uploads in full and says why.
 */
import type { AwsClients } from "../aws/clients.js";
import { describeSnapshotEncryption, getEbsEncryptionByDefault, type SnapshotEncryption } from "../aws/ebs.js";
import { InputError } from "../errors.js";
import type { StoredImage } from "../image/store.js";

export interface ParentCandidate {
  readonly snapshotId: string;
  readonly disk: StoredImage;
}

export interface ParentChoice {
  readonly parent: ParentCandidate | undefined;
  /** The chosen parent's encryption (the new snapshot gets the same). */
  readonly encryption: SnapshotEncryption | undefined;
  /** Why candidates were passed over, one line each. */
  readonly notes: readonly string[];
}

const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):key\/[A-Za-z0-9-]+$/;

/** --kms-key must be a key ARN in the push's region: StartSnapshot's KmsKeyArn takes nothing else. */
export function validateKmsKeyArn(arn: string, region: string): void {
  const match = KMS_KEY_ARN.exec(arn);
  if (!match)
    throw new InputError(`--kms-key ${JSON.stringify(arn)} is not a KMS key ARN`, {
      hint: "pass the key's ARN, arn:aws:kms:REGION:ACCOUNT:key/KEY-ID (aws kms describe-key --key-id ALIAS shows it)",
    });
  if (match[1] !== region)
    throw new InputError(`--kms-key is a key in ${match[1]}, but the push goes to ${region}`, {
      hint: `KMS keys are regional: pass a key of ${region}`,
    });
}

/** Same key: the same ARN, or the same key id (a snapshot's KmsKeyId is the key's ARN). */
function sameKey(a: string | undefined, b: string): boolean {
  if (!a) return false;
  return a === b || (a.includes(":key/") && b.includes(":key/") && a.split(":key/")[1] === b.split(":key/")[1]);
}

function describeEncryption(e: SnapshotEncryption): string {
  return e.encrypted ? `encrypted with ${e.kmsKeyId ?? "an unknown key"}` : "unencrypted";
}

export async function chooseParent(
  clients: AwsClients,
  candidates: readonly ParentCandidate[],
  kmsKeyArn: string | undefined,
): Promise<ParentChoice> {
  const notes: string[] = [];
  let byDefault: boolean | undefined;
  for (const candidate of candidates) {
    const name = `${candidate.disk.ref}'s snapshot ${candidate.snapshotId}`;
    const encryption = await describeSnapshotEncryption(clients, candidate.snapshotId);
    if (!encryption) {
      notes.push(`${name} no longer exists`);
      continue;
    }
    if (kmsKeyArn) {
      if (encryption.encrypted && sameKey(encryption.kmsKeyId, kmsKeyArn)) return { parent: candidate, encryption, notes };
      notes.push(`${name} is ${describeEncryption(encryption)}, not with --kms-key ${kmsKeyArn} (a child takes its parent's key)`);
      continue;
    }
    if (!encryption.encrypted) {
      byDefault ??= await getEbsEncryptionByDefault(clients);
      if (byDefault) {
        notes.push(
          `${name} is unencrypted and the account has EBS encryption by default in ${clients.region}, which refuses it as a parent`,
        );
        continue;
      }
    }
    return { parent: candidate, encryption, notes };
  }
  return { parent: undefined, encryption: undefined, notes };
}
