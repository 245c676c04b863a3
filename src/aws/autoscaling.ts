/** Auto Scaling: one group per release, found by its kiln:* tags. */
import {
  CreateAutoScalingGroupCommand,
  DeleteAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
  UpdateAutoScalingGroupCommand,
  waitUntilGroupNotExists,
  type AutoScalingGroup,
} from "@aws-sdk/client-auto-scaling";
import type { AwsClients } from "./clients.js";
import { awsDelete, awsService } from "./errors.js";

const aws = awsService("autoscaling");

export interface ReleaseGroup {
  readonly name: string;
  readonly tags: Readonly<Record<string, string>>;
  readonly desired: number;
  readonly instances: readonly { id: string; zone: string; lifecycle: string; health: string }[];
  readonly targetGroups: readonly string[];
}

function toGroup(g: AutoScalingGroup): ReleaseGroup {
  return {
    name: g.AutoScalingGroupName ?? "",
    desired: g.DesiredCapacity ?? 0,
    targetGroups: g.TargetGroupARNs ?? [],
    tags: Object.fromEntries((g.Tags ?? []).map((t) => [t.Key ?? "", t.Value ?? ""])),
    instances: (g.Instances ?? []).map((i) => ({
      id: i.InstanceId ?? "",
      zone: i.AvailabilityZone ?? "",
      lifecycle: i.LifecycleState ?? "",
      health: i.HealthStatus ?? "",
    })),
  };
}

/** Groups carrying all the given tags (filtered here: tag filters differ between endpoints). */
export async function findGroups(clients: AwsClients, tags: Readonly<Record<string, string>>): Promise<ReleaseGroup[]> {
  const groups: ReleaseGroup[] = [];
  let token: string | undefined;
  do {
    const out = await aws("DescribeAutoScalingGroups", `groups of ${JSON.stringify(tags)}`, () =>
      clients.autoscaling.send(new DescribeAutoScalingGroupsCommand({ NextToken: token })),
    );
    for (const g of out.AutoScalingGroups ?? []) {
      const group = toGroup(g);
      if (Object.entries(tags).every(([k, v]) => group.tags[k] === v)) groups.push(group);
    }
    token = out.NextToken;
  } while (token);
  return groups.sort((a, b) => (a.name < b.name ? -1 : 1));
}

export interface GroupSpec {
  readonly name: string;
  readonly launchTemplate: { readonly id: string; readonly version: number };
  readonly subnets: readonly string[];
  readonly size: number;
  readonly targetGroup: string;
  readonly tags: Readonly<Record<string, string>>;
}

export async function createGroup(clients: AwsClients, spec: GroupSpec): Promise<void> {
  await aws("CreateAutoScalingGroup", spec.name, () =>
    clients.autoscaling.send(
      new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: spec.name,
        LaunchTemplate: { LaunchTemplateId: spec.launchTemplate.id, Version: String(spec.launchTemplate.version) },
        MinSize: spec.size,
        MaxSize: spec.size,
        DesiredCapacity: spec.size,
        VPCZoneIdentifier: spec.subnets.join(","),
        TargetGroupARNs: [spec.targetGroup],
        HealthCheckType: "ELB",
        HealthCheckGracePeriod: 300,
        Tags: Object.entries(spec.tags).map(([Key, Value]) => ({
          Key,
          Value,
          PropagateAtLaunch: true,
          ResourceId: spec.name,
          ResourceType: "auto-scaling-group",
        })),
      }),
    ),
  );
}

export async function resizeGroup(clients: AwsClients, name: string, size: number): Promise<void> {
  await aws("UpdateAutoScalingGroup", name, () =>
    clients.autoscaling.send(
      new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: name, MinSize: size, MaxSize: size, DesiredCapacity: size }),
    ),
  );
}

export async function deleteGroup(clients: AwsClients, name: string): Promise<void> {
  await awsDelete(
    "DeleteAutoScalingGroup",
    name,
    () => clients.autoscaling.send(new DeleteAutoScalingGroupCommand({ AutoScalingGroupName: name, ForceDelete: true })),
    // Auto Scaling answers a missing group with ValidationError "AutoScalingGroup name not found".
    (code, message) => code === "ValidationError" && /not found/i.test(message),
    "autoscaling",
  );
  await aws("DescribeAutoScalingGroups", name, () =>
    waitUntilGroupNotExists(
      { client: clients.autoscaling, maxWaitTime: 900, minDelay: 2, maxDelay: 15 },
      { AutoScalingGroupNames: [name] },
    ),
  );
}
