/**
 * EC2 instances and Elastic IPs for single-instance environments: one instance per release,
 * one Elastic IP per environment that moves to the new instance at the switch.
 */
import {
  AllocateAddressCommand,
  AssociateAddressCommand,
  DescribeAddressesCommand,
  DescribeInstancesCommand,
  DisassociateAddressCommand,
  ReleaseAddressCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceTerminated,
  type Instance,
} from "@aws-sdk/client-ec2";
import { randomUUID } from "node:crypto";
import type { AwsClients } from "./clients.js";
import { aws, awsDelete } from "./errors.js";
import {
  EC2_PROPAGATION,
  IAM_PROPAGATION,
  isInstanceProfilePropagation,
  isNotYetVisible,
  retryEventualConsistency,
} from "./consistency.js";
import type { Tags } from "./ec2-deploy.js";

const tagList = (tags: Tags) => Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
const tagFilters = (tags: Tags) => Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] }));
const tagMap = (tags: { Key?: string; Value?: string }[] | undefined) =>
  Object.fromEntries((tags ?? []).map((t) => [t.Key ?? "", t.Value ?? ""]));

export interface ElasticIp {
  readonly allocationId: string;
  readonly publicIp: string;
  /** Set while the address is associated with an instance. */
  readonly associationId: string | undefined;
  readonly instanceId: string | undefined;
  readonly tags: Readonly<Record<string, string>>;
}

/** The Elastic IP carrying all the given tags, if any. */
export async function findAddress(clients: AwsClients, tags: Tags): Promise<ElasticIp | undefined> {
  const out = await aws("DescribeAddresses", `Elastic IP of ${JSON.stringify(tags)}`, () =>
    clients.ec2.send(new DescribeAddressesCommand({ Filters: tagFilters(tags) })),
  );
  const address = out.Addresses?.find((a) => a.AllocationId);
  if (!address) return undefined;
  return {
    allocationId: address.AllocationId!,
    publicIp: address.PublicIp ?? "",
    tags: tagMap(address.Tags),
    // Unassociated addresses come back with empty strings rather than absent fields.
    associationId: address.AssociationId || undefined,
    instanceId: address.InstanceId || undefined,
  };
}

export async function allocateAddress(clients: AwsClients, tags: Tags): Promise<string> {
  const out = await aws("AllocateAddress", `Elastic IP for ${JSON.stringify(tags)}`, () =>
    clients.ec2.send(
      new AllocateAddressCommand({
        Domain: "vpc",
        TagSpecifications: [{ ResourceType: "elastic-ip", Tags: tagList(tags) }],
      }),
    ),
  );
  return out.AllocationId!;
}

/** Moves the address to the instance in one call (AllowReassociation): there is no moment without an owner. */
export async function associateAddress(clients: AwsClients, allocationId: string, instanceId: string): Promise<void> {
  await aws("AssociateAddress", `${allocationId} → ${instanceId}`, () =>
    clients.ec2.send(new AssociateAddressCommand({ AllocationId: allocationId, InstanceId: instanceId, AllowReassociation: true })),
  );
}

export async function disassociateAddress(clients: AwsClients, associationId: string): Promise<void> {
  await awsDelete(
    "DisassociateAddress",
    associationId,
    () => clients.ec2.send(new DisassociateAddressCommand({ AssociationId: associationId })),
    (code) => code === "InvalidAssociationID.NotFound",
  );
}

export async function releaseAddress(clients: AwsClients, allocationId: string): Promise<void> {
  await awsDelete(
    "ReleaseAddress",
    allocationId,
    () => clients.ec2.send(new ReleaseAddressCommand({ AllocationId: allocationId })),
    (code) => code === "InvalidAllocationID.NotFound",
  );
}

export interface ReleaseInstance {
  readonly id: string;
  readonly state: string;
  readonly zone: string;
  readonly publicIp: string | undefined;
  readonly tags: Readonly<Record<string, string>>;
}

function toInstance(i: Instance): ReleaseInstance {
  return {
    id: i.InstanceId ?? "",
    state: i.State?.Name ?? "unknown",
    zone: i.Placement?.AvailabilityZone ?? "",
    publicIp: i.PublicIpAddress || undefined,
    tags: tagMap(i.Tags),
  };
}

/**
 * Instances carrying all the given tags in one of the given states. Terminated instances stay
 * visible for about an hour, so callers always say which states they mean.
 */
export async function findInstances(clients: AwsClients, tags: Tags, states: readonly string[]): Promise<ReleaseInstance[]> {
  const found: ReleaseInstance[] = [];
  let token: string | undefined;
  do {
    const out = await aws("DescribeInstances", `instances of ${JSON.stringify(tags)}`, () =>
      clients.ec2.send(
        new DescribeInstancesCommand({
          Filters: [...tagFilters(tags), { Name: "instance-state-name", Values: [...states] }],
          NextToken: token,
        }),
      ),
    );
    for (const r of out.Reservations ?? []) for (const i of r.Instances ?? []) found.push(toInstance(i));
    token = out.NextToken;
  } while (token);
  return found.sort((a, b) => (a.id < b.id ? -1 : 1));
}

export async function describeInstance(clients: AwsClients, id: string): Promise<ReleaseInstance | undefined> {
  const out = await aws("DescribeInstances", id, () => clients.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] })));
  const instance = out.Reservations?.[0]?.Instances?.[0];
  return instance ? toInstance(instance) : undefined;
}

export interface InstanceSpec {
  readonly launchTemplate: { readonly id: string; readonly version: number };
  readonly subnet: string;
  readonly securityGroup: string;
  readonly tags: Tags;
}

/**
 * One instance from the release's launch template. Placement is given here, on the network
 * interface, because only a network interface can ask for a public IP in a subnet that does
 * not assign one by default (the health check reaches the instance on it before the switch),
 * and AWS refuses a network interface next to the template's own security groups.
 */
export async function runInstance(clients: AwsClients, spec: InstanceSpec): Promise<string> {
  // One token for every attempt of this launch: a retry after an answer lost in transit gets the
  // instance the first attempt started instead of a second one (EC2 idempotency).
  const clientToken = randomUUID();
  const send = () =>
    clients.ec2.send(
      new RunInstancesCommand({
        ClientToken: clientToken,
        MinCount: 1,
        MaxCount: 1,
        LaunchTemplate: { LaunchTemplateId: spec.launchTemplate.id, Version: String(spec.launchTemplate.version) },
        NetworkInterfaces: [
          {
            DeviceIndex: 0,
            SubnetId: spec.subnet,
            Groups: [spec.securityGroup],
            AssociatePublicIpAddress: true,
            DeleteOnTermination: true,
          },
        ],
        // Tagged at creation: an interruption right after this call still leaves a findable instance.
        TagSpecifications: [
          { ResourceType: "instance", Tags: tagList(spec.tags) },
          { ResourceType: "volume", Tags: tagList(spec.tags) },
        ],
      }),
    );
  // A refused launch launched nothing, so it is safe to repeat: a launch template or instance
  // profile created a moment ago may not be visible to EC2 yet (see consistency.ts).
  const out = await aws("RunInstances", `${spec.launchTemplate.id} v${spec.launchTemplate.version} in ${spec.subnet}`, () =>
    retryEventualConsistency(
      () => retryEventualConsistency(send, isNotYetVisible, EC2_PROPAGATION),
      isInstanceProfilePropagation,
      IAM_PROPAGATION,
    ),
  );
  return out.Instances![0]!.InstanceId!;
}

/** Resolves false when the instance did not reach running in time (it stopped or failed). */
export async function waitInstanceRunning(clients: AwsClients, id: string, maxWaitSeconds: number): Promise<boolean> {
  // The first check is immediate; the SDK refuses a maximum wait that is not above the first delay.
  return waitUntilInstanceRunning(
    { client: clients.ec2, maxWaitTime: Math.max(3, maxWaitSeconds), minDelay: 2, maxDelay: 10 },
    { InstanceIds: [id] },
  ).then(
    () => true,
    () => false,
  );
}

export async function terminateInstances(clients: AwsClients, ids: readonly string[]): Promise<void> {
  if (!ids.length) return;
  await aws("TerminateInstances", ids.join(","), () => clients.ec2.send(new TerminateInstancesCommand({ InstanceIds: [...ids] })));
  await aws("DescribeInstances", ids.join(","), () =>
    waitUntilInstanceTerminated({ client: clients.ec2, maxWaitTime: 900, minDelay: 2, maxDelay: 15 }, { InstanceIds: [...ids] }),
  );
}

/**
 * The zone of each instance that still exists, by id (kiln logs --env prefixes lines with it). A
 * filter, not InstanceIds: one unknown id would fail the whole call, and gone instances are expected.
 */
export async function instanceZones(clients: AwsClients, ids: readonly string[]): Promise<Map<string, string>> {
  const zones = new Map<string, string>();
  // DescribeInstances takes at most 200 values per filter.
  for (let at = 0; at < ids.length; at += 200) {
    const chunk = ids.slice(at, at + 200);
    let token: string | undefined;
    do {
      const out = await aws("DescribeInstances", `instances ${chunk.join(", ")}`, () =>
        clients.ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: "instance-id", Values: chunk }], NextToken: token })),
      );
      for (const r of out.Reservations ?? [])
        for (const i of r.Instances ?? []) zones.set(i.InstanceId ?? "", i.Placement?.AvailabilityZone ?? "");
      token = out.NextToken;
    } while (token);
  }
  return zones;
}
