/** EC2: images and snapshots kiln registers, found by their kiln:* tags. */
import {
  CopyImageCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeleteTagsCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  RegisterImageCommand,
  waitUntilImageAvailable,
  waitUntilSnapshotCompleted,
  type Image,
} from "@aws-sdk/client-ec2";
import { GetConsoleOutputCommand } from "@aws-sdk/client-ec2";
import type { AwsClients } from "./clients.js";
import { AwsError, aws, awsDelete } from "./errors.js";
import { EC2_PROPAGATION, isNotYetVisible, retryEventualConsistency } from "./consistency.js";

export interface KilnAmi {
  readonly imageId: string;
  readonly name: string;
  readonly snapshotId: string | undefined;
  readonly created: string;
  /** pending (a copy still in progress), available, failed, … */
  readonly state: string;
  readonly tags: Readonly<Record<string, string>>;
}

function toKilnAmi(image: Image): KilnAmi {
  const tags = Object.fromEntries((image.Tags ?? []).map((t) => [t.Key ?? "", t.Value ?? ""]));
  return {
    imageId: image.ImageId!,
    name: image.Name ?? "",
    created: image.CreationDate ?? "",
    state: image.State ?? "available",
    tags,
    snapshotId: image.BlockDeviceMappings?.find((m) => m.Ebs?.SnapshotId)?.Ebs?.SnapshotId,
  };
}

export async function findKilnAmis(clients: AwsClients, filters: Readonly<Record<string, string>>): Promise<KilnAmi[]> {
  const out = await aws("DescribeImages", `kiln images in ${clients.region}`, () =>
    clients.ec2.send(
      new DescribeImagesCommand({
        Owners: ["self"],
        Filters: Object.entries(filters).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] })),
      }),
    ),
  );
  return (out.Images ?? [])
    .filter((i) => i.State !== "deregistered")
    .map(toKilnAmi)
    .sort((a, b) => (a.created < b.created ? 1 : -1));
}

/** The completed snapshot kiln uploaded for a digest (tagged at upload), if any. */
export async function findKilnSnapshot(clients: AwsClients, digest: string): Promise<string | undefined> {
  const out = await aws("DescribeSnapshots", `snapshots of ${digest} in ${clients.region}`, () =>
    clients.ec2.send(
      new DescribeSnapshotsCommand({
        OwnerIds: ["self"],
        Filters: [
          { Name: "tag:kiln:digest", Values: [digest] },
          { Name: "status", Values: ["completed"] },
        ],
      }),
    ),
  );
  return out.Snapshots?.sort((a, b) => String(b.StartTime ?? "").localeCompare(String(a.StartTime ?? "")))[0]?.SnapshotId;
}

export async function waitSnapshotCompleted(clients: AwsClients, snapshotId: string, maxWaitSeconds = 900): Promise<void> {
  await aws("DescribeSnapshots", snapshotId, () =>
    waitUntilSnapshotCompleted(
      { client: clients.ec2, maxWaitTime: maxWaitSeconds, minDelay: 2, maxDelay: 15 },
      { SnapshotIds: [snapshotId] },
    ),
  );
}

/** The root device registerAmi gives every kiln AMI; launch templates name it to set the root volume's encryption. */
export const ROOT_DEVICE = "/dev/xvda";

/**
 * Waits for an AMI to become `available`: CopyImage returns at once with a `pending` image that
 * cannot launch until its snapshots are copied (minutes for a cross-region copy).
 */
export async function waitAmiAvailable(clients: AwsClients, imageId: string, maxWaitSeconds = 1800): Promise<void> {
  await aws("DescribeImages", `${imageId} in ${clients.region}`, () =>
    waitUntilImageAvailable({ client: clients.ec2, maxWaitTime: maxWaitSeconds, minDelay: 2, maxDelay: 30 }, { ImageIds: [imageId] }),
  );
}

export interface RegisterInput {
  readonly name: string;
  readonly description: string;
  readonly snapshotId: string;
  readonly volumeGiB: number;
  readonly bootMode: "uefi-preferred" | "legacy-bios" | "uefi";
  /** Intel 82599 VF networking on Xen types: only when the image has the ixgbevf driver. */
  readonly sriovNetSupport: boolean;
  readonly tags: Readonly<Record<string, string>>;
}

export async function registerAmi(clients: AwsClients, input: RegisterInput): Promise<string> {
  const tags = Object.entries(input.tags).map(([Key, Value]) => ({ Key, Value }));
  const register = () =>
    aws("RegisterImage", `${input.name} from ${input.snapshotId}`, () =>
      clients.ec2.send(
        new RegisterImageCommand({
          Name: input.name,
          Description: input.description,
          Architecture: "x86_64",
          VirtualizationType: "hvm",
          EnaSupport: true,
          ...(input.sriovNetSupport ? { SriovNetSupport: "simple" } : {}),
          RootDeviceName: "/dev/xvda",
          BootMode: input.bootMode,
          ImdsSupport: "v2.0",
          BlockDeviceMappings: [
            {
              DeviceName: "/dev/xvda",
              Ebs: { SnapshotId: input.snapshotId, VolumeSize: input.volumeGiB, VolumeType: "gp3", DeleteOnTermination: true },
            },
          ],
          TagSpecifications: [{ ResourceType: "image", Tags: tags }],
        }),
      ),
    );
  const imageId = await register().then(
    (out) => out.ImageId!,
    async (error: unknown) => {
      // AMI names are unique: a register whose answer was lost made the AMI already. Ours if it
      // boots from this push's snapshot, or carries this push's description (it names the image
      // digest); anything else keeps the name taken.
      if (!(error instanceof AwsError && error.code === "InvalidAMIName.Duplicate")) throw error;
      const mine = await sameAmi(clients, input);
      if (mine) return mine;
      throw new AwsError(
        error.operation,
        input.name,
        error.code,
        "another AMI already has this name",
        error.requestId,
        "deregister that AMI (kiln rmi, or the EC2 console), or bake under another version",
        error,
      );
    },
  );
  // Tag explicitly as well: some endpoints (and emulators) drop TagSpecifications on RegisterImage.
  await tagResources(clients, [imageId], input.tags);
  return imageId;
}

/**
 * Tags are often added right after a create (RegisterImage, CopyImage, …), when EC2 may not
 * know the new id yet: CreateTags is idempotent, so a NotFound is retried within a bound.
 */
/** The AMI of the input's name that this register would have made: same root snapshot, or same description. */
async function sameAmi(clients: AwsClients, input: RegisterInput): Promise<string | undefined> {
  const out = await aws("DescribeImages", input.name, () =>
    clients.ec2.send(new DescribeImagesCommand({ Owners: ["self"], Filters: [{ Name: "name", Values: [input.name] }] })),
  );
  const image = (out.Images ?? []).find(
    (i) => i.Description === input.description || (i.BlockDeviceMappings ?? []).some((b) => b.Ebs?.SnapshotId === input.snapshotId),
  );
  return image?.ImageId;
}

export async function tagResources(clients: AwsClients, ids: readonly string[], tags: Readonly<Record<string, string>>): Promise<void> {
  const send = () =>
    clients.ec2.send(new CreateTagsCommand({ Resources: [...ids], Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }));
  await aws("CreateTags", ids.join(","), () => retryEventualConsistency(send, isNotYetVisible, EC2_PROPAGATION));
}

export async function untagResources(clients: AwsClients, ids: readonly string[], keys: readonly string[]): Promise<void> {
  if (!keys.length) return;
  await aws("DeleteTags", ids.join(","), () =>
    clients.ec2.send(new DeleteTagsCommand({ Resources: [...ids], Tags: keys.map((Key) => ({ Key })) })),
  );
}

export async function deleteSnapshot(clients: AwsClients, snapshotId: string): Promise<void> {
  await awsDelete(
    "DeleteSnapshot",
    snapshotId,
    () => clients.ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })),
    (code) => code === "InvalidSnapshot.NotFound",
  );
}

export async function deregisterAmi(clients: AwsClients, imageId: string): Promise<void> {
  await awsDelete(
    "DeregisterImage",
    imageId,
    () => clients.ec2.send(new DeregisterImageCommand({ ImageId: imageId })),
    (code) => code === "InvalidAMIID.NotFound" || code === "InvalidAMIID.Unavailable",
  );
}

export async function copyAmi(target: AwsClients, sourceRegion: string, imageId: string, name: string): Promise<string> {
  const out = await aws("CopyImage", `${imageId} from ${sourceRegion} to ${target.region}`, () =>
    target.ec2.send(new CopyImageCommand({ SourceRegion: sourceRegion, SourceImageId: imageId, Name: name, CopyImageTags: true })),
  );
  return out.ImageId!;
}

/**
 * An instance's serial console (at most the last 64 KB), decoded. `latest` asks for the live
 * output, which only Nitro instances have; without it EC2 returns what it buffered at the
 * instance's last state change.
 */
export async function getConsoleOutput(
  clients: AwsClients,
  instanceId: string,
  latest: boolean,
): Promise<{ readonly text: string; readonly timestamp: Date | undefined }> {
  const out = await aws("GetConsoleOutput", instanceId, () =>
    clients.ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId, ...(latest ? { Latest: true } : {}) })),
  );
  return { text: out.Output ? Buffer.from(out.Output, "base64").toString("utf8") : "", timestamp: out.Timestamp };
}
