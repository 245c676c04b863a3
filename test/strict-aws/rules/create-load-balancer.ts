/**
 * CreateLoadBalancer and SetSubnets of an Application Load Balancer take one subnet per
 * Availability Zone, in at least two zones; moto accepts any list.
 *
 * Source: "CreateLoadBalancer", Elastic Load Balancing API Reference (Subnets.member.N):
 * "You can specify only one subnet per Availability Zone. [...] [Application Load Balancers]
 * You must specify subnets from at least two Availability Zones."
 * https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html
 * and "SetSubnets" (same words): https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_SetSubnets.html
 * The refusal AWS answers (as users report it): InvalidConfigurationRequest, "A load balancer
 * cannot be attached to multiple subnets in the same Availability Zone".
 */
import type { RuleContext, StrictRule } from "../layer.js";
import { type AwsRequest, awsError } from "../protocol.js";
import { memberList, xmlBlocks, xmlValues } from "./xml.js";

function requestedSubnets(request: AwsRequest): string[] {
  const plain = memberList(request.params, "Subnets");
  const mapped: string[] = [];
  for (let i = 1; request.params.has(`SubnetMappings.member.${i}.SubnetId`); i++)
    mapped.push(request.params.get(`SubnetMappings.member.${i}.SubnetId`) ?? "");
  return [...plain, ...mapped];
}

/** Zone of each subnet as moto knows it; unknown subnets are left to moto (SubnetNotFound). */
async function zonesOf(ctx: RuleContext, region: string, subnets: readonly string[]): Promise<Map<string, string>> {
  const params: Record<string, string> = { Action: "DescribeSubnets", Version: "2016-11-15" };
  subnets.forEach((s, i) => (params[`Filter.1.Value.${i + 1}`] = s));
  params["Filter.1.Name"] = "subnet-id";
  const xml = await ctx.query("ec2", region, params);
  const zones = new Map<string, string>();
  for (const item of xmlBlocks(xml, "item")) {
    const id = xmlValues(item, "subnetId")[0];
    const zone = xmlValues(item, "availabilityZone")[0];
    if (id && zone) zones.set(id, zone);
  }
  return zones;
}

/** Type of an existing load balancer (SetSubnets names it by ARN): "app" in an ALB's ARN. */
const isApplicationArn = (arn: string) => /:loadbalancer\/app\//.test(arn);

export const createLoadBalancerRule: StrictRule = {
  name: "create-load-balancer",
  source:
    "CreateLoadBalancer / SetSubnets, Elastic Load Balancing API Reference: https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html",
  async before(request, ctx) {
    if (request.service !== "elasticloadbalancing") return undefined;
    const application =
      (request.action === "CreateLoadBalancer" && (request.params.get("Type") ?? "application") === "application") ||
      (request.action === "SetSubnets" && isApplicationArn(request.params.get("LoadBalancerArn") ?? ""));
    if (!application) return undefined;
    const subnets = requestedSubnets(request);
    const zones = await zonesOf(ctx, request.region, subnets);
    const byZone = new Map<string, string[]>();
    for (const subnet of subnets) {
      const zone = zones.get(subnet);
      if (zone) byZone.set(zone, [...(byZone.get(zone) ?? []), subnet]);
    }
    if ([...byZone.values()].some((list) => list.length > 1))
      return awsError(
        request,
        400,
        "InvalidConfigurationRequest",
        "A load balancer cannot be attached to multiple subnets in the same Availability Zone",
      );
    if (zones.size === subnets.length && byZone.size < 2)
      return awsError(request, 400, "ValidationError", "At least two subnets in two different Availability Zones must be specified");
    return undefined;
  },
};
