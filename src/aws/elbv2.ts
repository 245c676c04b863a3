/** Application Load Balancer: the env's ALB and listener, one target group per release, health and tags. */
import {
  AddTagsCommand,
  CreateListenerCommand,
  CreateLoadBalancerCommand,
  CreateRuleCommand,
  CreateTargetGroupCommand,
  DeleteListenerCommand,
  DeleteLoadBalancerCommand,
  DeleteRuleCommand,
  DeleteTargetGroupCommand,
  DescribeListenersCommand,
  DescribeLoadBalancerAttributesCommand,
  DescribeLoadBalancersCommand,
  DescribeRulesCommand,
  DescribeTagsCommand,
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  type Listener,
  ModifyListenerCommand,
  ModifyLoadBalancerAttributesCommand,
  ModifyTargetGroupAttributesCommand,
  RemoveTagsCommand,
  type Action,
  type Rule,
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
  const listener = servingListener(listeners.Listeners ?? []);
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

const isRedirect = (l: Listener) => l.DefaultActions?.some((a) => a.Type === "redirect") ?? false;

/** The listener that serves the app: the HTTPS one when there is one, never the HTTP→HTTPS redirect. */
function servingListener(listeners: readonly Listener[]): Listener | undefined {
  const serving = listeners.filter((l) => !isRedirect(l));
  return serving.find((l) => l.Protocol === "HTTPS") ?? serving[0];
}

/** An HTTPS listener's certificate and security policy. */
export interface ListenerTls {
  readonly certificateArn: string;
  readonly sslPolicy: string;
}

/** What the environment's security settings depend on of one listener. */
export interface ListenerFacts {
  readonly arn: string;
  readonly port: number;
  readonly protocol: string;
  readonly sslPolicy: string | undefined;
  readonly certificateArn: string | undefined;
  readonly redirectsToHttps: boolean;
  readonly defaultActions: Listener["DefaultActions"];
}

export async function describeListeners(clients: AwsClients, lbArn: string): Promise<ListenerFacts[]> {
  const out = await aws("DescribeListeners", lbArn, () => clients.elbv2.send(new DescribeListenersCommand({ LoadBalancerArn: lbArn })));
  return (out.Listeners ?? []).map((l) => ({
    arn: l.ListenerArn ?? "",
    port: l.Port ?? 0,
    protocol: l.Protocol ?? "",
    sslPolicy: l.SslPolicy,
    certificateArn: l.Certificates?.[0]?.CertificateArn,
    redirectsToHttps: l.DefaultActions?.some((a) => a.Type === "redirect" && a.RedirectConfig?.Protocol === "HTTPS") ?? false,
    defaultActions: l.DefaultActions,
  }));
}

const NO_RELEASE_YET = [
  { Type: "fixed-response" as const, FixedResponseConfig: { StatusCode: "503", ContentType: "text/plain", MessageBody: "no release yet" } },
];

/**
 * The listener that serves the app: HTTPS on 443 with the certificate and security policy, or
 * HTTP on 80. It answers 503 until a release is switched in, unless `actions` carries over what
 * another listener serves (an environment that gains https keeps serving through the change).
 */
export async function createListener(
  clients: AwsClients,
  lbArn: string,
  tls: ListenerTls | undefined,
  actions: Listener["DefaultActions"] = NO_RELEASE_YET,
): Promise<string> {
  const out = await aws("CreateListener", lbArn, () =>
    clients.elbv2.send(
      new CreateListenerCommand({
        LoadBalancerArn: lbArn,
        Protocol: tls ? "HTTPS" : "HTTP",
        Port: tls ? 443 : 80,
        ...(tls ? { Certificates: [{ CertificateArn: tls.certificateArn }], SslPolicy: tls.sslPolicy } : {}),
        DefaultActions: actions,
      }),
    ),
  );
  return out.Listeners![0]!.ListenerArn!;
}

/** Replaces what a listener does with every request (undefined: answer 503 until a release is switched in). */
export async function setListenerActions(
  clients: AwsClients,
  listenerArn: string,
  actions: Listener["DefaultActions"] = NO_RELEASE_YET,
): Promise<void> {
  await aws("ModifyListener", listenerArn, () =>
    clients.elbv2.send(new ModifyListenerCommand({ ListenerArn: listenerArn, DefaultActions: actions })),
  );
}

export async function deleteListener(clients: AwsClients, listenerArn: string): Promise<void> {
  await awsDelete(
    "DeleteListener",
    listenerArn,
    () => clients.elbv2.send(new DeleteListenerCommand({ ListenerArn: listenerArn })),
    (code) => code === "ListenerNotFoundException" || code === "ListenerNotFound",
    "elasticloadbalancing",
  );
}

/** Puts the environment's certificate and security policy back on its HTTPS listener. */
export async function setListenerTls(clients: AwsClients, listenerArn: string, tls: ListenerTls): Promise<void> {
  await aws("ModifyListener", listenerArn, () =>
    clients.elbv2.send(
      new ModifyListenerCommand({
        ListenerArn: listenerArn,
        Certificates: [{ CertificateArn: tls.certificateArn }],
        SslPolicy: tls.sslPolicy,
      }),
    ),
  );
}

/** HTTP on 80 answers every request with a permanent redirect to the same URL on HTTPS. */
const REDIRECT_TO_HTTPS = [
  {
    Type: "redirect" as const,
    RedirectConfig: {
      Protocol: "HTTPS",
      Port: "443",
      Host: "#{host}",
      Path: "/#{path}",
      Query: "#{query}",
      StatusCode: "HTTP_301" as const,
    },
  },
];

/** The HTTP listener on 80 becomes (or is created as) a redirect to HTTPS. */
export async function redirectHttpToHttps(clients: AwsClients, lbArn: string, httpListenerArn: string | undefined): Promise<void> {
  if (httpListenerArn) await setListenerActions(clients, httpListenerArn, REDIRECT_TO_HTTPS);
  else
    await aws("CreateListener", lbArn, () =>
      clients.elbv2.send(
        new CreateListenerCommand({ LoadBalancerArn: lbArn, Protocol: "HTTP", Port: 80, DefaultActions: REDIRECT_TO_HTTPS }),
      ),
    );
}

export async function loadBalancerAttributes(clients: AwsClients, lbArn: string): Promise<Record<string, string>> {
  const out = await aws("DescribeLoadBalancerAttributes", lbArn, () =>
    clients.elbv2.send(new DescribeLoadBalancerAttributesCommand({ LoadBalancerArn: lbArn })),
  );
  return Object.fromEntries((out.Attributes ?? []).map((a) => [a.Key ?? "", a.Value ?? ""]));
}

export async function setLoadBalancerAttributes(
  clients: AwsClients,
  lbArn: string,
  attributes: Readonly<Record<string, string>>,
): Promise<void> {
  await aws("ModifyLoadBalancerAttributes", lbArn, () =>
    clients.elbv2.send(
      new ModifyLoadBalancerAttributesCommand({
        LoadBalancerArn: lbArn,
        Attributes: Object.entries(attributes).map(([Key, Value]) => ({ Key, Value })),
      }),
    ),
  );
}

export async function forwardListener(clients: AwsClients, listenerArn: string, targetGroupArn: string): Promise<void> {
  await setListenerActions(clients, listenerArn, [{ Type: "forward", TargetGroupArn: targetGroupArn }]);
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

/**
 * Requests carrying this header (value: the release) reach a release attached by a listener rule
 * before it serves: the rule is what makes AWS health-check its target group while the listener
 * has no release to forward to yet (a first promote).
 */
export const RELEASE_HEADER = "X-Kiln-Release";

/** The target groups a forward action names, with their weights (a single TargetGroupArn weighs 1). */
function forwardGroups(action: Action | undefined): { arn: string; weight: number }[] {
  if (action?.Type !== "forward") return [];
  const tuples = action.ForwardConfig?.TargetGroups ?? [];
  if (tuples.length > 0) return tuples.map((t) => ({ arn: t.TargetGroupArn ?? "", weight: t.Weight ?? 1 }));
  return action.TargetGroupArn ? [{ arn: action.TargetGroupArn, weight: 1 }] : [];
}

async function listenerDefault(clients: AwsClients, listenerArn: string): Promise<Action | undefined> {
  const out = await aws("DescribeListeners", listenerArn, () =>
    clients.elbv2.send(new DescribeListenersCommand({ ListenerArns: [listenerArn] })),
  );
  return out.Listeners?.[0]?.DefaultActions?.find((a) => a.Type === "forward" || a.Type === "fixed-response");
}

/** The listener's rules other than its default one (an environment's listener has at most a few). */
async function listenerRules(clients: AwsClients, listenerArn: string): Promise<Rule[]> {
  const out = await aws("DescribeRules", listenerArn, () => clients.elbv2.send(new DescribeRulesCommand({ ListenerArn: listenerArn })));
  return (out.Rules ?? []).filter((r) => !r.IsDefault);
}

const forwardsTo = (rule: Rule, targetGroupArn: string) =>
  (rule.Actions ?? []).some((a) => forwardGroups(a).some((g) => g.arn === targetGroupArn));

/**
 * Makes the listener forward to a new release's target group without sending it any request,
 * because AWS health-checks only the targets of groups a listener forwards to (others stay
 * `unused`, Target.NotInUse). With a live release, the default action becomes a weighted forward
 * that keeps every request on it and names the new group with weight 0. Without one (the
 * listener answers 503), a rule matching only requests that carry RELEASE_HEADER forwards to the
 * new group. Idempotent: a re-run finds the group attached and leaves it at weight 0.
 */
/** `release`: the header value that reaches the release (≤ 128 characters, an ALB condition's limit). */
export async function attachTargetGroup(clients: AwsClients, listenerArn: string, targetGroupArn: string, release: string): Promise<void> {
  const current = forwardGroups(await listenerDefault(clients, listenerArn)).filter((g) => g.arn !== targetGroupArn);
  if (current.length > 0) {
    await forwardWeighted(clients, listenerArn, [...current, { arn: targetGroupArn, weight: 0 }]);
    return;
  }
  const rules = await listenerRules(clients, listenerArn);
  if (rules.some((r) => forwardsTo(r, targetGroupArn))) return;
  const taken = new Set(rules.map((r) => Number(r.Priority)));
  let priority = 1;
  while (taken.has(priority)) priority += 1;
  await aws("CreateRule", listenerArn, () =>
    clients.elbv2.send(
      new CreateRuleCommand({
        ListenerArn: listenerArn,
        Priority: priority,
        Conditions: [{ Field: "http-header", HttpHeaderConfig: { HttpHeaderName: RELEASE_HEADER, Values: [release] } }],
        Actions: [{ Type: "forward", TargetGroupArn: targetGroupArn }],
      }),
    ),
  );
}

/** Deletes the listener rules that forward to a target group (the attach rule of a first promote). */
export async function deleteRulesTo(clients: AwsClients, listenerArn: string, targetGroupArn: string): Promise<void> {
  for (const rule of await listenerRules(clients, listenerArn)) {
    if (forwardsTo(rule, targetGroupArn))
      await aws("DeleteRule", rule.RuleArn ?? listenerArn, () => clients.elbv2.send(new DeleteRuleCommand({ RuleArn: rule.RuleArn })));
  }
}

/**
 * Takes a target group out of the listener (AWS refuses to delete a group a listener or rule
 * still forwards to): its rules go; a weighted forward keeps the other groups; a listener that
 * forwarded only to it answers 503.
 */
export async function detachTargetGroup(clients: AwsClients, listenerArn: string, targetGroupArn: string): Promise<void> {
  await deleteRulesTo(clients, listenerArn, targetGroupArn);
  const groups = forwardGroups(await listenerDefault(clients, listenerArn));
  if (!groups.some((g) => g.arn === targetGroupArn)) return;
  const rest = groups.filter((g) => g.arn !== targetGroupArn);
  if (rest.length === 0) await answerUnavailable(clients, listenerArn);
  else if (rest.length === 1) await forwardListener(clients, listenerArn, rest[0]!.arn);
  else await forwardWeighted(clients, listenerArn, rest);
}

export async function answerUnavailable(clients: AwsClients, listenerArn: string): Promise<void> {
  await setListenerActions(clients, listenerArn, [
    { Type: "fixed-response", FixedResponseConfig: { StatusCode: "503", ContentType: "text/plain", MessageBody: "no release" } },
  ]);
}

export async function deleteLoadBalancer(clients: AwsClients, lb: LoadBalancer): Promise<void> {
  if (lb.listenerArn) await deleteListener(clients, lb.listenerArn);
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
  /** Validated with the environment (config/environments.ts): 5–300, more than checkTimeoutSeconds. */
  readonly intervalSeconds: number;
  /** 2–120; always sent, since HTTP's default (6 s) is more than kiln's default interval (5 s). */
  readonly checkTimeoutSeconds: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
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
        HealthCheckIntervalSeconds: spec.intervalSeconds,
        HealthCheckTimeoutSeconds: spec.checkTimeoutSeconds,
        HealthyThresholdCount: spec.healthyThreshold,
        UnhealthyThresholdCount: spec.unhealthyThreshold,
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

/**
 * The ALB's deletion protection (attribute deletion_protection.enabled): while on, DeleteLoadBalancer
 * is refused with OperationNotPermitted, by kiln and by any other tool or console.
 */
export async function setDeletionProtection(clients: AwsClients, lbArn: string, enabled: boolean): Promise<void> {
  await aws("ModifyLoadBalancerAttributes", lbArn, () =>
    clients.elbv2.send(
      new ModifyLoadBalancerAttributesCommand({
        LoadBalancerArn: lbArn,
        Attributes: [{ Key: "deletion_protection.enabled", Value: String(enabled) }],
      }),
    ),
  );
}
