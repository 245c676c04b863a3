/**
 * After DeleteLoadBalancer, an Application Load Balancer's network interfaces stay for a while
 * (minutes on AWS) and keep its security groups in use: DeleteSecurityGroup answers
 * DependencyViolation until they are gone. moto deletes a load balancer at once and frees its groups.
 *
 * Sources: "Why can't I delete a security group that's attached to my Amazon VPC?", AWS re:Post
 * Knowledge Center ("The security group is associated with a network interface": an ELB's
 * requester-managed network interfaces go away only once the load balancer is fully deleted),
 * https://repost.aws/knowledge-center/troubleshoot-delete-vpc-sg ; "DeleteSecurityGroup", Amazon
 * EC2 API Reference ("If you attempt to delete a security group that is associated with an
 * instance or network interface [...] the operation fails with DependencyViolation"),
 * https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSecurityGroup.html
 *
 * `windowMs` is how long the interfaces linger (2 s in tests; the layer's clock, so a test may
 * also `advance()` past it).
 */
import type { StrictRule } from "../layer.js";
import { awsError } from "../protocol.js";
import { xmlBlocks, xmlValues } from "./xml.js";

interface LingerState {
  /** Security group id → until when (layer clock, ms) the deleted load balancer's interfaces hold it. */
  held: Map<string, number>;
  /** Security groups of a load balancer whose deletion is in flight, by ARN. */
  pending: Map<string, string[]>;
}

export function albEniLinger(windowMs: number): StrictRule {
  const name = "alb-eni-linger";
  const state = (ctx: Parameters<NonNullable<StrictRule["before"]>>[1]) =>
    ctx.state<LingerState>(name, () => ({ held: new Map(), pending: new Map() }));
  return {
    name,
    source: "https://repost.aws/knowledge-center/troubleshoot-delete-vpc-sg",
    async before(request, ctx) {
      if (request.service === "elasticloadbalancing" && request.action === "DeleteLoadBalancer") {
        const arn = request.params.get("LoadBalancerArn") ?? "";
        const xml = await ctx
          .query("elasticloadbalancing", request.region, {
            Action: "DescribeLoadBalancers",
            Version: "2015-12-01",
            "LoadBalancerArns.member.1": arn,
          })
          .catch(() => "");
        const lb = xmlBlocks(xml, "member").find((m) => xmlValues(m, "Type")[0] === "application");
        if (lb) state(ctx).pending.set(arn, xmlValues(xmlBlocks(lb, "SecurityGroups")[0] ?? "", "member"));
        return undefined;
      }
      if (request.service === "ec2" && request.action === "DeleteSecurityGroup") {
        const group = request.params.get("GroupId") ?? "";
        const until = state(ctx).held.get(group);
        if (until !== undefined && ctx.now() < until)
          return awsError(request, 400, "DependencyViolation", `resource ${group} has a dependent object`);
      }
      return undefined;
    },
    after(request, response, ctx) {
      if (request.service === "elasticloadbalancing" && request.action === "DeleteLoadBalancer") {
        const arn = request.params.get("LoadBalancerArn") ?? "";
        const groups = state(ctx).pending.get(arn) ?? [];
        state(ctx).pending.delete(arn);
        if (response.status === 200) for (const g of groups) state(ctx).held.set(g, ctx.now() + windowMs);
      }
      return response;
    },
  };
}
