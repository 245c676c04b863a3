// Blue/green on AWS against a real emulator (moto server) with the real SDK v3 clients:
// first deploy creates LB + listener + ASG across ≥2 subnets + target group; a second deploy
// ends on the new target group with the old group gone; rollback; destroy leaves nothing; a
// failed health gate (injected: moto reports every target healthy) never moves traffic and
// leaves nothing behind; interrupting after any step and re-running converges; bad
// environments are refused before anything is created.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import {
  CreateSubnetCommand,
  CreateVpcCommand,
  DescribeLaunchTemplatesCommand,
  DescribeSecurityGroupsCommand,
  DescribeTagsCommand as DescribeEc2TagsCommand,
} from "@aws-sdk/client-ec2";
import { GetRoleCommand } from "@aws-sdk/client-iam";
import {
  DescribeListenersCommand,
  DescribeLoadBalancersCommand,
  DescribeRulesCommand,
  DescribeTargetGroupsCommand,
  DescribeTagsCommand,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AwsClients } from "../../src/aws/clients.js";
import { destroyEnv, envStatus, promote, rollback, type ProviderFactory } from "../../src/deploy/promote.js";
import type { DeployStep } from "../../src/deploy/types.js";
import { targetHealth } from "../../src/aws/elbv2.js";
import { AwsProvider, type HealthSource } from "../../src/providers/aws/provider.js";
import { configureTargetHealth, markUnhealthy } from "../strict-aws/rules/target-health.js";
import type { AwsEnvironment } from "../../src/config/environments.js";
import { bakeNativeReleases, quiet, sharedHome } from "./harness.js";
import { emulatorClients, startMoto, useEmulatorCredentials, type Moto, type RecordedCall } from "./moto.js";

const home = sharedHome();
const REGION = "eu-west-1";
let moto: Moto;
let app: string;
let refs: { v1: string; v2: string; v3: string; d1: string; d2: string; d3: string };
let calls: RecordedCall[] = [];

function clients(): AwsClients {
  return emulatorClients(moto, REGION, calls);
}

function providers(health?: HealthSource): ProviderFactory {
  return (env) => new AwsProvider(env as AwsEnvironment, clients(), home, { pollMs: 50, ...(health ? { health } : {}) });
}

function writeConfig(extra = "", healthTimeout = 30): void {
  writeFileSync(
    path.join(app, "kiln.yml"),
    `cmd: ./server --listen 8080\nport: 8080\nhealthcheck: { path: /healthz }\nenvironments:\n  test:\n    target: aws\n    region: ${REGION}\n    instances: 2\n    deregistrationDelay: 0\n    healthcheck: { path: /healthz, timeout: ${healthTimeout} }\n${extra}`,
  );
}

const opts = (health?: HealthSource) => ({ home, config: app, envName: "test", progress: quiet, providers: providers(health) });

async function inventory() {
  const c = clients();
  const groups = (await c.autoscaling.send(new DescribeAutoScalingGroupsCommand({}))).AutoScalingGroups ?? [];
  const tgs = (await c.elbv2.send(new DescribeTargetGroupsCommand({}))).TargetGroups ?? [];
  const lbs = (await c.elbv2.send(new DescribeLoadBalancersCommand({}))).LoadBalancers ?? [];
  const sgs = ((await c.ec2.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups ?? []).filter((g) =>
    g.GroupName?.startsWith("kiln-"),
  );
  const templates = (await c.ec2.send(new DescribeLaunchTemplatesCommand({}))).LaunchTemplates ?? [];
  const listeners = lbs.length
    ? ((await c.elbv2.send(new DescribeListenersCommand({ LoadBalancerArn: lbs[0]!.LoadBalancerArn }))).Listeners ?? [])
    : [];
  const rules = listeners.length
    ? ((await c.elbv2.send(new DescribeRulesCommand({ ListenerArn: listeners[0]!.ListenerArn }))).Rules ?? []).filter((r) => !r.IsDefault)
    : [];
  return { groups, tgs, lbs, sgs, templates, listeners, rules };
}

beforeAll(async () => {
  useEmulatorCredentials();
  moto = await startMoto();
  const baked = await bakeNativeReleases("awsdemo", ["1.0.0", "2.0.0", "3.0.0"], home, (dir) => {
    app = dir;
    writeConfig();
  });
  const [v1, v2, v3] = baked.images as [{ ref: string; digest: string }, { ref: string; digest: string }, { ref: string; digest: string }];
  refs = { v1: v1.ref, v2: v2.ref, v3: v3.ref, d1: v1.digest, d2: v2.digest, d3: v3.digest };
});
afterAll(async () => moto?.stop());
beforeEach(async () => {
  await moto.reset();
  calls = [];
  writeConfig();
});

describe.sequential("kiln promote on AWS (moto)", () => {
  it("first deploy creates the ALB, listener, ASG across ≥2 subnets and a target group, all tagged", async () => {
    const started = performance.now();
    const result = await promote({ ...opts(), ref: refs.v1 });
    const seconds = (performance.now() - started) / 1000;
    expect(result.plan.steps.map((s) => s.kind)).toEqual([
      "ensure-infrastructure",
      "launch",
      "attach",
      "wait-healthy",
      "switch-traffic",
      "record",
    ]);
    const inv = await inventory();
    expect(inv.lbs).toHaveLength(1);
    expect(inv.groups).toHaveLength(1);
    expect(inv.tgs).toHaveLength(1);
    const create = calls.find((c) => c.op === "CreateAutoScalingGroup")!.input;
    expect(String(create.VPCZoneIdentifier).split(",").length).toBeGreaterThanOrEqual(2);
    expect(inv.listeners[0]!.DefaultActions![0]).toMatchObject({ Type: "forward", TargetGroupArn: inv.tgs[0]!.TargetGroupArn });
    // The first promote attached through a header rule (no release served yet); the switch removed it.
    expect(calls.find((c) => c.op === "CreateRule")?.input).toMatchObject({
      Conditions: [{ Field: "http-header", HttpHeaderConfig: { HttpHeaderName: "X-Kiln-Release" } }],
      Actions: [{ Type: "forward", TargetGroupArn: inv.tgs[0]!.TargetGroupArn }],
    });
    expect(inv.rules).toEqual([]);
    // Every health check setting is sent, so AWS's HTTP defaults (interval 30, timeout 6) never stand in.
    expect(calls.find((c) => c.op === "CreateTargetGroup")?.input).toMatchObject({
      HealthCheckIntervalSeconds: 5,
      HealthCheckTimeoutSeconds: 4,
      HealthyThresholdCount: 2,
      UnhealthyThresholdCount: 2,
    });
    const groupTags = Object.fromEntries((inv.groups[0]!.Tags ?? []).map((t) => [t.Key, t.Value]));
    expect(groupTags).toMatchObject({ "kiln:env": "test", "kiln:app": "awsdemo", "kiln:digest": refs.d1 });
    // The release's template, not the environment's lock (also a launch template, kiln-lock-…).
    const lt = calls.find((c) => c.op === "CreateLaunchTemplate" && !String(c.input.LaunchTemplateName).startsWith("kiln-lock-"))!
      .input as { LaunchTemplateData: { MetadataOptions: unknown; UserData: string } };
    expect(lt.LaunchTemplateData.MetadataOptions).toMatchObject({ HttpTokens: "required" });
    expect(Buffer.from(lt.LaunchTemplateData.UserData, "base64").toString()).toContain("KILN_ENV=test");
    // Figures for the closing note: steps, API calls, time to switched traffic against the emulator.
    console.log(`first promote: ${result.plan.steps.length} steps, ${calls.length} API calls, ${seconds.toFixed(2)}s`);
  });

  it("a second deploy ends on the new target group; the old group and target group are gone; rollback returns", async () => {
    await promote({ ...opts(), ref: refs.v1 });
    calls = [];
    const started = performance.now();
    await promote({ ...opts(), ref: refs.v2 });
    console.log(`second promote: ${calls.length} API calls, ${((performance.now() - started) / 1000).toFixed(2)}s`);
    let inv = await inventory();
    expect(inv.groups.map((g) => g.Tags?.find((t) => t.Key === "kiln:digest")?.Value)).toEqual([refs.d2]);
    expect(inv.tgs).toHaveLength(1);
    expect(inv.listeners[0]!.DefaultActions![0]!.TargetGroupArn).toBe(inv.tgs[0]!.TargetGroupArn);
    for (const tg of inv.tgs) {
      const tags =
        (await clients().elbv2.send(new DescribeTagsCommand({ ResourceArns: [tg.TargetGroupArn!] }))).TagDescriptions![0]!.Tags ?? [];
      expect(tags.map((t) => t.Key)).toContain("kiln:env");
    }
    const status = await envStatus({ ...opts(), app: "awsdemo" });
    expect(status.live.history.map((h) => [h.result, h.image.digest])).toEqual([
      ["live", refs.d1],
      ["live", refs.d2],
      ["replaced", refs.d1],
    ]);

    await rollback({ ...opts(), app: "awsdemo" });
    inv = await inventory();
    expect(inv.groups.map((g) => g.Tags?.find((t) => t.Key === "kiln:digest")?.Value)).toEqual([refs.d1]);

    // Issue 18, item 7: destroy says what it removed and gives no URL; with the history gone
    // (it lives in the load balancer's tags), rollback says nothing runs and how to start again.
    const destroyed = await destroyEnv({ ...opts(), app: "awsdemo" });
    expect(destroyed.endpoint).toBeUndefined();
    expect(destroyed.removed?.releases.map((r) => r.ref)).toEqual([refs.v1]);
    expect(destroyed.removed?.shared).toMatch(/^load balancer/);
    expect((await envStatus({ ...opts(), app: "awsdemo" })).state).toBe("not-deployed");
    await expect(rollback({ ...opts(), app: "awsdemo" })).rejects.toThrow(/nothing runs in test, so there is nothing to roll back/);
    inv = await inventory();
    expect({
      groups: inv.groups.length,
      tgs: inv.tgs.length,
      lbs: inv.lbs.length,
      sgs: inv.sgs.length,
      templates: inv.templates.length,
    }).toEqual({ groups: 0, tgs: 0, lbs: 0, sgs: 0, templates: 0 });
  });

  it("a failed health gate never moves traffic and leaves nothing of the new release", async () => {
    await promote({ ...opts(), ref: refs.v1 });
    const before = await inventory();
    const unhealthy: HealthSource = async (arn, release) => {
      const targets = await (await import("../../src/aws/elbv2.js")).targetHealth(clients(), arn);
      return release.includes("2-0-0")
        ? targets.map((t) => ({ ...t, state: "unhealthy", reason: "Target.ResponseCodeMismatch" }))
        : targets;
    };
    writeConfig("", 3);
    await expect(promote({ ...opts(unhealthy), ref: refs.v2 })).rejects.toThrow(/did not become healthy[\s\S]*ResponseCodeMismatch/);
    const after = await inventory();
    expect(after.groups.map((g) => g.AutoScalingGroupName)).toEqual(before.groups.map((g) => g.AutoScalingGroupName));
    expect(after.tgs.map((t) => t.TargetGroupArn)).toEqual(before.tgs.map((t) => t.TargetGroupArn));
    expect(after.listeners[0]!.DefaultActions![0]!.TargetGroupArn).toBe(before.tgs[0]!.TargetGroupArn);
    const status = await envStatus({ ...opts(), app: "awsdemo" });
    expect(status.live.history.at(-1)).toMatchObject({ result: "failed", image: { digest: refs.d2 } });
    // Issue 18, item 6: status reports each target's health, and a live release with an
    // unhealthy target as degraded (injected: moto reports every target healthy).
    expect(status.state).toBe("live");
    const sick: HealthSource = async (arn) =>
      (await (await import("../../src/aws/elbv2.js")).targetHealth(clients(), arn)).map((t) => ({
        ...t,
        state: "unhealthy",
        reason: "Target.Timeout",
      }));
    const degraded = await envStatus({ ...opts(sick), app: "awsdemo" });
    expect(degraded.state).toBe("degraded");
    expect(degraded.releases[0]!.instances[0]!.health).toMatch(/target unhealthy \(Target\.Timeout\)$/);
  });

  it("interrupted after any step, a re-run converges to the same end state", async () => {
    const kinds = ["ensure-infrastructure", "launch", "attach", "wait-healthy", "switch-traffic", "drain", "delete-release", "record"];
    for (const [k, kind] of kinds.entries()) {
      await moto.reset();
      await promote({ ...opts(), ref: refs.v1 });
      let seen = 0;
      const beforeStep = async (step: DeployStep) => {
        if (step.kind === kind && seen++ === 0) throw new Error(`killed before ${kind}`);
      };
      await promote({ ...opts(), ref: refs.v2, beforeStep }).catch((e: Error) => expect(e.message).toContain("killed"));
      await promote({ ...opts(), ref: refs.v2 });
      const inv = await inventory();
      expect(
        inv.groups.map((g) => g.Tags?.find((t) => t.Key === "kiln:digest")?.Value),
        `interrupted before step ${k} (${kind})`,
      ).toEqual([refs.d2]);
      expect(inv.tgs).toHaveLength(1);
      expect(inv.listeners[0]!.DefaultActions![0]!.TargetGroupArn).toBe(inv.tgs[0]!.TargetGroupArn);
      expect(inv.rules).toEqual([]);
    }
  });

  it("targets that stay initial for several polls after the attach are waited for, not failed", async () => {
    await promote({ ...opts(), ref: refs.v1 });
    calls = [];
    const restore = configureTargetHealth({ initialPolls: 6 });
    const seen: string[] = [];
    const recording: HealthSource = async (arn, release) => {
      const targets = await targetHealth(clients(), arn);
      if (release.includes("2-0-0")) seen.push(...targets.map((t) => t.state));
      return targets;
    };
    try {
      await promote({ ...opts(recording), ref: refs.v2 });
    } finally {
      restore();
    }
    // Attached with weight 0 before the gate: the gate saw initial (never unused), then healthy.
    expect(seen).not.toContain("unused");
    expect(seen.filter((st) => st === "initial").length).toBeGreaterThanOrEqual(6);
    expect(seen.at(-1)).toBe("healthy");
    const attach = calls.find((c) => c.op === "ModifyListener")!.input as {
      DefaultActions: { ForwardConfig: { TargetGroups: { Weight: number }[] } }[];
    };
    expect(attach.DefaultActions[0]!.ForwardConfig.TargetGroups.map((t) => t.Weight)).toEqual([1, 0]);
    const inv = await inventory();
    expect(inv.groups.map((g) => g.Tags?.find((t) => t.Key === "kiln:digest")?.Value)).toEqual([refs.d2]);
    expect(inv.listeners[0]!.DefaultActions![0]!.TargetGroupArn).toBe(inv.tgs[0]!.TargetGroupArn);
  });

  it("targets the load balancer finds unhealthy: rolled back, the old group alone serves, nothing of the new one left", async () => {
    await promote({ ...opts(), ref: refs.v1 });
    const before = await inventory();
    writeConfig("", 3);
    const unmark = markUnhealthy((t) => t.targetGroupName.includes("2-0-0"));
    try {
      await expect(promote({ ...opts(), ref: refs.v2 })).rejects.toThrow(
        /did not become healthy[\s\S]*unhealthy, Target\.ResponseCodeMismatch/,
      );
    } finally {
      unmark();
    }
    const after = await inventory();
    expect(after.groups.map((g) => g.AutoScalingGroupName)).toEqual(before.groups.map((g) => g.AutoScalingGroupName));
    expect(after.tgs.map((t) => t.TargetGroupArn)).toEqual(before.tgs.map((t) => t.TargetGroupArn));
    // Detached again: a plain forward to the old group, no weighted leftovers, no rules.
    expect(after.listeners[0]!.DefaultActions).toEqual([
      expect.objectContaining({ Type: "forward", TargetGroupArn: before.tgs[0]!.TargetGroupArn }),
    ]);
    const named = after.listeners[0]!.DefaultActions!.flatMap((a) => [
      a.TargetGroupArn,
      ...(a.ForwardConfig?.TargetGroups ?? []).map((t) => t.TargetGroupArn),
    ]);
    expect(new Set(named.filter(Boolean))).toEqual(new Set([before.tgs[0]!.TargetGroupArn]));
    expect(after.rules).toEqual([]);
    const status = await envStatus({ ...opts(), app: "awsdemo" });
    expect(status.live.history.at(-1)).toMatchObject({ result: "failed", image: { digest: refs.d2 } });
  });

  it("a first promote whose targets are unhealthy leaves the listener answering 503 and no rule or group behind", async () => {
    writeConfig("", 3);
    const unmark = markUnhealthy((t) => t.targetGroupName.includes("1-0-0"));
    try {
      await expect(promote({ ...opts(), ref: refs.v1 })).rejects.toThrow(/did not become healthy/);
    } finally {
      unmark();
    }
    const inv = await inventory();
    expect(inv.tgs).toEqual([]);
    expect(inv.groups).toEqual([]);
    expect(inv.rules).toEqual([]);
    expect(inv.listeners[0]!.DefaultActions![0]!.Type).toBe("fixed-response");
  });

  it("bad environments are refused before anything is created", async () => {
    const c = clients();
    const vpc = (await c.ec2.send(new CreateVpcCommand({ CidrBlock: "10.9.0.0/16" }))).Vpc!.VpcId!;
    const foreign = (await c.ec2.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: "10.9.1.0/24", AvailabilityZone: `${REGION}a` })))
      .Subnet!.SubnetId!;
    const other = (await c.ec2.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: "10.9.2.0/24", AvailabilityZone: `${REGION}b` })))
      .Subnet!.SubnetId!;
    const cases: [string, RegExp][] = [
      ["    subnets: [subnet-1]\n", /at least two availability zones/],
      [`    vpc: vpc-doesnotmatter\n    subnets: [${foreign}, ${other}]\n`, /not in VPC vpc-doesnotmatter/],
      ["    instanceType: x9.imaginary\n", /x9\.imaginary is not offered/],
      ["    https: {}\n", /certificateArn: required/],
    ];
    for (const [extra, message] of cases) {
      writeConfig(extra);
      calls = [];
      await expect(promote({ ...opts(), ref: refs.v1 })).rejects.toThrow(message);
      expect(calls.some((call) => call.op.startsWith("Create"))).toBe(false);
    }
  });

  it("secrets in the environment get an instance role with exactly those permissions; destroy removes it", async () => {
    writeConfig("    env: { DB_PASSWORD: 'ssm:/shop/test/db-password', PLAIN: visible }\n");
    await promote({ ...opts(), ref: refs.v1 });
    const lt = calls.find((c) => c.op === "CreateLaunchTemplate" && !String(c.input.LaunchTemplateName).startsWith("kiln-lock-"))!
      .input as { LaunchTemplateData: { IamInstanceProfile?: { Name: string } } };
    const profile = lt.LaunchTemplateData.IamInstanceProfile?.Name;
    expect(profile).toBe("kiln-awsdemo-test");
    const put = calls.find((c) => c.op === "PutRolePolicy")!.input as { PolicyDocument: string };
    const policy = JSON.parse(put.PolicyDocument) as { Statement: { Action: string; Resource: string | string[] }[] };
    expect(policy.Statement[0]).toMatchObject({
      Action: "ssm:GetParameter",
      Resource: [`arn:aws:ssm:${REGION}:*:parameter/shop/test/db-password`],
    });
    // With the log shipping (cloudwatch on by default) in the same policy.
    expect(policy.Statement.map((st) => st.Action)).toEqual([
      "ssm:GetParameter",
      "kms:Decrypt",
      ["logs:CreateLogStream", "logs:PutLogEvents"],
    ]);
    await destroyEnv({ ...opts(), app: "awsdemo" });
    await expect(clients().iam.send(new GetRoleCommand({ RoleName: "kiln-awsdemo-test" }))).rejects.toThrow(
      /not found|cannot be found|NoSuchEntity/i,
    );
  });

  it("an environment without secrets and without CloudWatch Logs gets no role", async () => {
    writeConfig("    logs: { cloudwatch: false }\n");
    await promote({ ...opts(), ref: refs.v1 });
    const lt = calls.find((c) => c.op === "CreateLaunchTemplate" && !String(c.input.LaunchTemplateName).startsWith("kiln-lock-"))!
      .input as { LaunchTemplateData: { IamInstanceProfile?: unknown } };
    expect(lt.LaunchTemplateData.IamInstanceProfile).toBeUndefined();
    expect(calls.some((c) => c.op === "CreateRole")).toBe(false);
  });

  it("replaced releases keep their launch templates (the newest keepReleases); a rollback relaunches one as it was", async () => {
    writeConfig("    keepReleases: 1\n");
    // Tags read with DescribeTags: moto's DescribeLaunchTemplates shows only the tags given at creation.
    const templates = async () => {
      const ids = ((await clients().ec2.send(new DescribeLaunchTemplatesCommand({}))).LaunchTemplates ?? []).map(
        (t) => t.LaunchTemplateId!,
      );
      const tags = ids.length
        ? ((await clients().ec2.send(new DescribeEc2TagsCommand({ Filters: [{ Name: "resource-id", Values: ids }] }))).Tags ?? [])
        : [];
      const of = (id: string) => tags.filter((t) => t.ResourceId === id);
      return Object.fromEntries(
        ids.map((id) => [
          of(id).find((t) => t.Key === "kiln:digest")?.Value ?? id,
          { id, kept: of(id).some((t) => t.Key === "kiln:kept") },
        ]),
      );
    };
    await promote({ ...opts(), ref: refs.v1 });
    await promote({ ...opts(), ref: refs.v2 });
    const afterV2 = await templates();
    expect(afterV2).toEqual({ [refs.d1]: { id: expect.any(String), kept: true }, [refs.d2]: { id: expect.any(String), kept: false } });
    await promote({ ...opts(), ref: refs.v3 });
    // keepReleases: 1 → only v2's template is kept now.
    expect(Object.keys(await templates()).sort()).toEqual([refs.d2, refs.d3].sort());
    expect((await templates())[refs.d2]!.kept).toBe(true);
    calls = [];
    const result = await rollback({ ...opts(), app: "awsdemo" });
    expect(result.plan.steps.find((st) => st.kind === "launch")).toMatchObject({ image: { digest: refs.d2 } });
    expect(
      calls.filter(
        (c) =>
          (c.op === "CreateLaunchTemplate" || c.op === "CreateLaunchTemplateVersion") &&
          !String(c.input.LaunchTemplateName).startsWith("kiln-lock-"),
      ),
    ).toEqual([]);
    const create = calls.find((c) => c.op === "CreateAutoScalingGroup")!.input as { LaunchTemplate: { LaunchTemplateId: string } };
    expect(create.LaunchTemplate.LaunchTemplateId).toBe(afterV2[refs.d2]!.id);
    expect(await templates()).toEqual({
      [refs.d2]: { id: afterV2[refs.d2]!.id, kept: false },
      [refs.d3]: { id: expect.any(String), kept: true },
    });
    await destroyEnv({ ...opts(), app: "awsdemo" });
    expect(await templates()).toEqual({});
  });
});
