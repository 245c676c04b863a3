/**
 * A default VPC on AWS is public: it has an internet gateway, and its main route table sends
 * 0.0.0.0/0 to it, so its default subnets are public subnets. moto creates the default VPC and
 * its subnets but no gateway and no route. This rule makes moto's default VPC of each region
 * look like AWS's before the first request there (so code that checks for public subnets sees
 * what it would see on AWS).
 *
 * Source: "Default VPCs", Amazon VPC User Guide ("Default VPC components": "Create an internet
 * gateway and connect it to your default VPC"; "Add a route to the main route table that points
 * all traffic (0.0.0.0/0) to the internet gateway"),
 * https://docs.aws.amazon.com/vpc/latest/userguide/default-vpc.html
 */
import type { RuleContext, StrictRule } from "../layer.js";
import { xmlBlocks, xmlValues } from "./xml.js";

const V = "2016-11-15";

async function connectDefaultVpc(ctx: RuleContext, region: string): Promise<void> {
  const vpcs = await ctx.query("ec2", region, {
    Action: "DescribeVpcs",
    Version: V,
    "Filter.1.Name": "isDefault",
    "Filter.1.Value.1": "true",
  });
  const vpc = xmlValues(vpcs, "vpcId")[0];
  if (!vpc) return;
  const gateways = await ctx.query("ec2", region, {
    Action: "DescribeInternetGateways",
    Version: V,
    "Filter.1.Name": "attachment.vpc-id",
    "Filter.1.Value.1": vpc,
  });
  let igw = xmlValues(gateways, "internetGatewayId")[0];
  if (!igw) {
    igw = xmlValues(await ctx.query("ec2", region, { Action: "CreateInternetGateway", Version: V }), "internetGatewayId")[0];
    if (!igw) return;
    await ctx.query("ec2", region, { Action: "AttachInternetGateway", Version: V, InternetGatewayId: igw, VpcId: vpc });
  }
  const tables = await ctx.query("ec2", region, {
    Action: "DescribeRouteTables",
    Version: V,
    "Filter.1.Name": "vpc-id",
    "Filter.1.Value.1": vpc,
    "Filter.2.Name": "association.main",
    "Filter.2.Value.1": "true",
  });
  const main = xmlBlocks(tables, "item").find((t) => xmlValues(t, "routeTableId").length > 0);
  const table = main ? xmlValues(main, "routeTableId")[0] : undefined;
  if (table && !xmlValues(main ?? "", "destinationCidrBlock").includes("0.0.0.0/0"))
    await ctx.query("ec2", region, {
      Action: "CreateRoute",
      Version: V,
      RouteTableId: table,
      DestinationCidrBlock: "0.0.0.0/0",
      GatewayId: igw,
    });
}

export const defaultVpcInternetRule: StrictRule = {
  name: "default-vpc-internet",
  source: "https://docs.aws.amazon.com/vpc/latest/userguide/default-vpc.html",
  async before(request, ctx) {
    if (request.action === "unknown" || !["ec2", "elasticloadbalancing", "autoscaling"].includes(request.service)) return undefined;
    // One setup per region, shared by requests that arrive together.
    const done = ctx.state("default-vpc-internet", () => new Map<string, Promise<void>>());
    let setup = done.get(request.region);
    if (!setup) {
      // A failed setup must not fail every later request: the check it serves then refuses visibly.
      setup = connectDefaultVpc(ctx, request.region).catch(() => undefined);
      done.set(request.region, setup);
    }
    await setup;
    return undefined;
  },
};
