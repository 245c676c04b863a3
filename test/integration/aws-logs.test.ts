// Issue 17, item 2, on moto behind the strict layer: an AWS environment owns its CloudWatch Logs
// group /kiln/<app>/<env>. Promote creates it (tagged, retention from kiln.yml) and fixes a
// retention changed by hand; the release's user-data names it and the instance role may write to
// it; destroy deletes it unless --keep-logs; cloudwatch: false makes none of it. Also the layer's
// CloudWatch Logs rules (test/strict-aws/rules/cloudwatch-logs.ts): each refuses what moto accepts.
import { writeFileSync } from "node:fs";
import path from "node:path";
import {
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  DescribeLogGroupsCommand,
  type InputLogEvent,
  ListTagsForResourceCommand,
  PutLogEventsCommand,
  PutRetentionPolicyCommand,
} from "@aws-sdk/client-cloudwatch-logs";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type AwsClients, createAwsClients } from "../../src/aws/clients.js";
import type { AwsEnvironment } from "../../src/config/environments.js";
import { describeStep } from "../../src/deploy/plan.js";
import { destroyEnv, type ProviderFactory, promote } from "../../src/deploy/promote.js";
import { AwsProvider } from "../../src/providers/aws/provider.js";
import { bakeNativeReleases, quiet, sharedHome } from "./harness.js";
import { emulatorClients, type Moto, type RecordedCall, startMoto, useEmulatorCredentials } from "./moto.js";

const home = sharedHome();
const REGION = "eu-west-1";
const GROUP = "/kiln/logsdemo/test";
let moto: Moto;
let app: string;
let ref: string;
let calls: RecordedCall[] = [];

const clients = (): AwsClients => emulatorClients(moto, REGION, calls);
/** Straight to moto, past the strict layer: what moto alone accepts. */
const motoItself = (): AwsClients => createAwsClients({ region: REGION, endpoint: moto.upstream, maxAttempts: 1 });
const providers: ProviderFactory = (env) => new AwsProvider(env as AwsEnvironment, clients(), home, { pollMs: 50 });
const opts = { home, config: "", envName: "test", progress: quiet, providers };
const run = () => ({ ...opts, config: app });

function writeConfig(logs: string): void {
  writeFileSync(
    path.join(app, "kiln.yml"),
    `cmd: ./server --listen 8080\nport: 8080\nhealthcheck: { path: /healthz }\nenvironments:\n  test:\n    target: aws\n    region: ${REGION}\n` +
      `    instances: 1\n    min: 1\n    deregistrationDelay: 0\n    healthcheck: { path: /healthz, timeout: 30 }\n${logs}`,
  );
}

async function logGroup(): Promise<{ retention?: number; tags?: Record<string, string> } | undefined> {
  const c = motoItself();
  const group = (await c.logs.send(new DescribeLogGroupsCommand({ logGroupNamePrefix: GROUP }))).logGroups?.find(
    (g) => g.logGroupName === GROUP,
  );
  if (!group) return undefined;
  const tags = (await c.logs.send(new ListTagsForResourceCommand({ resourceArn: group.logGroupArn ?? group.arn!.replace(/:\*$/, "") })))
    .tags;
  return { ...(group.retentionInDays ? { retention: group.retentionInDays } : {}), ...(tags ? { tags } : {}) };
}

function userData(): string {
  const lt = calls.find((c) => c.op === "CreateLaunchTemplate" && !String(c.input.LaunchTemplateName).startsWith("kiln-lock-"))!.input as {
    LaunchTemplateData: { UserData: string; IamInstanceProfile?: { Name: string } };
  };
  return Buffer.from(lt.LaunchTemplateData.UserData, "base64").toString();
}

beforeAll(async () => {
  useEmulatorCredentials();
  moto = await startMoto();
  const baked = await bakeNativeReleases("logsdemo", ["1.0.0"], home, (dir) => {
    app = dir;
    writeConfig("");
  });
  ref = baked.images[0]!.ref;
});
afterAll(async () => moto?.stop());
beforeEach(async () => {
  await moto.reset();
  calls = [];
});

describe.sequential("the environment's log group (moto behind the strict layer)", () => {
  it("promote creates it tagged with retention 30, names it in user-data, grants the role exactly the writes", async () => {
    await promote({ ...run(), ref });
    expect(await logGroup()).toEqual({ retention: 30, tags: { "kiln:app": "logsdemo", "kiln:env": "test" } });
    expect(userData()).toContain(`KILN_CLOUDWATCH_LOGS=${GROUP}`);
    const put = calls.find((c) => c.op === "PutRolePolicy")!.input as { RoleName: string; PolicyDocument: string };
    expect(put.RoleName).toBe("kiln-logsdemo-test");
    // moto's account, read from the group's ARN.
    expect(JSON.parse(put.PolicyDocument)).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
          Resource: `arn:aws:logs:${REGION}:123456789012:log-group:${GROUP}:*`,
        },
      ],
    });
    expect(moto.strict!.calls.some((c) => c.service === "logs" && c.action === "CreateLogGroup" && c.status === 200)).toBe(true);

    // A retention changed by hand is drift: shown by --dry-run, put back by the next promote.
    await motoItself().logs.send(new PutRetentionPolicyCommand({ logGroupName: GROUP, retentionInDays: 90 }));
    const dry = await promote({ ...run(), ref, dryRun: true });
    expect(dry.plan.steps.map(describeStep)).toEqual([
      expect.stringMatching(new RegExp(`back in line: log group ${GROUP} keeps logs 90 days, the environment asks for 30 days$`)),
    ]);
    await promote({ ...run(), ref });
    expect((await logGroup())?.retention).toBe(30);
    // So is a new retention in kiln.yml (same release: the retention is not part of its configuration).
    writeConfig("    logs: { retentionDays: 7 }\n");
    expect((await promote({ ...run(), ref, dryRun: true })).plan.steps.map((s) => s.kind)).toEqual(["ensure-infrastructure"]);
    await promote({ ...run(), ref });
    expect((await logGroup())?.retention).toBe(7);

    // destroy --keep-logs keeps it; a later destroy deletes it.
    const kept = await destroyEnv({ ...run(), app: "logsdemo", keepLogs: true });
    expect(kept.plan.summary).toMatch(/keeping log group \/kiln\/logsdemo\/test$/);
    expect(await logGroup()).toBeDefined();
    const deleted = await destroyEnv({ ...run(), app: "logsdemo" });
    expect(deleted.plan.steps.map(describeStep)).toEqual([expect.stringMatching(/and log group \/kiln\/logsdemo\/test with its logs$/)]);
    expect(await logGroup()).toBeUndefined();
  });

  it("destroy deletes the group with the rest; cloudwatch: false makes no group, no role and no variable", async () => {
    writeConfig("");
    await promote({ ...run(), ref });
    await destroyEnv({ ...run(), app: "logsdemo" });
    expect(await logGroup()).toBeUndefined();

    calls = [];
    writeConfig("    logs: { cloudwatch: false }\n");
    await promote({ ...run(), ref });
    expect(await logGroup()).toBeUndefined();
    expect(userData()).not.toContain("KILN_CLOUDWATCH_LOGS");
    expect(calls.some((c) => c.op === "CreateRole" || c.op === "PutRolePolicy" || c.op === "CreateLogGroup")).toBe(false);
    await destroyEnv({ ...run(), app: "logsdemo" });
    writeConfig("");
  });
});

describe("CloudWatch Logs rules of the strict layer (each refuses what moto alone accepts)", () => {
  const now = Date.now();
  const event = (timestamp: number, message = "x"): InputLogEvent => ({ timestamp, message });
  const refusal = async (send: (c: AwsClients) => Promise<unknown>) => {
    const strict = await send(clients()).then(
      () => "accepted",
      (e: Error) => e.name,
    );
    const rule = moto.strict!.calls.at(-1)?.refusedBy ?? "-";
    const plain = await send(motoItself()).then(
      () => "accepted",
      (e: Error) => e.name,
    );
    return `${strict} by ${rule}; moto alone: ${plain}`;
  };
  async function stream(c: AwsClients, name: string) {
    await c.logs.send(new CreateLogGroupCommand({ logGroupName: name })).catch(() => undefined);
    await c.logs.send(new CreateLogStreamCommand({ logGroupName: name, logStreamName: "i-0123" })).catch(() => undefined);
  }
  const put = (events: InputLogEvent[]) => async (c: AwsClients) => {
    await stream(c, "/kiln/rules/test");
    return c.logs.send(new PutLogEventsCommand({ logGroupName: "/kiln/rules/test", logStreamName: "i-0123", logEvents: events }));
  };

  it("PutRetentionPolicy takes only CloudWatch's retention values", async () => {
    const retention = (days: number) => async (c: AwsClients) => {
      await c.logs.send(new CreateLogGroupCommand({ logGroupName: "/kiln/rules/retention" })).catch(() => undefined);
      return c.logs.send(new PutRetentionPolicyCommand({ logGroupName: "/kiln/rules/retention", retentionInDays: days }));
    };
    expect(await refusal(retention(31))).toBe("InvalidParameterException by logs-retention; moto alone: accepted");
    expect(await refusal(retention(30))).toBe("accepted by -; moto alone: accepted");
  });

  it("CreateLogGroup names are [.-_/#A-Za-z0-9]", async () => {
    const create = (name: string) => (c: AwsClients) => c.logs.send(new CreateLogGroupCommand({ logGroupName: name }));
    expect(await refusal(create("/kiln/my app"))).toBe("InvalidParameterException by logs-group-name; moto alone: accepted");
  });

  it("PutLogEvents: at most 10 000 events, 1 048 576 bytes (+26 per event), 24 hours, and at least one event", async () => {
    const many = Array.from({ length: 10_001 }, (_, i) => event(now - 10_001 + i));
    expect(await refusal(put(many))).toBe("InvalidParameterException by logs-put-events; moto alone: accepted");
    // 4 × 262 119 bytes of text fit alone but not with 26 bytes per event: 1 048 580 > 1 048 576.
    const big = Array.from({ length: 4 }, (_, i) => event(now - 10 + i, "y".repeat(262_119)));
    expect(await refusal(put(big))).toBe("InvalidParameterException by logs-put-events; moto alone: accepted");
    const fits = Array.from({ length: 4 }, (_, i) => event(now - 10 + i, "y".repeat(262_118)));
    expect(await refusal(put(fits))).toBe("accepted by -; moto alone: accepted");
    const span = [event(now - 25 * 3600_000), event(now)];
    expect(await refusal(put(span))).toBe("InvalidParameterException by logs-put-events; moto alone: accepted");
    expect(await refusal(put([]))).toMatch(/^InvalidParameterException by logs-put-events; moto alone: /);
  });
});
