// The strict rules on target groups, driven with the plain SDK (no kiln code): target health is
// `unused` until a listener rule forwards to the group (weight 0 counts), then `initial` for the
// configured polls, then `healthy`, `unhealthy` on demand, `unused` again once detached; and
// CreateTargetGroup refuses what AWS refuses (interval ≤ timeout with AWS's defaults, ranges).
import { DescribeSubnetsCommand, RunInstancesCommand } from "@aws-sdk/client-ec2";
import {
  CreateListenerCommand,
  CreateLoadBalancerCommand,
  CreateTargetGroupCommand,
  ModifyListenerCommand,
  RegisterTargetsCommand,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AwsClients } from "../../src/aws/clients.js";
import { targetHealth } from "../../src/aws/elbv2.js";
import { configureTargetHealth, markUnhealthy } from "../strict-aws/rules/target-health.js";
import { emulatorClients, type Moto, startMoto, useEmulatorCredentials } from "./moto.js";

const REGION = "eu-west-1";
let moto: Moto;
let aws: AwsClients;

beforeAll(async () => {
  useEmulatorCredentials();
  moto = await startMoto();
  aws = emulatorClients(moto, REGION);
});
afterAll(async () => moto?.stop());
beforeEach(async () => moto.reset());

async function targetGroup(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const subnets = (await aws.ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? [];
  const out = await aws.elbv2.send(
    new CreateTargetGroupCommand({ Name: name, Protocol: "HTTP", Port: 8080, VpcId: subnets[0]!.VpcId, TargetType: "instance", ...extra }),
  );
  return out.TargetGroups![0]!.TargetGroupArn!;
}

/** A load balancer with a 503 listener, a target group with one instance registered. */
async function setup(): Promise<{ listener: string; tg: string; other: string }> {
  const subnets = (await aws.ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? [];
  const onePerZone = [...new Map(subnets.map((s) => [s.AvailabilityZone, s.SubnetId!])).values()].slice(0, 2);
  const lb = (await aws.elbv2.send(new CreateLoadBalancerCommand({ Name: "strict-lb", Subnets: onePerZone, Type: "application" })))
    .LoadBalancers![0]!.LoadBalancerArn!;
  const listener = (
    await aws.elbv2.send(
      new CreateListenerCommand({
        LoadBalancerArn: lb,
        Protocol: "HTTP",
        Port: 80,
        DefaultActions: [{ Type: "fixed-response", FixedResponseConfig: { StatusCode: "503" } }],
      }),
    )
  ).Listeners![0]!.ListenerArn!;
  const tg = await targetGroup("strict-green", { HealthCheckIntervalSeconds: 10, HealthCheckTimeoutSeconds: 5 });
  const other = await targetGroup("strict-blue", { HealthCheckIntervalSeconds: 10, HealthCheckTimeoutSeconds: 5 });
  const instance = (await aws.ec2.send(new RunInstancesCommand({ ImageId: "ami-12c6146b", MinCount: 1, MaxCount: 1 }))).Instances![0]!
    .InstanceId!;
  await aws.elbv2.send(new RegisterTargetsCommand({ TargetGroupArn: tg, Targets: [{ Id: instance, Port: 8080 }] }));
  return { listener, tg, other };
}

const forward = (listener: string, groups: [string, number][]) =>
  aws.elbv2.send(
    new ModifyListenerCommand({
      ListenerArn: listener,
      DefaultActions: [
        { Type: "forward", ForwardConfig: { TargetGroups: groups.map(([TargetGroupArn, Weight]) => ({ TargetGroupArn, Weight })) } },
      ],
    }),
  );

describe("strict rule target-health", () => {
  it("unused until forwarded to (weight 0 counts), initial for the configured polls, then healthy; unused again once detached", async () => {
    const { listener, tg, other } = await setup();
    const states = async () => (await targetHealth(aws, tg)).map((t) => `${t.state}${t.reason ? `:${t.reason}` : ""}`).join();
    expect(await states()).toBe("unused:Target.NotInUse");
    await forward(listener, [
      [other, 1],
      [tg, 0],
    ]);
    const restore = configureTargetHealth({ initialPolls: 3 });
    try {
      expect([await states(), await states(), await states(), await states()]).toEqual([
        "initial:Elb.RegistrationInProgress",
        "initial:Elb.RegistrationInProgress",
        "initial:Elb.RegistrationInProgress",
        "healthy",
      ]);
      const unmark = markUnhealthy((t) => t.targetGroupName === "strict-green", "Target.Timeout");
      expect(await states()).toBe("unhealthy:Target.Timeout");
      unmark();
      expect(await states()).toBe("healthy");
      await forward(listener, [[other, 1]]);
      expect(await states()).toBe("unused:Target.NotInUse");
      // Attached again: registration starts over.
      await forward(listener, [[tg, 1]]);
      expect(await states()).toBe("initial:Elb.RegistrationInProgress");
    } finally {
      restore();
    }
  });

  it("initial lasts at least initialMs of the layer's clock", async () => {
    const { listener, tg } = await setup();
    await forward(listener, [[tg, 1]]);
    const restore = configureTargetHealth({ initialPolls: 0, initialMs: 60_000 });
    try {
      expect((await targetHealth(aws, tg))[0]!.state).toBe("initial");
      moto.strict!.advance(61_000);
      expect((await targetHealth(aws, tg))[0]!.state).toBe("healthy");
    } finally {
      restore();
    }
  });
});

describe("strict rule create-target-group", () => {
  it("refuses interval ≤ timeout, counting AWS's defaults (HTTP: interval 30, timeout 6) for what is not sent", async () => {
    await expect(targetGroup("a", { HealthCheckIntervalSeconds: 5 })).rejects.toThrow(
      /Health check timeout '6' must be smaller than the interval '5'/,
    );
    await expect(targetGroup("b", { HealthCheckTimeoutSeconds: 30 })).rejects.toThrow(
      /timeout '30' must be smaller than the interval '30'/,
    );
    await expect(targetGroup("c", { HealthCheckIntervalSeconds: 10, HealthCheckTimeoutSeconds: 10 })).rejects.toThrow(/smaller than/);
    await expect(targetGroup("d", { HealthCheckIntervalSeconds: 7 })).resolves.toMatch(/targetgroup\/d\//);
    await expect(targetGroup("e")).resolves.toMatch(/targetgroup\/e\//);
  });
  it("refuses values outside AWS's ranges", async () => {
    await expect(targetGroup("f", { HealthCheckIntervalSeconds: 4 })).rejects.toThrow(
      /HealthCheckIntervalSeconds '4' must be between 5 and 300/,
    );
    await expect(targetGroup("g", { HealthCheckTimeoutSeconds: 1 })).rejects.toThrow(/between 2 and 120/);
    await expect(targetGroup("h", { HealthyThresholdCount: 1 })).rejects.toThrow(/HealthyThresholdCount '1' must be between 2 and 10/);
    await expect(targetGroup("i", { UnhealthyThresholdCount: 11 })).rejects.toThrow(/between 2 and 10/);
  });
});
