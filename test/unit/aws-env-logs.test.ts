// Issue 17, item 2: an AWS environment owns its CloudWatch Logs group. Its logs: settings in
// kiln.yml, the plans that create, fix, delete or keep the group, the release's user-data and
// the instance role's exact permissions.
import { describe, expect, it } from "vitest";
import { type AwsEnvironment, parseEnvironments } from "../../src/config/environments.js";
import { describeStep, planBlueGreen, planDestroy, releaseId } from "../../src/deploy/plan.js";
import type { LiveState } from "../../src/deploy/types.js";
import { SpecError } from "../../src/errors.js";
import { accountOf, instancePolicy, releaseUserData } from "../../src/providers/aws/release-template.js";
import { awsEnv, now, release, state, v1, v2 } from "./helpers/deploy-fixtures.js";

const parse = (raw: Record<string, unknown>) => parseEnvironments({ prod: raw }, "shop", "/", "kiln.yml").get("prod");
const problems = (raw: Record<string, unknown>) => {
  try {
    parse(raw);
  } catch (error) {
    if (error instanceof SpecError) return error.message;
    throw error;
  }
  return "";
};
const aws = { target: "aws", region: "eu-west-1" };
const off: AwsEnvironment = { ...awsEnv, logs: { cloudwatch: false, retentionDays: 30 } };

describe("logs: in kiln.yml", () => {
  it("defaults to shipping, kept 30 days", () => {
    expect((parse(aws) as AwsEnvironment).logs).toEqual({ cloudwatch: true, retentionDays: 30 });
    expect((parse({ ...aws, logs: { cloudwatch: false, retentionDays: 365 } }) as AwsEnvironment).logs).toEqual({
      cloudwatch: false,
      retentionDays: 365,
    });
  });
  it("a retention CloudWatch does not accept is refused, naming the nearest it does", () => {
    expect(problems({ ...aws, logs: { retentionDays: 31 } })).toMatch(
      /environments\.prod\.logs\.retentionDays: CloudWatch Logs does not keep logs 31 days; the nearest it accepts: 30 or 60/,
    );
    expect(problems({ ...aws, logs: { retentionDays: 4000 } })).toMatch(/retentionDays/);
    expect(problems({ ...aws, logs: { retentionDays: 0 } })).toMatch(/retentionDays/);
    expect(problems({ ...aws, logs: { cloudwatch: "yes" } })).toMatch(/cloudwatch/);
  });
  it("a misspelt key gets a did-you-mean", () => {
    expect(problems({ ...aws, logs: { retentionDay: 30 } })).toMatch(/retentionDay.*did you mean retentionDays/);
  });
  it("a local environment refuses logs: (its logs are its VMs' consoles)", () => {
    expect(problems({ target: "local", logs: { cloudwatch: true } })).toMatch(
      /environments\.prod\.logs: only an aws environment ships logs to CloudWatch/,
    );
  });
});

describe("the environment's log group in plans", () => {
  const first = (env: AwsEnvironment) => describeStep(planBlueGreen(env, v1, "1.0.0", state(false), now).steps[0]!);
  it("promote creates it with the retention; not with cloudwatch: false", () => {
    expect(first({ ...awsEnv, logs: { cloudwatch: true, retentionDays: 7 } })).toMatch(
      /; log group \/kiln\/shop\/dev keeping logs 7 days$/,
    );
    expect(first(off)).not.toMatch(/log group/);
  });
  it("a retention changed by hand is drift the promote fixes", () => {
    const id = releaseId(awsEnv, v1, "1.0.0");
    const drift = ["log group /kiln/shop/dev keeps logs 90 days, the environment asks for 30 days"];
    const steps = planBlueGreen(awsEnv, v1, "1.0.0", { ...state(true, [release(id, v1, true)]), drift }, now).steps;
    expect(steps.map(describeStep)).toEqual([
      "bring the environment's load balancer (drops invalid HTTP header fields), HTTP listener on 80 and security groups back in line: " +
        "log group /kiln/shop/dev keeps logs 90 days, the environment asks for 30 days",
    ]);
  });
  it("turning cloudwatch on or off makes a new release (the user-data changes); the retention does not", () => {
    const id = releaseId(awsEnv, v1, "1.0.0");
    expect(releaseId(off, v1, "1.0.0")).not.toBe(id);
    expect(releaseId({ ...awsEnv, logs: { cloudwatch: true, retentionDays: 365 } }, v1, "1.0.0")).toBe(id);
  });
  it("destroy deletes the group, or keeps it with --keep-logs; the summary says which", () => {
    const live: LiveState = { ...state(true, [release(releaseId(awsEnv, v2, "2.0.0"), v2, true)]), logGroup: "/kiln/shop/dev" };
    const deleting = planDestroy(awsEnv, live, now);
    expect(deleting.summary).toBe("destroy everything of shop in dev, log group /kiln/shop/dev included");
    expect(describeStep(deleting.steps.find((s) => s.kind === "delete-infrastructure")!)).toMatch(
      / and log group \/kiln\/shop\/dev with its logs$/,
    );
    const keeping = planDestroy(awsEnv, live, now, { keepLogs: true });
    expect(keeping.summary).toBe("destroy everything of shop in dev, keeping log group /kiln/shop/dev");
    expect(keeping.steps.find((s) => s.kind === "delete-infrastructure")).toMatchObject({
      logGroup: { name: "/kiln/shop/dev", keep: true },
    });
  });
  it("a log group left alone is deleted by the next destroy, unless kept again", () => {
    const left: LiveState = { ...state(false), logGroup: "/kiln/shop/dev" };
    expect(planDestroy(awsEnv, left, now).steps.map((s) => s.kind)).toEqual(["delete-infrastructure"]);
    expect(planDestroy(awsEnv, left, now, { keepLogs: true }).steps).toEqual([]);
  });
});

describe("the release's user-data and instance role", () => {
  it("user-data names the group only with cloudwatch on", () => {
    expect(releaseUserData(awsEnv)).toEqual({ KILN_ENV: "dev", KILN_CLOUDWATCH_LOGS: "/kiln/shop/dev" });
    expect(releaseUserData(off)).toEqual({ KILN_ENV: "dev" });
  });
  it("the role may create streams and put events in the environment's group, and nothing else", () => {
    expect(instancePolicy(awsEnv, {}, "eu-west-1", "123456789012")).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
          Resource: "arn:aws:logs:eu-west-1:123456789012:log-group:/kiln/shop/dev:*",
        },
      ],
    });
  });
  it("with secrets too, one policy holds both; with neither there is no role", () => {
    const policy = instancePolicy(awsEnv, { DB: "ssm:/shop/db" }, "eu-west-1", "*") as { Statement: { Action: unknown }[] };
    expect(policy.Statement.map((s) => s.Action)).toEqual([
      "ssm:GetParameter",
      "kms:Decrypt",
      ["logs:CreateLogStream", "logs:PutLogEvents"],
    ]);
    expect(instancePolicy(off, {}, "eu-west-1", "*")).toBeUndefined();
    expect((instancePolicy(off, { DB: "ssm:/shop/db" }, "eu-west-1", "*") as { Statement: unknown[] }).Statement).toHaveLength(2);
  });
  it("the account comes from the group's ARN, else a wildcard", () => {
    expect(accountOf("arn:aws:logs:eu-west-1:123456789012:log-group:/kiln/shop/dev:*")).toBe("123456789012");
    expect(accountOf(undefined)).toBe("*");
  });
});
