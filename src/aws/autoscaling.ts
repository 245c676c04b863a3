/** Auto Scaling: one group per release, found by its kiln:* tags. */
import {
  CreateAutoScalingGroupCommand,
  DeleteAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeScalingActivitiesCommand,
  UpdateAutoScalingGroupCommand,
  waitUntilGroupInService,
  waitUntilGroupNotExists,
  type AutoScalingGroup,
} from "@aws-sdk/client-auto-scaling";
import type { AwsClients } from "./clients.js";
import { AwsError, awsDelete, awsService } from "./errors.js";
import { IAM_PROPAGATION, isInstanceProfilePropagation, retryEventualConsistency } from "./consistency.js";

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
  const send = () =>
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
    );
  // Auto Scaling checks the launch template's instance profile at creation and refuses one IAM
  // has not spread yet (ValidationError); nothing was created, so the call is repeated.
  try {
    await aws("CreateAutoScalingGroup", spec.name, () => retryEventualConsistency(send, isInstanceProfilePropagation, IAM_PROPAGATION));
  } catch (error) {
    if (!(error instanceof AwsError && /^AlreadyExists(Fault)?$/.test(error.code))) throw error;
    // The group's name is the release's: it exists because an earlier attempt made it (an answer
    // lost after Auto Scaling did the work, or an interrupted promote). Done if it is that group.
    const existing = await describeGroupTemplate(clients, spec.name);
    if (existing?.id === spec.launchTemplate.id && existing.version === String(spec.launchTemplate.version)) return;
    throw new AwsError(
      "CreateAutoScalingGroup",
      spec.name,
      "AlreadyExists",
      `a group of this name already exists with launch template ${existing ? `${existing.id} version ${existing.version}` : "unknown"}`,
      error.requestId,
      "delete that group (kiln destroy, or the EC2 console) and run the promote again",
      error,
    );
  }
}

/** The launch template a group launches from, as its description names it. */
async function describeGroupTemplate(clients: AwsClients, name: string): Promise<{ id: string; version: string } | undefined> {
  const out = await aws("DescribeAutoScalingGroups", name, () =>
    clients.autoscaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] })),
  );
  const template = out.AutoScalingGroups?.[0]?.LaunchTemplate;
  return template?.LaunchTemplateId ? { id: template.LaunchTemplateId, version: template.Version ?? "" } : undefined;
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

/**
 * Why a group cannot launch, if it says so: its newest scaling activity, when that failed or was
 * cancelled (a wrong architecture, an instance quota, no capacity in the zones, an invalid
 * instance profile…). Auto Scaling keeps retrying such launches, so the group never reaches
 * InService and only the activity tells what is wrong.
 */
export async function failedLaunch(clients: AwsClients, name: string): Promise<string | undefined> {
  const out = await aws("DescribeScalingActivities", name, () =>
    clients.autoscaling.send(new DescribeScalingActivitiesCommand({ AutoScalingGroupName: name, MaxRecords: 10 })),
  );
  const newest = [...(out.Activities ?? [])].sort((a, b) => (b.StartTime?.getTime() ?? 0) - (a.StartTime?.getTime() ?? 0))[0];
  if (!newest || (newest.StatusCode !== "Failed" && newest.StatusCode !== "Cancelled")) return undefined;
  return (newest.StatusMessage || newest.Description || newest.StatusCode).replace(/\s+/g, " ").trim();
}

export type InService = { readonly inService: true } | { readonly inService: false; readonly detail: string };

/**
 * Waits for every instance of the group to be InService, with the SDK's waiter in rounds that
 * grow from `firstRoundSeconds`; between rounds the group's scaling activities are read, and a
 * failed launch ends the wait at once with Auto Scaling's own reason instead of a timeout.
 */
export async function waitGroupInService(
  clients: AwsClients,
  name: string,
  timeoutSeconds: number,
  firstRoundSeconds = 15,
): Promise<InService> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let round = Math.max(3, firstRoundSeconds);
  for (;;) {
    const left = Math.floor((deadline - Date.now()) / 1000);
    // The waiter refuses a maximum wait not above its first delay (2 s).
    if (left < 3) break;
    const done = await waitUntilGroupInService(
      { client: clients.autoscaling, maxWaitTime: Math.min(round, left), minDelay: 2, maxDelay: 15 },
      { AutoScalingGroupNames: [name] },
    ).then(
      () => true,
      () => false,
    );
    if (done) return { inService: true };
    const reason = await failedLaunch(clients, name);
    if (reason) return { inService: false, detail: `the Auto Scaling group ${name} could not launch instances: ${reason}` };
    round = Math.min(round * 2, 60);
  }
  const reason = await failedLaunch(clients, name);
  return {
    inService: false,
    detail: reason
      ? `the Auto Scaling group ${name} could not launch instances: ${reason}`
      : `the Auto Scaling group ${name} did not reach InService in ${timeoutSeconds}s`,
  };
}
