// AWS eventual consistency through the strictness layer (test/strict-aws rules
// iam-profile-propagation and ec2-describe-after-create): kiln's own AWS calls, with the real SDK
// clients, launch with an instance profile created a moment before, and name EC2 resources
// right after creating them. Each must wait and retry on exactly the documented error, within
// a bound, and the layer's call log shows that the refusal happened and was overcome.
import { CreateSnapshotCommand, CreateVolumeCommand, DescribeSubnetsCommand, DescribeVpcsCommand } from "@aws-sdk/client-ec2";
import { CreateTargetGroupCommand } from "@aws-sdk/client-elastic-load-balancing-v2";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createGroup, deleteGroup } from "../../src/aws/autoscaling.js";
import type { AwsClients } from "../../src/aws/clients.js";
import { ensureSecurityGroup, putLaunchTemplateVersion } from "../../src/aws/ec2-deploy.js";
import { registerAmi } from "../../src/aws/ec2.js";
import { runInstance } from "../../src/aws/ec2-instances.js";
import { ensureInstanceRole } from "../../src/aws/iam.js";
import type { AwsEnvironment } from "../../src/config/environments.js";
import type { KilnHome } from "../../src/home.js";
import { AwsProvider } from "../../src/providers/aws/provider.js";
import { asgFailedLaunch } from "../strict-aws/rules/asg-failed-launch.js";
import { STRICT_RULES } from "../strict-aws/rules/index.js";
import { emulatorClients, type Moto, startMoto, useEmulatorCredentials } from "./moto.js";

const REGION = "eu-west-1";
let moto: Moto;
let aws: AwsClients;
let vpc: string;
let subnets: string[];

const refusals = (rule: string) => moto.strict!.calls.filter((c) => c.refusedBy === rule).map((c) => `${c.service}:${c.action}`);
const POLICY = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "ssm:GetParameter", Resource: "*" }] };

async function template(name: string, profile?: string) {
  return putLaunchTemplateVersion(
    aws,
    name,
    {
      ami: "ami-12c6146b",
      instanceType: "t3.micro",
      userData: "",
      description: name,
      rootVolumeGiB: 1,
      ...(profile ? { instanceProfile: profile } : {}),
    },
    { "kiln:app": "consistency" },
  );
}

describe("eventual consistency (strict layer)", () => {
  beforeAll(async () => {
    useEmulatorCredentials();
    moto = await startMoto();
  });
  afterAll(async () => {
    await moto?.stop();
  });
  beforeEach(async () => {
    await moto.reset();
    aws = emulatorClients(moto, REGION);
    vpc = (await aws.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: "isDefault", Values: ["true"] }] }))).Vpcs![0]!.VpcId!;
    subnets = ((await aws.ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: "vpc-id", Values: [vpc] }] }))).Subnets ?? []).map(
      (s) => s.SubnetId!,
    );
  });

  it("RunInstances with a profile created a moment ago waits until IAM has spread it", async () => {
    const profile = await ensureInstanceRole(aws.iam, "kiln-consistency-single", POLICY, { "kiln:app": "consistency" });
    const lt = await template("kiln-consistency-single", profile);
    const sg = await ensureSecurityGroup(aws, vpc, "kiln-consistency-single", "test", { "kiln:app": "consistency" }, []);
    const started = Date.now();
    const id = await runInstance(aws, { launchTemplate: lt, subnet: subnets[0]!, securityGroup: sg, tags: { "kiln:app": "consistency" } });
    expect(id).toMatch(/^i-/);
    expect(refusals("iam-profile-propagation")).toContain("ec2:RunInstances");
    // Retried, not slept through: done within a few seconds of the 2 s window.
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("CreateAutoScalingGroup with a profile created a moment ago waits until IAM has spread it", async () => {
    const profile = await ensureInstanceRole(aws.iam, "kiln-consistency-asg", POLICY, { "kiln:app": "consistency" });
    const lt = await template("kiln-consistency-asg", profile);
    const tg = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/none/0123456789abcdef";
    await createGroup(aws, { name: "kiln-consistency-asg", launchTemplate: lt, subnets, size: 1, targetGroup: tg, tags: {} }).catch(
      async (error: Error) => {
        // moto wants the target group to exist; the refusal under test comes before that check.
        if (!/TargetGroup|target group/i.test(error.message)) throw error;
      },
    );
    expect(refusals("iam-profile-propagation")).toContain("autoscaling:CreateAutoScalingGroup");
    await deleteGroup(aws, "kiln-consistency-asg").catch(() => undefined);
  });

  it("a security group's ingress rule is added even when EC2 does not know the new group yet", async () => {
    const id = await ensureSecurityGroup(aws, vpc, "kiln-consistency-sg", "test", { "kiln:app": "consistency" }, [
      { port: 8080, cidr: "0.0.0.0/0" },
    ]);
    expect(id).toMatch(/^sg-/);
    expect(refusals("ec2-describe-after-create")).toContain("ec2:AuthorizeSecurityGroupIngress");
  });

  it("a new AMI is tagged even when EC2 does not know it yet", async () => {
    const volume = await aws.ec2.send(new CreateVolumeCommand({ AvailabilityZone: `${REGION}a`, Size: 1 }));
    const snapshot = await aws.ec2.send(new CreateSnapshotCommand({ VolumeId: volume.VolumeId! }));
    const ami = await registerAmi(aws, {
      name: "kiln-consistency",
      description: "test",
      snapshotId: snapshot.SnapshotId!,
      volumeGiB: 1,
      bootMode: "uefi-preferred",
      sriovNetSupport: false,
      tags: { "kiln:app": "consistency" },
    });
    expect(ami).toMatch(/^ami-/);
    expect(refusals("ec2-describe-after-create")).toContain("ec2:CreateTags");
  });

  it("a launch right after the launch template was created waits until EC2 knows the template", async () => {
    const lt = await template("kiln-consistency-lt");
    const sg = await ensureSecurityGroup(aws, vpc, "kiln-consistency-lt", "test", { "kiln:app": "consistency" }, []);
    await runInstance(aws, { launchTemplate: lt, subnet: subnets[0]!, securityGroup: sg, tags: { "kiln:app": "consistency" } });
    expect(refusals("ec2-describe-after-create")).toContain("ec2:RunInstances");
  });
});

describe("an Auto Scaling group whose launches fail", () => {
  const ARCH =
    "The architecture 'arm64' of the specified instance type does not match the architecture 'x86_64' of the specified AMI. " +
    "Specify an instance type and an AMI that have matching architectures, and try again.";
  let failing: Moto;
  beforeAll(async () => {
    useEmulatorCredentials();
    failing = await startMoto({ strict: { rules: [...STRICT_RULES, asgFailedLaunch({ group: /^kiln-failing-/, message: ARCH })] } });
  });
  afterAll(async () => {
    await failing?.stop();
  });

  it("ends the health gate with Auto Scaling's reason from the scaling activities, not a timeout", async () => {
    const c = emulatorClients(failing, REGION);
    const defaultVpc = (await c.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: "isDefault", Values: ["true"] }] }))).Vpcs![0]!.VpcId!;
    const subnetIds = (
      (await c.ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: "vpc-id", Values: [defaultVpc] }] }))).Subnets ?? []
    ).map((x) => x.SubnetId!);
    const lt = await putLaunchTemplateVersion(
      c,
      "kiln-failing-1",
      { ami: "ami-12c6146b", instanceType: "t4g.micro", userData: "", description: "arm64 type, x86_64 image", rootVolumeGiB: 1 },
      { "kiln:app": "failing" },
    );
    const tg = (
      await c.elbv2.send(
        new CreateTargetGroupCommand({
          Name: "kiln-failing-1",
          Protocol: "HTTP",
          Port: 8080,
          VpcId: defaultVpc,
          HealthCheckIntervalSeconds: 10,
          HealthCheckTimeoutSeconds: 5,
        }),
      )
    ).TargetGroups![0]!.TargetGroupArn!;
    await createGroup(c, { name: "kiln-failing-1", launchTemplate: lt, subnets: subnetIds, size: 1, targetGroup: tg, tags: {} });
    const env = { mode: "load-balanced", app: "failing", name: "test" } as AwsEnvironment;
    const provider = new AwsProvider(env, c, {} as KilnHome, { pollMs: 20 });
    const started = Date.now();
    const result = await provider.waitHealthy("kiln-failing-1", 40);
    const seconds = (Date.now() - started) / 1000;
    expect(result.healthy).toBe(false);
    expect(result.detail).toContain("could not launch instances: The architecture 'arm64' of the specified instance type does not match");
    expect(seconds).toBeLessThan(15);
    console.log(`failed launch reported after ${seconds.toFixed(1)}s (gate timeout 40s)`);
    await deleteGroup(c, "kiln-failing-1");
  });
});
