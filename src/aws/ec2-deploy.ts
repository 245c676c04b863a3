/** EC2 resources a deploy needs: network lookups, security groups, launch templates, instance facts. */
import { createHash } from "node:crypto";
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateTagsCommand,
  CreateLaunchTemplateCommand,
  CreateLaunchTemplateVersionCommand,
  CreateSecurityGroupCommand,
  DeleteLaunchTemplateCommand,
  DeleteSecurityGroupCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeLaunchTemplatesCommand,
  DescribeRouteTablesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeTagsCommand,
  DescribeVpcsCommand,
  GetConsoleOutputCommand,
  type Subnet,
} from "@aws-sdk/client-ec2";
import { KilnError } from "../errors.js";
import type { AwsClients } from "./clients.js";
import { ROOT_DEVICE } from "./ec2.js";
import { AwsError, aws, awsDelete, translateAwsError } from "./errors.js";
import { EC2_PROPAGATION, isNotYetVisible, retryEventualConsistency } from "./consistency.js";

export type Tags = Readonly<Record<string, string>>;
const tagList = (tags: Tags) => Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));

export async function defaultVpc(clients: AwsClients): Promise<string | undefined> {
  const out = await aws("DescribeVpcs", `default VPC in ${clients.region}`, () =>
    clients.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: "isDefault", Values: ["true"] }] })),
  );
  return out.Vpcs?.[0]?.VpcId;
}

export async function describeSubnets(clients: AwsClients, ids: readonly string[], vpc?: string): Promise<Subnet[]> {
  const out = await aws("DescribeSubnets", ids.length ? ids.join(",") : `subnets of ${vpc}`, () =>
    clients.ec2.send(
      new DescribeSubnetsCommand(ids.length ? { SubnetIds: [...ids] } : { Filters: [{ Name: "vpc-id", Values: [vpc ?? ""] }] }),
    ),
  );
  return out.Subnets ?? [];
}

/** The VPC's route tables: which subnets each routes, whether it is the main one, whether it reaches an internet gateway. */
export async function describeRouteTables(
  clients: AwsClients,
  vpc: string,
): Promise<{ id: string; main: boolean; subnets: string[]; internetRoute: boolean }[]> {
  const tables = [];
  let token: string | undefined;
  do {
    const out = await aws("DescribeRouteTables", `route tables of ${vpc}`, () =>
      clients.ec2.send(new DescribeRouteTablesCommand({ Filters: [{ Name: "vpc-id", Values: [vpc] }], NextToken: token })),
    );
    for (const t of out.RouteTables ?? [])
      tables.push({
        id: t.RouteTableId ?? "",
        main: (t.Associations ?? []).some((a) => a.Main),
        subnets: (t.Associations ?? []).flatMap((a) => (a.SubnetId ? [a.SubnetId] : [])),
        // A blackhole route (its gateway detached) carries nothing.
        internetRoute: (t.Routes ?? []).some(
          (r) => r.DestinationCidrBlock === "0.0.0.0/0" && r.GatewayId?.startsWith("igw-") && r.State !== "blackhole",
        ),
      });
    token = out.NextToken;
  } while (token);
  return tables;
}

export async function instanceTypeOffered(clients: AwsClients, instanceType: string): Promise<boolean> {
  const out = await aws("DescribeInstanceTypeOfferings", `${instanceType} in ${clients.region}`, () =>
    clients.ec2.send(
      new DescribeInstanceTypeOfferingsCommand({
        LocationType: "region",
        Filters: [{ Name: "instance-type", Values: [instanceType] }],
      }),
    ),
  );
  return (out.InstanceTypeOfferings ?? []).length > 0;
}

export async function findSecurityGroup(
  clients: AwsClients,
  vpc: string,
  name: string,
): Promise<{ id: string; tags: Record<string, string> } | undefined> {
  const out = await aws("DescribeSecurityGroups", name, () =>
    clients.ec2.send(
      new DescribeSecurityGroupsCommand({
        Filters: [
          { Name: "group-name", Values: [name] },
          { Name: "vpc-id", Values: [vpc] },
        ],
      }),
    ),
  );
  const group = out.SecurityGroups?.[0];
  return group?.GroupId
    ? { id: group.GroupId, tags: Object.fromEntries((group.Tags ?? []).map((t) => [t.Key ?? "", t.Value ?? ""])) }
    : undefined;
}

export async function ensureSecurityGroup(
  clients: AwsClients,
  vpc: string,
  name: string,
  description: string,
  tags: Tags,
  ingress: IngressRule[],
): Promise<string> {
  const existing = await findSecurityGroup(clients, vpc, name);
  if (existing) return existing.id;
  const out = await aws("CreateSecurityGroup", name, () =>
    clients.ec2.send(
      new CreateSecurityGroupCommand({
        GroupName: name,
        Description: description,
        VpcId: vpc,
        TagSpecifications: [{ ResourceType: "security-group", Tags: tagList(tags) }],
      }),
    ),
  );
  const id = out.GroupId!;
  // No rules yet when the app's port is not known (a lock taken before any image is chosen).
  // The new group's id may not have reached every EC2 endpoint yet (InvalidGroup.NotFound).
  if (ingress.length)
    await aws("AuthorizeSecurityGroupIngress", id, () =>
      retryEventualConsistency(
        () => clients.ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: id, IpPermissions: ingress.map(permission) })),
        isNotYetVisible,
        EC2_PROPAGATION,
      ),
    );
  return id;
}

type IngressRule = { port: number; fromGroup?: string; cidr?: string };

function permission(rule: IngressRule) {
  return {
    IpProtocol: "tcp",
    FromPort: rule.port,
    ToPort: rule.port,
    ...(rule.fromGroup ? { UserIdGroupPairs: [{ GroupId: rule.fromGroup }] } : { IpRanges: [{ CidrIp: rule.cidr ?? "0.0.0.0/0" }] }),
  };
}

/** Adds an ingress rule to an existing group; a rule that is already there is fine. */
export async function allowIngress(clients: AwsClients, groupId: string, rule: IngressRule): Promise<void> {
  try {
    // The group may have been created a moment ago (ensureSecurityGroup without rules): its id may
    // not have reached every EC2 endpoint yet (InvalidGroup.NotFound).
    await retryEventualConsistency(
      () => clients.ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: [permission(rule)] })),
      isNotYetVisible,
      EC2_PROPAGATION,
    );
  } catch (error) {
    if ((error as { name?: string }).name === "InvalidPermission.Duplicate") return;
    throw translateAwsError(error, "AuthorizeSecurityGroupIngress", groupId);
  }
}

export async function deleteSecurityGroup(clients: AwsClients, id: string): Promise<void> {
  await aws("DeleteSecurityGroup", id, () => clients.ec2.send(new DeleteSecurityGroupCommand({ GroupId: id })));
}

export interface TaggedSecurityGroup {
  readonly id: string;
  readonly name: string;
  /** Groups this one's ingress rules name (they must go after it). */
  readonly references: readonly string[];
}

/** Security groups carrying all the given tags, in any VPC: what an environment left behind is found this way. */
export async function findSecurityGroupsByTags(clients: AwsClients, tags: Tags): Promise<TaggedSecurityGroup[]> {
  const found: TaggedSecurityGroup[] = [];
  let token: string | undefined;
  do {
    const out = await aws("DescribeSecurityGroups", `security groups of ${JSON.stringify(tags)}`, () =>
      clients.ec2.send(
        new DescribeSecurityGroupsCommand({
          Filters: Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] })),
          NextToken: token,
        }),
      ),
    );
    for (const g of out.SecurityGroups ?? [])
      found.push({
        id: g.GroupId ?? "",
        name: g.GroupName ?? "",
        references: (g.IpPermissions ?? []).flatMap((p) => (p.UserIdGroupPairs ?? []).map((u) => u.GroupId ?? "")).filter(Boolean),
      });
    token = out.NextToken;
  } while (token);
  return found;
}

export interface ReleaseWait {
  /** How long to keep trying while the group is still in use (DependencyViolation). */
  readonly maxWaitSeconds: number;
  /** First pause between tries; it doubles up to 30 s. */
  readonly minDelayMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

/**
 * Deletes a security group once nothing uses it any more. A deleted load balancer's network
 * interfaces keep its group in use for minutes (DeleteSecurityGroup answers DependencyViolation
 * meanwhile; no SDK waiter covers this), so this retries with backoff within a bound. A group
 * that is already gone counts as deleted. Returns how many tries it took.
 */
export async function deleteSecurityGroupWhenFree(clients: AwsClients, id: string, wait: ReleaseWait): Promise<number> {
  const sleep = wait.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = wait.now ?? Date.now;
  const deadline = now() + wait.maxWaitSeconds * 1000;
  let delay = wait.minDelayMs ?? 2000;
  for (let tries = 1; ; tries++) {
    try {
      await deleteSecurityGroup(clients, id);
      return tries;
    } catch (error) {
      const code = error instanceof AwsError ? error.code : "";
      if (code === "InvalidGroup.NotFound") return tries;
      if (code !== "DependencyViolation") throw error;
      if (now() + delay > deadline)
        throw new KilnError(
          `security group ${id} is still in use after ${Math.round((now() - deadline) / 1000 + wait.maxWaitSeconds)}s ` +
            "(DependencyViolation): a deleted load balancer's network interfaces hold it for up to several minutes",
          { hint: "run kiln destroy again in a few minutes: it finds what is left of the environment by its tags", cause: error },
        );
      await sleep(delay);
      delay = Math.min(delay * 2, 30_000);
    }
  }
}

export interface LaunchSpec {
  readonly ami: string;
  readonly instanceType: string;
  /** Omitted when the instance's network interface carries the group (RunInstances; see ec2-instances.ts). */
  readonly securityGroup?: string;
  readonly userData: string;
  readonly description: string;
  /** Instance profile for boot-time secrets; none when the image needs no AWS access. */
  readonly instanceProfile?: string;
  /** KMS key of the (always encrypted) root volume; the account's default EBS key when unset. */
  readonly rootVolumeKmsKeyId?: string;
  /** The AMI's root volume size. */
  readonly rootVolumeGiB: number;
}

function launchData(spec: LaunchSpec) {
  return {
    ImageId: spec.ami,
    InstanceType: spec.instanceType as never,
    ...(spec.securityGroup ? { SecurityGroupIds: [spec.securityGroup] } : {}),
    UserData: Buffer.from(spec.userData).toString("base64"),
    ...(spec.instanceProfile ? { IamInstanceProfile: { Name: spec.instanceProfile } } : {}),
    // IMDSv2 only: the image's init speaks it; v1 would let SSRF read the instance's credentials.
    MetadataOptions: { HttpTokens: "required" as const, HttpEndpoint: "enabled" as const, HttpPutResponseHopLimit: 1 },
    // The AMI's snapshot is not encrypted (push may not have a key); Encrypted on the root
    // mapping encrypts each instance's copy at launch, with the given key or the account's
    // default EBS key ("Encrypt unencrypted resources", Amazon EBS User Guide). The size is the
    // AMI's own: AWS would take it from the snapshot, the emulator insists on one.
    BlockDeviceMappings: [
      {
        DeviceName: ROOT_DEVICE,
        Ebs: {
          Encrypted: true,
          ...(spec.rootVolumeKmsKeyId ? { KmsKeyId: spec.rootVolumeKmsKeyId } : {}),
          VolumeSize: spec.rootVolumeGiB,
          VolumeType: "gp3" as const,
          DeleteOnTermination: true,
        },
      },
    ],
  };
}

/**
 * Creates the release's launch template, or reuses it when its newest version already launches
 * exactly this (a rollback to a kept release), or adds a version when something changed. The
 * `kiln:config` tag holds a hash of the launch data, so "the same" needs no version read-back.
 */
export async function putLaunchTemplateVersion(
  clients: AwsClients,
  name: string,
  spec: LaunchSpec,
  tags: Tags,
): Promise<{ id: string; version: number; reused: boolean }> {
  const data = launchData(spec);
  const config = createHash("sha256").update(JSON.stringify(data)).digest("hex").slice(0, 32);
  const existing = await aws("DescribeLaunchTemplates", name, () =>
    clients.ec2.send(new DescribeLaunchTemplatesCommand({ Filters: [{ Name: "launch-template-name", Values: [name] }] })),
  );
  const template = existing.LaunchTemplates?.[0];
  if (!template) {
    const out = await aws("CreateLaunchTemplate", name, () =>
      clients.ec2.send(
        new CreateLaunchTemplateCommand({
          LaunchTemplateName: name,
          VersionDescription: spec.description,
          LaunchTemplateData: data,
          TagSpecifications: [{ ResourceType: "launch-template", Tags: tagList({ ...tags, "kiln:config": config }) }],
        }),
      ),
    );
    return { id: out.LaunchTemplate!.LaunchTemplateId!, version: Number(out.LaunchTemplate!.LatestVersionNumber ?? 1), reused: false };
  }
  const id = template.LaunchTemplateId!;
  if ((await launchTemplateTags(clients, [id])).get(id)?.["kiln:config"] === config)
    return { id, version: Number(template.LatestVersionNumber ?? 1), reused: true };
  const out = await aws("CreateLaunchTemplateVersion", name, () =>
    clients.ec2.send(
      new CreateLaunchTemplateVersionCommand({
        LaunchTemplateId: id,
        VersionDescription: spec.description,
        LaunchTemplateData: data,
      }),
    ),
  );
  await aws("CreateTags", id, () => clients.ec2.send(new CreateTagsCommand({ Resources: [id], Tags: tagList({ "kiln:config": config }) })));
  return { id, version: Number(out.LaunchTemplateVersion!.VersionNumber), reused: false };
}

/** Launch templates carrying all the given tags: a release whose instance is gone still has one. */
export interface FoundTemplate {
  readonly id: string;
  readonly name: string;
  readonly tags: Record<string, string>;
}

export async function findLaunchTemplates(clients: AwsClients, tags: Tags): Promise<FoundTemplate[]> {
  const found: FoundTemplate[] = [];
  let token: string | undefined;
  do {
    const out = await aws("DescribeLaunchTemplates", `launch templates of ${JSON.stringify(tags)}`, () =>
      clients.ec2.send(
        new DescribeLaunchTemplatesCommand({
          Filters: Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] })),
          NextToken: token,
        }),
      ),
    );
    for (const t of out.LaunchTemplates ?? [])
      found.push({
        id: t.LaunchTemplateId ?? "",
        name: t.LaunchTemplateName ?? "",
        tags: Object.fromEntries((t.Tags ?? []).map((x) => [x.Key ?? "", x.Value ?? ""])),
      });
    token = out.NextToken;
  } while (token);
  // Tags added after creation (kiln:kept, kiln:config) come from DescribeTags: the emulator's
  // DescribeLaunchTemplates shows only the tags given at creation.
  const later = await launchTemplateTags(
    clients,
    found.map((t) => t.id),
  );
  return found.map((t) => ({ ...t, tags: { ...t.tags, ...later.get(t.id) } }));
}

/** Current tags of launch templates by id (DescribeTags sees every tag, whenever it was added). */
export async function launchTemplateTags(clients: AwsClients, ids: readonly string[]): Promise<Map<string, Record<string, string>>> {
  const tags = new Map<string, Record<string, string>>();
  for (let i = 0; i < ids.length; i += 200) {
    let token: string | undefined;
    do {
      const out = await aws("DescribeTags", `tags of ${ids.slice(i, i + 200).join(",")}`, () =>
        clients.ec2.send(
          new DescribeTagsCommand({
            Filters: [{ Name: "resource-id", Values: ids.slice(i, i + 200) }],
            NextToken: token,
          }),
        ),
      );
      for (const t of out.Tags ?? []) tags.set(t.ResourceId ?? "", { ...tags.get(t.ResourceId ?? ""), [t.Key ?? ""]: t.Value ?? "" });
      token = out.NextToken;
    } while (token);
  }
  return tags;
}

/** AWS answers an unknown launch template id with the first; moto with the second. */
export const LAUNCH_TEMPLATE_GONE = ["InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateName.NotFoundException"];

export async function deleteLaunchTemplate(clients: AwsClients, name: string): Promise<void> {
  const existing = await aws("DescribeLaunchTemplates", name, () =>
    clients.ec2.send(new DescribeLaunchTemplatesCommand({ Filters: [{ Name: "launch-template-name", Values: [name] }] })),
  );
  const id = existing.LaunchTemplates?.[0]?.LaunchTemplateId;
  if (id)
    await awsDelete(
      "DeleteLaunchTemplate",
      name,
      () => clients.ec2.send(new DeleteLaunchTemplateCommand({ LaunchTemplateId: id })),
      (code) => LAUNCH_TEMPLATE_GONE.includes(code),
    );
}

export async function instanceConsole(clients: AwsClients, instanceId: string): Promise<string> {
  const out = await aws("GetConsoleOutput", instanceId, () =>
    clients.ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true })),
  );
  return out.Output ? Buffer.from(out.Output, "base64").toString("utf8") : "";
}
