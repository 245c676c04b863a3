// Canary releases on AWS against moto with the real SDK clients: the listener first forwards a
// weighted share to the new target group, then switches; a canary whose targets turn unhealthy
// (injected: moto reports every target healthy) gives all traffic back and leaves nothing of the
// new release; a canary whose target 5xx rate (ALB metrics written into moto's CloudWatch, read
// back by kiln over HTTP) is over the current release's fails the same way, an equal one passes;
// kiln interrupted during the canary converges on a re-run.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { DescribeLaunchTemplatesCommand } from "@aws-sdk/client-ec2";
import {
  DescribeListenersCommand,
  DescribeLoadBalancersCommand,
  DescribeTargetGroupsCommand,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AwsClients } from "../../src/aws/clients.js";
import { targetHealth } from "../../src/aws/elbv2.js";
import { envStatus, promote, type ProviderFactory } from "../../src/deploy/promote.js";
import type { DeployStep } from "../../src/deploy/types.js";
import { iamPolicy } from "../../src/push/iam-policy.js";
import { AwsProvider, type HealthSource } from "../../src/providers/aws/provider.js";
import type { AwsEnvironment } from "../../src/config/environments.js";
import { bakeNativeReleases, quiet, sharedHome } from "./harness.js";
import { emulatorClients, startMoto, useEmulatorCredentials, type Moto, type RecordedCall } from "./moto.js";

const home = sharedHome();
const REGION = "eu-west-1";
let moto: Moto;
let app: string;
let refs: { v1: string; v2: string; d1: string; d2: string };
let calls: RecordedCall[] = [];

const clients = (): AwsClients => emulatorClients(moto, REGION, calls);
const providers =
  (health?: HealthSource): ProviderFactory =>
  (env) =>
    new AwsProvider(env as AwsEnvironment, clients(), home, { pollMs: 50, ...(health ? { health } : {}) });
const opts = (health?: HealthSource) => ({ home, config: app, envName: "test", progress: quiet, providers: providers(health) });
const canary = { percent: 10, seconds: 2 };

type Action = { Type?: string; TargetGroupArn?: string; ForwardConfig?: { TargetGroups?: { TargetGroupArn?: string; Weight?: number }[] } };
const listenerChanges = () => calls.filter((c) => c.op === "ModifyListener").map((c) => (c.input.DefaultActions as Action[])[0]!);
/** The attach before the health gate: a weighted forward that names the new group with weight 0. */
const isAttach = (a: Action) => (a.ForwardConfig?.TargetGroups ?? []).some((t) => t.Weight === 0);
/** The canary split: every group named gets a share. */
const isSplit = (a: Action) => Boolean(a.ForwardConfig) && !isAttach(a);
const kindOf = (a: Action, tgDigest: (arn: string | undefined) => string | undefined) =>
  isAttach(a) ? "attach" : isSplit(a) ? "split" : tgDigest(a.TargetGroupArn);

async function inventory() {
  const c = clients();
  const groups = (await c.autoscaling.send(new DescribeAutoScalingGroupsCommand({}))).AutoScalingGroups ?? [];
  const tgs = (await c.elbv2.send(new DescribeTargetGroupsCommand({}))).TargetGroups ?? [];
  const lbs = (await c.elbv2.send(new DescribeLoadBalancersCommand({}))).LoadBalancers ?? [];
  const templates = (await c.ec2.send(new DescribeLaunchTemplatesCommand({}))).LaunchTemplates ?? [];
  const listener = (await c.elbv2.send(new DescribeListenersCommand({ LoadBalancerArn: lbs[0]!.LoadBalancerArn }))).Listeners![0]!;
  const digestOf = (name: string) => groups.find((g) => g.AutoScalingGroupName === name)?.Tags?.find((t) => t.Key === "kiln:digest")?.Value;
  const tgDigest = (arn: string | undefined) =>
    digestOf(groups.find((g) => g.TargetGroupARNs?.includes(arn ?? ""))?.AutoScalingGroupName ?? "");
  return { groups, tgs, templates, action: listener.DefaultActions![0] as Action, tgDigest };
}

/**
 * Real target health, but once the listener has been split, first writes ALB metrics for both
 * target groups into moto's CloudWatch (requests and target 5xx), as the ALB would publish them:
 * namespace AWS/ApplicationELB, dimensions LoadBalancer = app/<name>/<id> and
 * TargetGroup = targetgroup/<name>/<id>, derived here independently of kiln.
 */
function albMetricsAfterSplit(
  canaryCounts: { requests: number; errors: number },
  currentCounts: { requests: number; errors: number },
): HealthSource {
  let written: Promise<void> | undefined;
  const raw = () => emulatorClients(moto, REGION);
  const put = async (lbArn: string, tgArn: string, counts: { requests: number; errors: number }) => {
    const Dimensions = [
      { Name: "LoadBalancer", Value: lbArn.split(":loadbalancer/")[1] },
      { Name: "TargetGroup", Value: tgArn.split(":").at(-1) },
    ];
    const datum = (MetricName: string, Value: number) => ({ MetricName, Dimensions, Value, Unit: "Count" as const, Timestamp: new Date() });
    // The ALB reports a 5xx count only when it is nonzero.
    await raw().cloudwatch.send(
      new PutMetricDataCommand({
        Namespace: "AWS/ApplicationELB",
        MetricData: [datum("RequestCount", counts.requests), ...(counts.errors ? [datum("HTTPCode_Target_5XX_Count", counts.errors)] : [])],
      }),
    );
  };
  return async (arn) => {
    const split = listenerChanges().find(isSplit);
    if (split && !written) {
      const [green, ...blue] = [...split.ForwardConfig!.TargetGroups!].sort((a, b) => a.Weight! - b.Weight!);
      written = (async () => {
        const lbArn = (await raw().elbv2.send(new DescribeLoadBalancersCommand({}))).LoadBalancers![0]!.LoadBalancerArn!;
        await put(lbArn, green!.TargetGroupArn!, canaryCounts);
        for (const b of blue) await put(lbArn, b.TargetGroupArn!, currentCounts);
      })();
    }
    await written;
    return targetHealth(clients(), arn);
  };
}

beforeAll(async () => {
  useEmulatorCredentials();
  moto = await startMoto();
  const baked = await bakeNativeReleases("canarydemo", ["1.0.0", "2.0.0"], home, (dir) =>
    writeFileSync(
      path.join(dir, "kiln.yml"),
      `cmd: ./server --listen 8080\nport: 8080\nhealthcheck: { path: /healthz }\nenvironments:\n  test:\n    target: aws\n    region: ${REGION}\n    instances: 2\n    deregistrationDelay: 0\n    healthcheck: { path: /healthz, timeout: 20 }\n`,
    ),
  );
  app = baked.app;
  const [v1, v2] = baked.images as [{ ref: string; digest: string }, { ref: string; digest: string }];
  refs = { v1: v1.ref, v2: v2.ref, d1: v1.digest, d2: v2.digest };
});
afterAll(async () => moto?.stop());
beforeEach(async () => {
  await moto.reset();
  await promote({ ...opts(), ref: refs.v1 });
  calls = [];
});

/** After a failed canary: the split, then all traffic back on v1; nothing of v2 left; history says failed. */
async function expectTrafficBackOnV1(): Promise<void> {
  const inv = await inventory();
  expect(listenerChanges().map((a) => kindOf(a, inv.tgDigest))).toEqual(["attach", "split", refs.d1]);
  expect(inv.groups.map((g) => g.Tags?.find((t) => t.Key === "kiln:digest")?.Value)).toEqual([refs.d1]);
  expect(inv.tgs).toHaveLength(1);
  expect(inv.templates).toHaveLength(1);
  const status = await envStatus({ ...opts(), app: "canarydemo" });
  expect(status.live.history.at(-1)).toMatchObject({ result: "failed", image: { digest: refs.d2 } });
}

describe.sequential("kiln promote --canary on AWS (moto)", () => {
  it("forwards 10% to the new target group, then switches all of it", async () => {
    const result = await promote({ ...opts(), ref: refs.v2, canary });
    expect(result.plan.steps.map((s) => s.kind)).toEqual([
      "launch",
      "attach",
      "wait-healthy",
      "canary",
      "switch-traffic",
      "drain",
      "delete-release",
      "record",
      "record",
    ]);
    const inv = await inventory();
    const [attach, split, full] = listenerChanges();
    expect(isAttach(attach!)).toBe(true);
    const weights = Object.fromEntries(
      (split!.ForwardConfig!.TargetGroups ?? []).map((t) => [inv.tgDigest(t.TargetGroupArn) ?? "deleted v1", t.Weight]),
    );
    expect(weights).toEqual({ [refs.d2]: 10, "deleted v1": 90 });
    expect(inv.tgDigest(full!.TargetGroupArn)).toBe(refs.d2);
    expect(inv.groups.map((g) => g.AutoScalingGroupName)).toHaveLength(1);
    expect(inv.tgDigest(inv.action.TargetGroupArn)).toBe(refs.d2);
  });

  it("targets of the canary turn unhealthy: all traffic goes back, the canary release is gone, history says failed", async () => {
    let split = false;
    const health: HealthSource = async (arn, release) => {
      split ||= listenerChanges().some(isSplit);
      const targets = await targetHealth(clients(), arn);
      return split && release.includes("2-0-0") ? targets.map((t) => ({ ...t, state: "unhealthy", reason: "Target.Timeout" })) : targets;
    };
    await expect(promote({ ...opts(health), ref: refs.v2, canary: { percent: 20, seconds: 30 } })).rejects.toThrow(
      /canary \S+ failed after \d+s: 2 of 2 targets unhealthy \(\S+: Target\.Timeout\)/,
    );
    await expectTrafficBackOnV1();
  });

  it("the canary answers more 5xx than the current release (CloudWatch): all traffic goes back, the canary release is gone, history says failed", async () => {
    const health = albMetricsAfterSplit({ requests: 20, errors: 8 }, { requests: 200, errors: 0 });
    await expect(promote({ ...opts(health), ref: refs.v2, canary: { percent: 10, seconds: 3 } })).rejects.toThrow(
      /canary \S+ failed after \d+s: canary answered 20 requests with 8 errors \(40\.0%\); current release 0\.0%/,
    );
    await expectTrafficBackOnV1();
  });

  it("the canary's 5xx rate equals the current release's (CloudWatch): the canary passes and the switch happens", async () => {
    // 4 % each: passes only when the current release's errors are read too (4 % against 0 % would fail).
    const health = albMetricsAfterSplit({ requests: 50, errors: 2 }, { requests: 500, errors: 20 });
    const result = await promote({ ...opts(health), ref: refs.v2, canary: { percent: 10, seconds: 3 } });
    expect(result.plan.steps.map((s) => s.kind)).toContain("canary");
    const inv = await inventory();
    expect(listenerChanges().map((a) => kindOf(a, inv.tgDigest))).toEqual(["attach", "split", refs.d2]);
    expect(inv.groups.map((g) => g.Tags?.find((t) => t.Key === "kiln:digest")?.Value)).toEqual([refs.d2]);
    // kiln asked CloudWatch for both target groups behind the ALB, and the policy grants it.
    type Query = {
      MetricStat?: { Metric?: { Namespace?: string; MetricName?: string; Dimensions?: { Name?: string; Value?: string }[] } };
    };
    const queried = calls
      .filter((c) => c.op === "GetMetricData")
      .flatMap((c) => c.input.MetricDataQueries as Query[])
      .map((q) => q.MetricStat!.Metric!);
    expect(new Set(queried.map((m) => `${m.Namespace} ${m.MetricName}`))).toEqual(
      new Set(["AWS/ApplicationELB RequestCount", "AWS/ApplicationELB HTTPCode_Target_5XX_Count"]),
    );
    expect(new Set(queried.map((m) => m.Dimensions!.find((d) => d.Name === "TargetGroup")!.Value)).size).toBe(2);
    expect(queried.every((m) => /^app\/[^/]+\/[^/]+$/.test(m.Dimensions!.find((d) => d.Name === "LoadBalancer")!.Value!))).toBe(true);
    const granted = new Set((iamPolicy().Statement as { Action: string | string[] }[]).flatMap((st) => [st.Action].flat()));
    expect(granted.has("cloudwatch:GetMetricData")).toBe(true);
  });

  it("a target the group just replaced is initial during the canary: pending, not a failure", async () => {
    let polls = 0;
    const health: HealthSource = async (arn, release) => {
      const targets = await targetHealth(clients(), arn);
      if (!(listenerChanges().some(isSplit) && release.includes("2-0-0"))) return targets;
      polls += 1;
      return targets.map((t, i) => (i === 0 ? { ...t, state: "initial", reason: "Elb.RegistrationInProgress" } : t));
    };
    const result = await promote({ ...opts(health), ref: refs.v2, canary: { percent: 10, seconds: 2 } });
    expect(result.executed).toBe(true);
    expect(polls).toBeGreaterThan(1);
    const inv = await inventory();
    expect(inv.tgDigest(inv.action.TargetGroupArn)).toBe(refs.d2);
  });

  it("kiln interrupted during the canary: the current release is still the live one, and a re-run converges", async () => {
    const beforeStep = async (step: DeployStep) => {
      if (step.kind === "switch-traffic") throw new Error("killed before switch-traffic");
    };
    await expect(promote({ ...opts(), ref: refs.v2, canary, beforeStep })).rejects.toThrow(/killed/);
    const midway = await envStatus({ ...opts(), app: "canarydemo" });
    const servingByDigest = Object.fromEntries(midway.live.releases.map((r) => [r.image.digest, r.serving]));
    expect(servingByDigest).toEqual({ [refs.d1]: true, [refs.d2]: false });
    expect(midway.live.releases.find((r) => r.serving)?.image.digest).toBe(refs.d1);
    await promote({ ...opts(), ref: refs.v2, canary });
    const inv = await inventory();
    expect(inv.groups.map((g) => g.Tags?.find((t) => t.Key === "kiln:digest")?.Value)).toEqual([refs.d2]);
    expect(inv.tgDigest(inv.action.TargetGroupArn)).toBe(refs.d2);
  });
});
