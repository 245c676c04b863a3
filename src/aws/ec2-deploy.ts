/** EC2 resources a deploy needs: network lookups, security groups, launch templates, instance facts. */
import {
  AuthorizeSecurityGroupIngressCommand, CreateLaunchTemplateCommand, CreateLaunchTemplateVersionCommand, CreateSecurityGroupCommand,
  DeleteLaunchTemplateCommand, DeleteSecurityGroupCommand, DescribeInstanceTypeOfferingsCommand, DescribeLaunchTemplatesCommand,
  DescribeSecurityGroupsCommand, DescribeSubnetsCommand, DescribeVpcsCommand, GetConsoleOutputCommand, type Subnet,
} from "@aws-sdk/client-ec2";
import type { AwsClients } from "./clients.js";
import { aws, translateAwsError } from "./errors.js";

export type Tags = Readonly<Record<string, string>>;
const tagList = (tags: Tags) => Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));

export async function defaultVpc(clients: AwsClients): Promise<string | undefined> {
  const out = await aws("DescribeVpcs", `default VPC in ${clients.region}`, () => clients.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: "isDefault", Values: ["true"] }] })));
  return out.Vpcs?.[0]?.VpcId;
}

export async function describeSubnets(clients: AwsClients, ids: readonly string[], vpc?: string): Promise<Subnet[]> {
  const out = await aws("DescribeSubnets", ids.length ? ids.join(",") : `subnets of ${vpc}`, () => clients.ec2.send(new DescribeSubnetsCommand(
    ids.length ? { SubnetIds: [...ids] } : { Filters: [{ Name: "vpc-id", Values: [vpc ?? ""] }] },
  )));
  return out.Subnets ?? [];
}

export async function instanceTypeOffered(clients: AwsClients, instanceType: string): Promise<boolean> {
  const out = await aws("DescribeInstanceTypeOfferings", `${instanceType} in ${clients.region}`, () => clients.ec2.send(new DescribeInstanceTypeOfferingsCommand({
    LocationType: "region", Filters: [{ Name: "instance-type", Values: [instanceType] }],
  })));
  return (out.InstanceTypeOfferings ?? []).length > 0;
}

export async function findSecurityGroup(clients: AwsClients, vpc: string, name: string): Promise<{ id: string; tags: Record<string, string> } | undefined> {
  const out = await aws("DescribeSecurityGroups", name, () => clients.ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: "group-name", Values: [name] }, { Name: "vpc-id", Values: [vpc] }] })));
  const group = out.SecurityGroups?.[0];
  return group?.GroupId ? { id: group.GroupId, tags: Object.fromEntries((group.Tags ?? []).map((t) => [t.Key ?? "", t.Value ?? ""])) } : undefined;
}

export async function ensureSecurityGroup(clients: AwsClients, vpc: string, name: string, description: string, tags: Tags, ingress: IngressRule[]): Promise<string> {
  const existing = await findSecurityGroup(clients, vpc, name);
  if (existing) return existing.id;
  const out = await aws("CreateSecurityGroup", name, () => clients.ec2.send(new CreateSecurityGroupCommand({
    GroupName: name, Description: description, VpcId: vpc, TagSpecifications: [{ ResourceType: "security-group", Tags: tagList(tags) }],
  })));
  const id = out.GroupId!;
  // No rules yet when the app's port is not known (a lock taken before any image is chosen).
  if (ingress.length) await aws("AuthorizeSecurityGroupIngress", id, () => clients.ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: id, IpPermissions: ingress.map(permission) })));
  return id;
}

type IngressRule = { port: number; fromGroup?: string; cidr?: string };

function permission(rule: IngressRule) {
  return {
    IpProtocol: "tcp", FromPort: rule.port, ToPort: rule.port,
    ...(rule.fromGroup ? { UserIdGroupPairs: [{ GroupId: rule.fromGroup }] } : { IpRanges: [{ CidrIp: rule.cidr ?? "0.0.0.0/0" }] }),
  };
}

/** Adds an ingress rule to an existing group; a rule that is already there is fine. */
export async function allowIngress(clients: AwsClients, groupId: string, rule: IngressRule): Promise<void> {
  try {
    await clients.ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: [permission(rule)] }));
  } catch (error) {
    if ((error as { name?: string }).name === "InvalidPermission.Duplicate") return;
    throw translateAwsError(error, "AuthorizeSecurityGroupIngress", groupId);
  }
}

export async function deleteSecurityGroup(clients: AwsClients, id: string): Promise<void> {
  await aws("DeleteSecurityGroup", id, () => clients.ec2.send(new DeleteSecurityGroupCommand({ GroupId: id })));
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
}

function launchData(spec: LaunchSpec) {
  return {
    ImageId: spec.ami, InstanceType: spec.instanceType as never, ...(spec.securityGroup ? { SecurityGroupIds: [spec.securityGroup] } : {}),
    UserData: Buffer.from(spec.userData).toString("base64"),
    ...(spec.instanceProfile ? { IamInstanceProfile: { Name: spec.instanceProfile } } : {}),
    // IMDSv2 only: the image's init speaks it; v1 would let SSRF read the instance's credentials.
    MetadataOptions: { HttpTokens: "required" as const, HttpEndpoint: "enabled" as const, HttpPutResponseHopLimit: 1 },
  };
}

/** Creates the env's launch template, or a new version of it; returns the version number. */
export async function putLaunchTemplateVersion(clients: AwsClients, name: string, spec: LaunchSpec, tags: Tags): Promise<{ id: string; version: number }> {
  const existing = await aws("DescribeLaunchTemplates", name, () => clients.ec2.send(new DescribeLaunchTemplatesCommand({ Filters: [{ Name: "launch-template-name", Values: [name] }] })));
  const template = existing.LaunchTemplates?.[0];
  if (!template) {
    const out = await aws("CreateLaunchTemplate", name, () => clients.ec2.send(new CreateLaunchTemplateCommand({
      LaunchTemplateName: name, VersionDescription: spec.description, LaunchTemplateData: launchData(spec),
      TagSpecifications: [{ ResourceType: "launch-template", Tags: tagList(tags) }],
    })));
    return { id: out.LaunchTemplate!.LaunchTemplateId!, version: Number(out.LaunchTemplate!.LatestVersionNumber ?? 1) };
  }
  const out = await aws("CreateLaunchTemplateVersion", name, () => clients.ec2.send(new CreateLaunchTemplateVersionCommand({
    LaunchTemplateId: template.LaunchTemplateId, VersionDescription: spec.description, LaunchTemplateData: launchData(spec),
  })));
  return { id: template.LaunchTemplateId!, version: Number(out.LaunchTemplateVersion!.VersionNumber) };
}

/** Launch templates carrying all the given tags: a release whose instance is gone still has one. */
export async function findLaunchTemplates(clients: AwsClients, tags: Tags): Promise<{ name: string; tags: Record<string, string> }[]> {
  const found: { name: string; tags: Record<string, string> }[] = [];
  let token: string | undefined;
  do {
    const out = await aws("DescribeLaunchTemplates", `launch templates of ${JSON.stringify(tags)}`, () => clients.ec2.send(new DescribeLaunchTemplatesCommand({
      Filters: Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] })), NextToken: token,
    })));
    for (const t of out.LaunchTemplates ?? []) found.push({ name: t.LaunchTemplateName ?? "", tags: Object.fromEntries((t.Tags ?? []).map((x) => [x.Key ?? "", x.Value ?? ""])) });
    token = out.NextToken;
  } while (token);
  return found;
}

export async function deleteLaunchTemplate(clients: AwsClients, name: string): Promise<void> {
  const existing = await aws("DescribeLaunchTemplates", name, () => clients.ec2.send(new DescribeLaunchTemplatesCommand({ Filters: [{ Name: "launch-template-name", Values: [name] }] })));
  const id = existing.LaunchTemplates?.[0]?.LaunchTemplateId;
  if (id) await aws("DeleteLaunchTemplate", name, () => clients.ec2.send(new DeleteLaunchTemplateCommand({ LaunchTemplateId: id })));
}

export async function instanceConsole(clients: AwsClients, instanceId: string): Promise<string> {
  const out = await aws("GetConsoleOutput", instanceId, () => clients.ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true })));
  return out.Output ? Buffer.from(out.Output, "base64").toString("utf8") : "";
}
