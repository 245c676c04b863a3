// The network of a load-balanced AWS environment and its destroy, through the strictness layer:
// the ALB gets one public subnet per Availability Zone (CreateLoadBalancer refuses two in one
// zone), the plan names them, too few zones are refused up front; destroy waits for the
// security groups a deleted ALB's network interfaces still hold, a second destroy finishes what
// an interrupted one left (found by tag), and deletion protection makes destroy refuse.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import {
  AssociateRouteTableCommand,
  AttachInternetGatewayCommand,
  CreateInternetGatewayCommand,
  CreateRouteCommand,
  CreateRouteTableCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
} from "@aws-sdk/client-ec2";
import {
  CreateLoadBalancerCommand,
  DeleteLoadBalancerCommand,
  DescribeLoadBalancersCommand,
  DescribeTagsCommand,
  DescribeTargetGroupsCommand,
  SetSubnetsCommand,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AwsClients } from "../../src/aws/clients.js";
import { describeStep } from "../../src/deploy/plan.js";
import { destroyEnv, promote, type ProviderFactory } from "../../src/deploy/promote.js";
import { AwsProvider, type AwsProviderOptions } from "../../src/providers/aws/provider.js";
import { SingleInstanceProvider } from "../../src/providers/aws/single-instance.js";
import type { AwsEnvironment } from "../../src/config/environments.js";
import { ALB_ENI_LINGER_MS } from "../strict-aws/rules/index.js";
import { bakeNativeReleases, quiet, sharedHome } from "./harness.js";
import { emulatorClients, startMoto, useEmulatorCredentials, type Moto, type RecordedCall } from "./moto.js";

const home = sharedHome();
const REGION = "eu-west-1";
const APP = "netdemo";
let moto: Moto;
let app: string;
let ref: string;
let calls: RecordedCall[] = [];

const clients = (): AwsClients => emulatorClients(moto, REGION, calls);

function providers(options: AwsProviderOptions = {}): ProviderFactory {
  return (env) => new AwsProvider(env as AwsEnvironment, clients(), home, { pollMs: 50, ...options });
}

function writeConfig(extra = "", name = "test", instances = 2): void {
  writeFileSync(
    path.join(app, "kiln.yml"),
    `cmd: ./server --listen 8080\nport: 8080\nhealthcheck: { path: /healthz }\nenvironments:\n  ${name}:\n    target: aws\n    region: ${REGION}\n    instances: ${instances}\n    deregistrationDelay: 0\n    healthcheck: { path: /healthz, timeout: 30 }\n${extra}`,
  );
}

const opts = (envName = "test", options: AwsProviderOptions = {}) => ({
  home,
  config: app,
  envName,
  progress: quiet,
  providers: providers(options),
});

interface Layout {
  readonly zone: string;
  readonly public: boolean;
}

/** A VPC with an internet gateway, a public and a private route table, and one subnet per entry of `layout`. */
async function vpcWithSubnets(cidr: number, layout: readonly Layout[]): Promise<{ vpc: string; subnets: (Layout & { id: string })[] }> {
  const ec2 = clients().ec2;
  const vpc = (await ec2.send(new CreateVpcCommand({ CidrBlock: `10.${cidr}.0.0/16` }))).Vpc!.VpcId!;
  const igw = (await ec2.send(new CreateInternetGatewayCommand({}))).InternetGateway!.InternetGatewayId!;
  await ec2.send(new AttachInternetGatewayCommand({ InternetGatewayId: igw, VpcId: vpc }));
  const publicTable = (await ec2.send(new CreateRouteTableCommand({ VpcId: vpc }))).RouteTable!.RouteTableId!;
  await ec2.send(new CreateRouteCommand({ RouteTableId: publicTable, DestinationCidrBlock: "0.0.0.0/0", GatewayId: igw }));
  const privateTable = (await ec2.send(new CreateRouteTableCommand({ VpcId: vpc }))).RouteTable!.RouteTableId!;
  const subnets: (Layout & { id: string })[] = [];
  for (const [i, entry] of layout.entries()) {
    const id = (
      await ec2.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: `10.${cidr}.${i + 1}.0/24`, AvailabilityZone: entry.zone }))
    ).Subnet!.SubnetId!;
    await ec2.send(new AssociateRouteTableCommand({ SubnetId: id, RouteTableId: entry.public ? publicTable : privateTable }));
    subnets.push({ ...entry, id });
  }
  return { vpc, subnets };
}

/** Everything of the app that still exists, found by kiln's tags (kiln:app), by kind. */
async function taggedResources(): Promise<Record<string, number>> {
  const c = clients();
  const hasApp = (tags: { Key?: string; Value?: string }[] | undefined) =>
    (tags ?? []).some((t) => t.Key === "kiln:app" && t.Value === APP);
  const groups = ((await c.autoscaling.send(new DescribeAutoScalingGroupsCommand({}))).AutoScalingGroups ?? []).filter((g) =>
    hasApp(g.Tags),
  );
  const arns = [
    ...((await c.elbv2.send(new DescribeLoadBalancersCommand({}))).LoadBalancers ?? []).map((l) => l.LoadBalancerArn!),
    ...((await c.elbv2.send(new DescribeTargetGroupsCommand({}))).TargetGroups ?? []).map((t) => t.TargetGroupArn!),
  ];
  const elb = arns.length
    ? ((await c.elbv2.send(new DescribeTagsCommand({ ResourceArns: arns }))).TagDescriptions ?? []).filter((d) => hasApp(d.Tags))
    : [];
  const sgs = ((await c.ec2.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups ?? []).filter((g) => hasApp(g.Tags));
  const templates = ((await c.ec2.send(new DescribeLaunchTemplatesCommand({}))).LaunchTemplates ?? []).filter((t) => hasApp(t.Tags));
  const instances = ((await c.ec2.send(new DescribeInstancesCommand({}))).Reservations ?? [])
    .flatMap((r) => r.Instances ?? [])
    .filter((i) => i.State?.Name !== "terminated" && hasApp(i.Tags));
  return { groups: groups.length, elb: elb.length, sgs: sgs.length, templates: templates.length, instances: instances.length };
}

const NOTHING = { groups: 0, elb: 0, sgs: 0, templates: 0, instances: 0 };

function createLoadBalancerSubnets(): string[] {
  const create = calls.find((c) => c.op === "CreateLoadBalancer");
  return (create?.input.Subnets as string[] | undefined) ?? [];
}

beforeAll(async () => {
  useEmulatorCredentials();
  moto = await startMoto();
  const baked = await bakeNativeReleases(APP, ["1.0.0"], home, (dir) => {
    app = dir;
    writeConfig();
  });
  ref = baked.images[0]!.ref;
});
afterAll(async () => moto?.stop());
beforeEach(async () => {
  await moto.reset();
  calls = [];
  writeConfig();
});

describe.sequential("the network of a load-balanced AWS environment", () => {
  it("strict layer: an ALB in two subnets of one zone, or in one zone, is refused (CreateLoadBalancer and SetSubnets)", async () => {
    const { subnets } = await vpcWithSubnets(30, [
      { zone: `${REGION}a`, public: true },
      { zone: `${REGION}a`, public: true },
      { zone: `${REGION}b`, public: true },
    ]);
    const [a1, a2, b] = subnets.map((s) => s.id) as [string, string, string];
    const elbv2 = clients().elbv2;
    await expect(elbv2.send(new CreateLoadBalancerCommand({ Name: "two-in-a", Subnets: [a1, a2, b] }))).rejects.toMatchObject({
      name: expect.stringMatching(/^InvalidConfigurationRequest/),
      message: expect.stringMatching(/multiple subnets in the same Availability Zone/),
    });
    await expect(elbv2.send(new CreateLoadBalancerCommand({ Name: "only-a", Subnets: [a1] }))).rejects.toMatchObject({
      name: "ValidationError",
    });
    const lb = (await elbv2.send(new CreateLoadBalancerCommand({ Name: "good", Subnets: [a1, b] }))).LoadBalancers![0]!;
    await expect(elbv2.send(new SetSubnetsCommand({ LoadBalancerArn: lb.LoadBalancerArn, Subnets: [a1, a2, b] }))).rejects.toMatchObject({
      name: expect.stringMatching(/^InvalidConfigurationRequest/),
    });
    // A network load balancer may have one zone.
    await elbv2.send(new CreateLoadBalancerCommand({ Name: "nlb", Type: "network", Subnets: [a1] }));
  });

  it("vpc without subnets: the ALB gets one public subnet per zone (lowest id), instances every subnet; the plan names them", async () => {
    const { vpc, subnets } = await vpcWithSubnets(20, [
      { zone: `${REGION}a`, public: true },
      { zone: `${REGION}a`, public: true },
      { zone: `${REGION}b`, public: true },
      { zone: `${REGION}c`, public: false },
    ]);
    const [a1, a2, b, c] = subnets.map((s) => s.id) as [string, string, string, string];
    const firstA = [a1, a2].sort()[0]!;
    writeConfig(`    vpc: ${vpc}\n`);
    await promote({ ...opts(), ref });
    expect(createLoadBalancerSubnets()).toEqual([firstA, b]);
    const group = calls.find((x) => x.op === "CreateAutoScalingGroup")!.input;
    // Instances go where the ALB is: zone c has no public subnet, so no ALB node and no traffic there.
    expect(String(group.VPCZoneIdentifier).split(",").sort()).toEqual([a1, a2, b].sort());
    expect(String(group.VPCZoneIdentifier)).not.toContain(c);

    await moto.reset();
    const again = await vpcWithSubnets(20, [
      { zone: `${REGION}a`, public: true },
      { zone: `${REGION}a`, public: true },
      { zone: `${REGION}b`, public: true },
      { zone: `${REGION}c`, public: false },
    ]);
    writeConfig(`    vpc: ${again.vpc}\n`);
    const dry = await promote({ ...opts(), ref, dryRun: true });
    const ensure = dry.plan.steps.find((s) => s.kind === "ensure-infrastructure")!;
    const [x1, x2, y] = again.subnets.map((s) => s.id) as [string, string, string];
    const text = describeStep(ensure);
    expect(text).toContain(`${[x1, x2].sort()[0]} (${REGION}a)`);
    expect(text).toContain(`${y} (${REGION}b)`);
    expect(text).not.toContain([x1, x2].sort()[1]!);
    const launch = describeStep(dry.plan.steps.find((s) => s.kind === "launch")!);
    expect(launch).toContain(`${[x1, x2].sort()[1]} (${REGION}a)`);
    expect(launch).not.toContain(`${REGION}c`);
  });

  it("a default VPC with an extra subnet in one zone: still one subnet per zone for the ALB", async () => {
    const ec2 = clients().ec2;
    const vpc = (await ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: "isDefault", Values: ["true"] }] }))).Vpcs![0]!.VpcId!;
    await ec2.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: "172.31.200.0/24", AvailabilityZone: `${REGION}a` }));
    await promote({ ...opts(), ref });
    const chosen = createLoadBalancerSubnets();
    const all = (await ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: "vpc-id", Values: [vpc] }] }))).Subnets ?? [];
    const zones = [...new Set(all.map((s) => s.AvailabilityZone))].sort();
    const zoneOf = (id: string) => all.find((s) => s.SubnetId === id)?.AvailabilityZone;
    expect(chosen.map(zoneOf)).toEqual(zones);
  });

  it("fewer than two zones with a public subnet is refused before anything is created, naming the zones", async () => {
    const { vpc } = await vpcWithSubnets(40, [
      { zone: `${REGION}a`, public: true },
      { zone: `${REGION}b`, public: false },
      { zone: `${REGION}c`, public: false },
    ]);
    writeConfig(`    vpc: ${vpc}\n`);
    calls = [];
    const error = await promote({ ...opts(), ref }).catch((e: unknown) => e as Error & { hint?: string });
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/public subnet[\s\S]*at least two availability zones/);
    expect((error as Error).message).toContain(`${REGION}a`);
    expect((error as Error).message).toMatch(new RegExp(`${REGION}b, ${REGION}c`));
    expect(calls.some((x) => x.op.startsWith("Create"))).toBe(false);
  });

  it("single-instance goes into a public subnet, not the first one; with none public it is refused before anything is created", async () => {
    const single: ProviderFactory = (env) =>
      new SingleInstanceProvider(env as AwsEnvironment, clients(), home, {
        pollMs: 20,
        health: async () => ({ ok: true, detail: "HTTP 200" }),
      });
    const { vpc, subnets } = await vpcWithSubnets(41, [
      { zone: `${REGION}a`, public: false },
      { zone: `${REGION}b`, public: true },
    ]);
    writeConfig(`    vpc: ${vpc}\n    mode: single-instance\n`, "test", 1);
    calls = [];
    await promote({ ...opts(), providers: single, ref });
    const run = calls.find((c) => c.op === "RunInstances")!.input as { NetworkInterfaces: { SubnetId: string }[] };
    expect(run.NetworkInterfaces[0]!.SubnetId).toBe(subnets[1]!.id);
    await destroyEnv({ ...opts(), providers: single, app: APP });

    const closed = await vpcWithSubnets(42, [{ zone: `${REGION}a`, public: false }]);
    writeConfig(`    vpc: ${closed.vpc}\n    mode: single-instance\n`, "test", 1);
    calls = [];
    await expect(promote({ ...opts(), providers: single, ref })).rejects.toThrow(
      /needs a public subnet.*internet gateway.*these are private/,
    );
    expect(calls.some((x) => x.op.startsWith("Create") || x.op === "RunInstances")).toBe(false);
  });

  it("destroy waits for the security groups a deleted ALB's network interfaces still hold; nothing tagged is left", async () => {
    await promote({ ...opts(), ref });
    moto.strict!.calls.length = 0;
    await destroyEnv({ ...opts(), app: APP });
    expect(moto.strict!.calls.some((x) => x.refusedBy === "alb-eni-linger")).toBe(true);
    expect(await taggedResources()).toEqual(NOTHING);
  });

  it("a destroy cut short after DeleteLoadBalancer leaves security groups; the next destroy finds them by tag and removes them", async () => {
    await promote({ ...opts(), ref });
    await expect(destroyEnv({ ...opts("test", { securityGroupWaitSeconds: 0 }), app: APP })).rejects.toThrow(/in use|DependencyViolation/);
    expect((await taggedResources()).sgs).toBeGreaterThan(0);
    moto.strict!.advance(ALB_ENI_LINGER_MS);
    await destroyEnv({ ...opts(), app: APP });
    expect(await taggedResources()).toEqual(NOTHING);
  });

  it("deletionProtection (on by default in prod) sets the ALB attribute and makes destroy refuse until it is turned off", async () => {
    writeConfig("", "prod");
    const dry = await promote({ ...opts("prod"), ref, dryRun: true });
    expect(describeStep(dry.plan.steps.find((s) => s.kind === "ensure-infrastructure")!)).toMatch(/deletion protection on/);
    await promote({ ...opts("prod"), ref });
    const modified = calls
      .filter((x) => x.op === "ModifyLoadBalancerAttributes")
      .flatMap((x) => (x.input as { Attributes: { Key: string; Value: string }[] }).Attributes);
    expect(modified).toContainEqual({ Key: "deletion_protection.enabled", Value: "true" });
    const error = await destroyEnv({ ...opts("prod"), app: APP }).catch((e: unknown) => e as Error & { hint?: string });
    expect((error as Error).message).toMatch(/deletion protection/);
    expect((error as { hint?: string }).hint).toMatch(/deletionProtection: false/);
    const left = await taggedResources();
    expect(left.groups).toBe(1);
    expect(left.elb).toBe(2);
    // The attribute itself protects the ALB from other tools too.
    const lbArn = ((await clients().elbv2.send(new DescribeLoadBalancersCommand({}))).LoadBalancers ?? [])[0]!.LoadBalancerArn!;
    await expect(clients().elbv2.send(new DeleteLoadBalancerCommand({ LoadBalancerArn: lbArn }))).rejects.toMatchObject({
      name: expect.stringMatching(/^OperationNotPermitted/),
    });
    writeConfig("    deletionProtection: false\n", "prod");
    await destroyEnv({ ...opts("prod"), app: APP });
    expect(await taggedResources()).toEqual(NOTHING);
  });
});
