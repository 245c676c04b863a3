/**
 * A load balancer with the attribute deletion_protection.enabled = true cannot be deleted;
 * moto stores the attribute but deletes the load balancer anyway.
 *
 * Source: "DeleteLoadBalancer", Elastic Load Balancing API Reference: "You can't delete a load
 * balancer if deletion protection is enabled." (error OperationNotPermitted, "This operation is
 * not allowed", HTTP 400),
 * https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_DeleteLoadBalancer.html
 * and "Deletion protection" in "Application Load Balancers", User Guide for Application Load Balancers,
 * https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html#deletion-protection
 */
import type { StrictRule } from "../layer.js";
import { awsError } from "../protocol.js";
import { xmlBlocks, xmlValues } from "./xml.js";

export const albDeletionProtectionRule: StrictRule = {
  name: "alb-deletion-protection",
  source: "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_DeleteLoadBalancer.html",
  async before(request, ctx) {
    if (request.service !== "elasticloadbalancing" || request.action !== "DeleteLoadBalancer") return undefined;
    const arn = request.params.get("LoadBalancerArn") ?? "";
    const xml = await ctx.query("elasticloadbalancing", request.region, {
      Action: "DescribeLoadBalancerAttributes",
      Version: "2015-12-01",
      LoadBalancerArn: arn,
    });
    const protectedNow = xmlBlocks(xml, "member").some(
      (m) => xmlValues(m, "Key")[0] === "deletion_protection.enabled" && xmlValues(m, "Value")[0] === "true",
    );
    return protectedNow
      ? awsError(request, 400, "OperationNotPermitted", `Load balancer '${arn}' cannot be deleted because deletion protection is enabled`)
      : undefined;
  },
};
