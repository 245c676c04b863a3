/**
 * Everything kiln created for one app, counted by kiln's tags (kiln:app), the way a user would
 * look for what a failed run left behind: the fault-injection tests compare these counts with a
 * fault-free run's, so any extra resource is an orphan.
 */
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import {
  DescribeAddressesCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
} from "@aws-sdk/client-ec2";
import { DescribeLoadBalancersCommand, DescribeTagsCommand, DescribeTargetGroupsCommand } from "@aws-sdk/client-elastic-load-balancing-v2";
import { GetInstanceProfileCommand, GetRoleCommand, ListInstanceProfilesCommand, ListRolesCommand } from "@aws-sdk/client-iam";
import type { AwsClients } from "../../src/aws/clients.js";

export const RESOURCE_KINDS = [
  "instances",
  "autoScalingGroups",
  "launchTemplates",
  "targetGroups",
  "loadBalancers",
  "securityGroups",
  "snapshots",
  "images",
  "elasticIps",
  "instanceProfiles",
  "roles",
] as const;
export type ResourceCounts = Record<(typeof RESOURCE_KINDS)[number], number>;

type Tag = { Key?: string; Value?: string };
const hasApp = (tags: Tag[] | undefined, app: string) => (tags ?? []).some((t) => t.Key === "kiln:app" && t.Value === app);
const appFilter = (app: string) => [{ Name: "tag:kiln:app", Values: [app] }];

async function elbTagged(clients: AwsClients, arns: string[], app: string): Promise<number> {
  let n = 0;
  // DescribeTags takes at most 20 ARNs.
  for (let i = 0; i < arns.length; i += 20) {
    const out = await clients.elbv2.send(new DescribeTagsCommand({ ResourceArns: arns.slice(i, i + 20) }));
    n += (out.TagDescriptions ?? []).filter((d) => hasApp(d.Tags, app)).length;
  }
  return n;
}

/** Counts with one-attempt clients that no fault reaches (the caller turns faults off first). */
export async function countTaggedResources(clients: AwsClients, app: string): Promise<ResourceCounts> {
  const reservations = (await clients.ec2.send(new DescribeInstancesCommand({ Filters: appFilter(app) }))).Reservations ?? [];
  const instances = reservations
    .flatMap((r) => r.Instances ?? [])
    .filter((i) => !["terminated", "shutting-down"].includes(i.State?.Name ?? ""));
  const groups = ((await clients.autoscaling.send(new DescribeAutoScalingGroupsCommand({}))).AutoScalingGroups ?? []).filter((g) =>
    hasApp(g.Tags, app),
  );
  const templates = (await clients.ec2.send(new DescribeLaunchTemplatesCommand({ Filters: appFilter(app) }))).LaunchTemplates ?? [];
  const tgs = (await clients.elbv2.send(new DescribeTargetGroupsCommand({}))).TargetGroups ?? [];
  const lbs = (await clients.elbv2.send(new DescribeLoadBalancersCommand({}))).LoadBalancers ?? [];
  const sgs = (await clients.ec2.send(new DescribeSecurityGroupsCommand({ Filters: appFilter(app) }))).SecurityGroups ?? [];
  // A snapshot counts when tagged, or when its description names the app: an upload that failed
  // before its tags were set must show up too.
  const snapshots = ((await clients.ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ["self"] }))).Snapshots ?? []).filter(
    (s) => hasApp(s.Tags, app) || (s.Description ?? "").startsWith(`kiln ${app}:`),
  );
  const images = ((await clients.ec2.send(new DescribeImagesCommand({ Owners: ["self"], Filters: appFilter(app) }))).Images ?? []).filter(
    (i) => i.State !== "deregistered",
  );
  const addresses = (await clients.ec2.send(new DescribeAddressesCommand({ Filters: appFilter(app) }))).Addresses ?? [];
  let roles = 0;
  for (const role of (await clients.iam.send(new ListRolesCommand({}))).Roles ?? []) {
    const full = await clients.iam.send(new GetRoleCommand({ RoleName: role.RoleName }));
    if (hasApp(full.Role?.Tags, app)) roles++;
  }
  let profiles = 0;
  for (const profile of (await clients.iam.send(new ListInstanceProfilesCommand({}))).InstanceProfiles ?? []) {
    const full = await clients.iam.send(new GetInstanceProfileCommand({ InstanceProfileName: profile.InstanceProfileName }));
    if (hasApp(full.InstanceProfile?.Tags, app)) profiles++;
  }
  return {
    instances: instances.length,
    autoScalingGroups: groups.length,
    launchTemplates: templates.length,
    targetGroups: await elbTagged(
      clients,
      tgs.map((t) => t.TargetGroupArn!),
      app,
    ),
    loadBalancers: await elbTagged(
      clients,
      lbs.map((l) => l.LoadBalancerArn!),
      app,
    ),
    securityGroups: sgs.length,
    snapshots: snapshots.length,
    images: images.length,
    elasticIps: addresses.length,
    instanceProfiles: profiles,
    roles,
  };
}

/** What `after` holds beyond `baseline`, by kind (orphans when `baseline` is a fault-free run's end state). */
export function excess(after: ResourceCounts, baseline: ResourceCounts): Partial<ResourceCounts> {
  const extra: Partial<ResourceCounts> = {};
  for (const kind of RESOURCE_KINDS) if (after[kind] > baseline[kind]) extra[kind] = after[kind] - baseline[kind];
  return extra;
}
