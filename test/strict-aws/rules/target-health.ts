/**
 * Target health as an Application Load Balancer reports it, which moto does not model (it says
 * `healthy` at once, for every target group):
 *
 * - "TargetHealth" (Elastic Load Balancing API Reference,
 *   https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetHealth.html):
 *   state `unused` with reason `Target.NotInUse`: "The target group is not used by any load
 *   balancer or the target is in an Availability Zone that is not enabled for its load balancer";
 *   state `initial` with `Elb.RegistrationInProgress`: "The target is in the process of being
 *   registered with the load balancer"; `unhealthy` with e.g. `Target.ResponseCodeMismatch`.
 * - "Target groups for your Application Load Balancers"
 *   (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-target-groups.html):
 *   "Health checks are performed on all targets registered to a target group that is specified
 *   in a listener rule for your load balancer." A weighted forward names each target group in
 *   the rule whatever its weight ("TargetGroupTuple": "The weight. The range is 0 to 999."), so
 *   a group forwarded to with weight 0 is in use and health-checked: this rule counts it as used.
 *
 * So: a target of a group that no listener default action or rule forwards to is `unused`; once
 * the group is forwarded to, each target is `initial` for `initialPolls` DescribeTargetHealth
 * answers and at least `initialMs` of the layer's clock, then `healthy`. Tests mark targets
 * `unhealthy` on demand with markUnhealthy().
 */
import type { AwsRequest, AwsResponse } from "../protocol.js";
import type { RuleContext, StrictRule } from "../layer.js";

export interface TargetHealthSettings {
  /** DescribeTargetHealth answers a target stays `initial` after its group is forwarded to. */
  initialPolls: number;
  /** And at least this long (layer clock), so tests can model slow registrations with advance(). */
  initialMs: number;
}

export const DEFAULT_TARGET_HEALTH: Readonly<TargetHealthSettings> = { initialPolls: 2, initialMs: 0 };
const settings: TargetHealthSettings = { ...DEFAULT_TARGET_HEALTH };

/** Changes how long targets stay `initial`; returns a function that restores the defaults. */
export function configureTargetHealth(next: Partial<TargetHealthSettings>): () => void {
  Object.assign(settings, next);
  return () => Object.assign(settings, DEFAULT_TARGET_HEALTH);
}

export interface TargetRef {
  readonly targetGroupArn: string;
  /** The name part of the target group's ARN (targetgroup/<name>/<id>). */
  readonly targetGroupName: string;
  readonly id: string;
}

const unhealthyMarks = new Set<{ match: (t: TargetRef) => boolean; reason: string }>();

/**
 * Test hook: targets that `match` answer `unhealthy` (with `reason`) once their group is in use,
 * as a failing health check makes them. Returns a function that removes the mark.
 */
export function markUnhealthy(match: (t: TargetRef) => boolean, reason = "Target.ResponseCodeMismatch"): () => void {
  const mark = { match, reason };
  unhealthyMarks.add(mark);
  return () => unhealthyMarks.delete(mark);
}

const VERSION = "2015-12-01";

function values(xml: string, tag: string): string[] {
  return [...xml.matchAll(new RegExp(`<${tag}>([^<]*)</${tag}>`, "g"))].map((m) => m[1]!);
}

/** Every target group any listener of any load balancer forwards to, by default action or by rule, at any weight. */
async function usedTargetGroups(ctx: RuleContext, region: string): Promise<Set<string>> {
  const used = new Set<string>();
  const query = (params: Record<string, string>) => ctx.query("elasticloadbalancing", region, { Version: VERSION, ...params });
  const lbs = values(await query({ Action: "DescribeLoadBalancers" }), "LoadBalancerArn");
  for (const lb of lbs) {
    const listeners = await query({ Action: "DescribeListeners", LoadBalancerArn: lb });
    for (const arn of values(listeners, "TargetGroupArn")) used.add(arn);
    for (const listener of values(listeners, "ListenerArn")) {
      const rules = await query({ Action: "DescribeRules", ListenerArn: listener });
      for (const arn of values(rules, "TargetGroupArn")) used.add(arn);
    }
  }
  return used;
}

interface Seen {
  /** Layer clock when the target was first seen in a used group. */
  since: number;
  polls: number;
}

function healthXml(state: string, reason?: string, description?: string): string {
  return `<TargetHealth><State>${state}</State>${reason ? `<Reason>${reason}</Reason>` : ""}${description ? `<Description>${description}</Description>` : ""}</TargetHealth>`;
}

async function rewrite(request: AwsRequest, response: AwsResponse, ctx: RuleContext): Promise<AwsResponse> {
  if (response.status !== 200) return response;
  const arn = request.params.get("TargetGroupArn") ?? "";
  const used = (await usedTargetGroups(ctx, request.region)).has(arn);
  const seen = ctx.state("target-health", () => new Map<string, Seen>());
  const name = /targetgroup\/([^/]+)\//.exec(arn)?.[1] ?? "";
  const body = response.body.toString("utf8").replace(/<member>([\s\S]*?)<\/member>/g, (member: string, inner: string) => {
    if (!inner.includes("<TargetHealth>")) return member;
    const id = /<Target>[\s\S]*?<Id>([^<]*)<\/Id>/.exec(inner)?.[1] ?? "";
    const key = `${arn} ${id}`;
    let health: string;
    if (!used) {
      // Detached again (a rollback): the next attach starts over with `initial`.
      seen.delete(key);
      health = healthXml("unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer");
    } else {
      const entry = seen.get(key) ?? { since: ctx.now(), polls: 0 };
      entry.polls += 1;
      seen.set(key, entry);
      const mark = [...unhealthyMarks].find((m) => m.match({ targetGroupArn: arn, targetGroupName: name, id }));
      if (entry.polls <= settings.initialPolls || ctx.now() - entry.since < settings.initialMs)
        health = healthXml("initial", "Elb.RegistrationInProgress", "Target registration is in progress");
      else if (mark) health = healthXml("unhealthy", mark.reason, "Health checks failed");
      else health = healthXml("healthy");
    }
    return `<member>${inner.replace(/<TargetHealth>[\s\S]*?<\/TargetHealth>/, health)}</member>`;
  });
  return { ...response, body: Buffer.from(body) };
}

export const targetHealthRule: StrictRule = {
  name: "target-health",
  source: "TargetHealth, https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetHealth.html",
  after(request, response, ctx) {
    if (request.service !== "elasticloadbalancing" || request.action !== "DescribeTargetHealth") return response;
    return rewrite(request, response, ctx);
  },
};
