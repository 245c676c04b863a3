/** Application Load Balancer: the env's ALB and listener, one target group per release, health and tags. */
import {
  AddTagsCommand,
  CreateListenerCommand,
  CreateLoadBalancerCommand,
  CreateTargetGroupCommand,
  DeleteListenerCommand,
  DeleteLoadBalancerCommand,
  DeleteTargetGroupCommand,
  DescribeListenersCommand,
  DescribeLoadBalancersCommand,
  DescribeTagsCommand,
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  ModifyListenerCommand,
  ModifyTargetGroupAttributesCommand,
  RemoveTagsCommand,
  waitUntilLoadBalancersDeleted,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import type { AwsClients } from "./clients.js";
import { awsDelete, awsService } from "./errors.js";

const aws = awsService("elasticloadbalancing");

export type Tags = Readonly<Record<string, string>>;
const tagList = (tags: Tags) => Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));

export interface LoadBalancer {
  readonly arn: string;
  readonly dnsName: string;
  readonly listenerArn: string | undefined;
  /** Target group the listener forwards to (the live release), if any. */
  readonly liveTargetGroup: string | undefined;
}

export async function findLoadBalancer(clients: AwsClients, name: string): Promise<LoadBalancer | undefined> {
  let out;
  try {
    out = await clients.elbv2.send(new DescribeLoadBalancersCommand({ Names: [name] }));
  } catch (error) {
    if ((error as { name?: string }).name === "LoadBalancerNotFoundException") return undefined;
    return aws("DescribeLoadBalancers", name, () => Promise.reject(error));
  }
  const lb = out.LoadBalancers?.[0];
  if (!lb?.LoadBalancerArn) return undefined;
  const listeners = await aws("DescribeListeners", name, () =>
    clients.elbv2.send(new DescribeListenersCommand({ LoadBalancerArn: lb.LoadBalancerArn })),
  );
  const listener = listeners.Listeners?.[0];
  const forward = listener?.DefaultActions?.find((a) => a.Type === "forward");
  return {
    arn: lb.LoadBalancerArn,
    dnsName: lb.DNSName ?? "",
    listenerArn: listener?.ListenerArn,
    liveTargetGroup:
      forward?.TargetGroupArn ?? forward?.ForwardConfig?.TargetGroups?.sort((a, b) => (b.Weight ?? 0) - (a.Weight ?? 0))[0]?.TargetGroupArn,
  };
}

export async function createLoadBalancer(
  clients: AwsClients,
  name: string,
  subnets: readonly string[],
  securityGroup: string,
  tags: Tags,
): Promise<string> {
  const out = await aws("CreateLoadBalancer", name, () =>
    clients.elbv2.send(
      new CreateLoadBalancerCommand({
        Name: name,
        Subnets: [...subnets],
        SecurityGroups: [securityGroup],
        Scheme: "internet-facing",
        Type: "application",
        Tags: tagList(tags),
      }),
    ),
  );
  return out.LoadBalancers![0]!.LoadBalancerArn!;
}

/** The listener answers 503 until a release is switched in. */
export async function createListener(clients: AwsClients, lbArn: string, certificateArn: string | undefined): Promise<string> {
  const out = await aws("CreateListener", lbArn, () =>
    clients.elbv2.send(
      new CreateListenerCommand({
        LoadBalancerArn: lbArn,
        Protocol: certificateArn ? "HTTPS" : "HTTP",
        Port: certificateArn ? 443 : 80,
        ...(certificateArn ? { Certificates: [{ CertificateArn: certificateArn }] } : {}),
        DefaultActions: [
          { Type: "fixed-response", FixedResponseConfig: { StatusCode: "503", ContentType: "text/plain", MessageBody: "no release yet" } },
        ],
      }),
    ),
  );
  return out.Listeners![0]!.ListenerArn!;
}

export async function forwardListener(clients: AwsClients, listenerArn: string, targetGroupArn: string): Promise<void> {
  await aws("ModifyListener", listenerArn, () =>
    clients.elbv2.send(
      new ModifyListenerCommand({ ListenerArn: listenerArn, DefaultActions: [{ Type: "forward", TargetGroupArn: targetGroupArn }] }),
    ),
  );
}

/** Weighted forward (a canary): each target group gets weight / sum of weights of new requests. */
export async function forwardWeighted(
  clients: AwsClients,
  listenerArn: string,
  groups: readonly { arn: string; weight: number }[],
): Promise<void> {
  await aws("ModifyListener", listenerArn, () =>
    clients.elbv2.send(
      new ModifyListenerCommand({
        ListenerArn: listenerArn,
        DefaultActions: [
          { Type: "forward", ForwardConfig: { TargetGroups: groups.map((g) => ({ TargetGroupArn: g.arn, Weight: g.weight })) } },
        ],
      }),
    ),
  );
}

export async function answerUnavailable(clients: AwsClients, listenerArn: string): Promise<void> {
  await aws("ModifyListener", listenerArn, () =>
    clients.elbv2.send(
      new ModifyListenerCommand({
        ListenerArn: listenerArn,
        DefaultActions: [
          { Type: "fixed-response", FixedResponseConfig: { StatusCode: "503", ContentType: "text/plain", MessageBody: "no release" } },
        ],
      }),
    ),
  );
}

export async function deleteLoadBalancer(clients: AwsClients, lb: LoadBalancer): Promise<void> {
  if (lb.listenerArn)
    await awsDelete(
      "DeleteListener",
      lb.listenerArn,
      () => clients.elbv2.send(new DeleteListenerCommand({ ListenerArn: lb.listenerArn })),
      (code) => code === "ListenerNotFoundException" || code === "ListenerNotFound",
      "elasticloadbalancing",
    );
  await awsDelete(
    "DeleteLoadBalancer",
    lb.arn,
    () => clients.elbv2.send(new DeleteLoadBalancerCommand({ LoadBalancerArn: lb.arn })),
    (code) => code === "LoadBalancerNotFoundException" || code === "LoadBalancerNotFound",
    "elasticloadbalancing",
  );
  await aws("DescribeLoadBalancers", lb.arn, () =>
    waitUntilLoadBalancersDeleted({ client: clients.elbv2, maxWaitTime: 600, minDelay: 2, maxDelay: 10 }, { LoadBalancerArns: [lb.arn] }),
  );
}

export interface TargetGroupSpec {
  readonly name: string;
  readonly vpc: string;
  readonly port: number;
  readonly healthPath: string;
  readonly intervalSeconds: number;
  readonly healthyThreshold: number;
  readonly deregistrationDelaySeconds: number;
  readonly tags: Tags;
}

export async function ensureTargetGroup(clients: AwsClients, spec: TargetGroupSpec): Promise<string> {
  const existing = await findTargetGroup(clients, spec.name);
  if (existing) return existing;
  const out = await aws("CreateTargetGroup", spec.name, () =>
    clients.elbv2.send(
      new CreateTargetGroupCommand({
        Name: spec.name,
        Protocol: "HTTP",
        Port: spec.port,
        VpcId: spec.vpc,
        TargetType: "instance",
        HealthCheckProtocol: "HTTP",
        HealthCheckPath: spec.healthPath,
        HealthCheckIntervalSeconds: Math.max(5, spec.intervalSeconds),
        HealthyThresholdCount: Math.max(2, spec.healthyThreshold),
        UnhealthyThresholdCount: 2,
        Matcher: { HttpCode: "200-399" },
        Tags: tagList(spec.tags),
      }),
    ),
  );
  const arn = out.TargetGroups![0]!.TargetGroupArn!;
  await aws("ModifyTargetGroupAttributes", arn, () =>
    clients.elbv2.send(
      new ModifyTargetGroupAttributesCommand({
        TargetGroupArn: arn,
        Attributes: [{ Key: "deregistration_delay.timeout_seconds", Value: String(spec.deregistrationDelaySeconds) }],
      }),
    ),
  );
  return arn;
}

export async function findTargetGroup(clients: AwsClients, name: string): Promise<string | undefined> {
  try {
    const out = await clients.elbv2.send(new DescribeTargetGroupsCommand({ Names: [name] }));
    return out.TargetGroups?.[0]?.TargetGroupArn;
  } catch (error) {
    if ((error as { name?: string }).name === "TargetGroupNotFoundException") return undefined;
    return aws("DescribeTargetGroups", name, () => Promise.reject(error));
  }
}

export async function deleteTargetGroup(clients: AwsClients, arn: string): Promise<void> {
  await awsDelete(
    "DeleteTargetGroup",
    arn,
    () => clients.elbv2.send(new DeleteTargetGroupCommand({ TargetGroupArn: arn })),
    (code) => code === "TargetGroupNotFoundException" || code === "TargetGroupNotFound",
    "elasticloadbalancing",
  );
}

export async function targetHealth(clients: AwsClients, arn: string): Promise<{ id: string; state: string; reason?: string }[]> {
  const out = await aws("DescribeTargetHealth", arn, () => clients.elbv2.send(new DescribeTargetHealthCommand({ TargetGroupArn: arn })));
  return (out.TargetHealthDescriptions ?? []).map((d) => ({
    id: d.Target?.Id ?? "",
    state: d.TargetHealth?.State ?? "unknown",
    ...(d.TargetHealth?.Reason ? { reason: d.TargetHealth.Reason } : {}),
  }));
}

export async function resourceTags(clients: AwsClients, arn: string): Promise<Record<string, string>> {
  const out = await aws("DescribeTags", arn, () => clients.elbv2.send(new DescribeTagsCommand({ ResourceArns: [arn] })));
  return Object.fromEntries((out.TagDescriptions?.[0]?.Tags ?? []).map((t) => [t.Key ?? "", t.Value ?? ""]));
}

export async function setTags(clients: AwsClients, arn: string, tags: Tags): Promise<void> {
  await aws("AddTags", arn, () => clients.elbv2.send(new AddTagsCommand({ ResourceArns: [arn], Tags: tagList(tags) })));
}

export async function removeTags(clients: AwsClients, arn: string, keys: readonly string[]): Promise<void> {
  if (keys.length)
    await aws("RemoveTags", arn, () => clients.elbv2.send(new RemoveTagsCommand({ ResourceArns: [arn], TagKeys: [...keys] })));
}
