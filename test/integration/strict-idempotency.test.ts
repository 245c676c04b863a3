// A create whose answer was lost after AWS did the work is retried by the SDK: on AWS the retry
// gets the first attempt's result (ClientToken) or is refused by name (Auto Scaling groups), so
// nothing is made twice. moto makes a second snapshot / instance and silently replaces a group
// (leaving the first group's instances running): the strict layer restores AWS's behaviour, and
// kiln's group create treats "already exists" from its own earlier attempt as done.
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { CompleteSnapshotCommand, StartSnapshotCommand } from "@aws-sdk/client-ebs";
import { CreateLaunchTemplateCommand, DescribeInstancesCommand, DescribeSubnetsCommand, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { CreateTargetGroupCommand, DescribeTargetGroupsCommand } from "@aws-sdk/client-elastic-load-balancing-v2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AwsClients } from "../../src/aws/clients.js";
import { createGroup, type GroupSpec } from "../../src/aws/autoscaling.js";
import { registerAmi } from "../../src/aws/ec2.js";
import { AwsError } from "../../src/aws/errors.js";
import { emulatorClients, type Moto, startMoto, useEmulatorCredentials } from "./moto.js";

const REGION = "eu-west-1";
const AMI = "ami-12c6146b";

describe("retried creates make nothing twice", () => {
  let moto: Moto;
  let aws: AwsClients;
  let vpc: string;
  let subnet: string;
  beforeAll(async () => {
    useEmulatorCredentials();
    moto = await startMoto();
    aws = emulatorClients(moto, REGION);
    const first = (await aws.ec2.send(new DescribeSubnetsCommand({}))).Subnets![0]!;
    [vpc, subnet] = [first.VpcId!, first.SubnetId!];
  });
  afterAll(async () => {
    await moto?.stop();
  });

  it("StartSnapshot repeated with its ClientToken returns the first snapshot", async () => {
    const start = () => aws.ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ClientToken: "push-token-1", Timeout: 60 }));
    const first = await start();
    const again = await start();
    expect(again.SnapshotId).toBe(first.SnapshotId);
    const other = await aws.ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ClientToken: "push-token-2", Timeout: 60 }));
    expect(other.SnapshotId).not.toBe(first.SnapshotId);
  });

  it("RunInstances repeated with its ClientToken starts no second instance", async () => {
    const run = () =>
      aws.ec2.send(new RunInstancesCommand({ ImageId: AMI, InstanceType: "t3.micro", MinCount: 1, MaxCount: 1, ClientToken: "run-1" }));
    const first = await run();
    const again = await run();
    expect(again.Instances?.[0]?.InstanceId).toBe(first.Instances?.[0]?.InstanceId);
    const all = (await aws.ec2.send(new DescribeInstancesCommand({}))).Reservations?.flatMap((r) => r.Instances ?? []) ?? [];
    expect(all.filter((i) => i.ClientToken === "run-1" || i.InstanceId === first.Instances?.[0]?.InstanceId)).toHaveLength(1);
  });

  it("CreateTargetGroup with the same name and settings succeeds again, with the same group", async () => {
    const create = () =>
      aws.elbv2.send(new CreateTargetGroupCommand({ Name: "idem-tg", Protocol: "HTTP", Port: 8080, VpcId: vpc, TargetType: "instance" }));
    const first = await create();
    const again = await create();
    expect(again.TargetGroups?.[0]?.TargetGroupArn).toBe(first.TargetGroups?.[0]?.TargetGroupArn);
    const groups = (await aws.elbv2.send(new DescribeTargetGroupsCommand({ Names: ["idem-tg"] }))).TargetGroups ?? [];
    expect(groups).toHaveLength(1);
  });

  // moto keeps no block device mapping of a registered AMI, so "its own" is recognised here by the
  // description kiln gives it (the image digest); on AWS the root snapshot matches as well.
  it("an AMI name is taken once; kiln's retried register of its own image returns the first AMI", async () => {
    const snapshot = await aws.ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ClientToken: "ami-snap", Timeout: 60 }));
    await aws.ebs.send(new CompleteSnapshotCommand({ SnapshotId: snapshot.SnapshotId!, ChangedBlocksCount: 0 }));
    const input = {
      name: "kiln-idem-1.0.0",
      description: "kiln idem:1.0.0",
      snapshotId: snapshot.SnapshotId!,
      volumeGiB: 1,
      bootMode: "uefi-preferred" as const,
      sriovNetSupport: false,
      tags: { "kiln:app": "idem" },
    };
    const first = await registerAmi(aws, input);
    const other = await aws.ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ClientToken: "ami-snap-2", Timeout: 60 }));
    const refused = await registerAmi(aws, { ...input, description: "kiln idem:2.0.0", snapshotId: other.SnapshotId! }).catch(
      (e: unknown) => e,
    );
    expect((refused as AwsError).code).toBe("InvalidAMIName.Duplicate");
    expect(await registerAmi(aws, input)).toBe(first);
  });

  describe("Auto Scaling group names", () => {
    let spec: GroupSpec;
    beforeAll(async () => {
      const template = await aws.ec2.send(
        new CreateLaunchTemplateCommand({ LaunchTemplateName: "idem-lt", LaunchTemplateData: { ImageId: AMI, InstanceType: "t3.micro" } }),
      );
      const tg = await aws.elbv2.send(new CreateTargetGroupCommand({ Name: "idem-asg-tg", Protocol: "HTTP", Port: 8080, VpcId: vpc }));
      spec = {
        name: "idem-asg",
        launchTemplate: { id: template.LaunchTemplate!.LaunchTemplateId!, version: 1 },
        subnets: [subnet],
        size: 2,
        targetGroup: tg.TargetGroups![0]!.TargetGroupArn!,
        tags: { "kiln:app": "idem" },
      };
    });

    it("a second create of a group by its name is refused with AlreadyExists, as AWS does", async () => {
      await createGroup(aws, spec);
      const error = await createGroup(aws, { ...spec, name: "idem-asg", launchTemplate: { ...spec.launchTemplate, version: 2 } }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(AwsError);
      expect((error as AwsError).message).toMatch(/idem-asg.*already exists/i);
    });

    it("kiln's retried create of its own group is done, and the group keeps its instances", async () => {
      const before = await aws.autoscaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [spec.name] }));
      await createGroup(aws, spec);
      const after = await aws.autoscaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [spec.name] }));
      expect(after.AutoScalingGroups).toHaveLength(1);
      const ids = (g: typeof after) => (g.AutoScalingGroups?.[0]?.Instances ?? []).map((i) => i.InstanceId).sort();
      expect(ids(after)).toEqual(ids(before));
      expect(ids(after)).toHaveLength(2);
    });
  });
});
