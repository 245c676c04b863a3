// kiln logs --env for an AWS environment, against moto behind the strictness layer: the log group
// /kiln/<app>/<env> with one stream per instance id (two instances of a release's Auto Scaling
// group, launched by moto in two zones, and one stream of an instance that no longer exists),
// read as one time-ordered view prefixed with instance and zone; --since, --filter, --json,
// --release, -f (a line put after the command started), a missing group, and paging.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { AttachInstancesCommand, CreateAutoScalingGroupCommand, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { CloudWatchLogsClient, CreateLogGroupCommand, CreateLogStreamCommand, PutLogEventsCommand } from "@aws-sdk/client-cloudwatch-logs";
import { CreateLaunchTemplateCommand, DescribeSubnetsCommand, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAwsClients } from "../../src/aws/clients.js";
import { showAwsEnvLogs } from "../../src/logs/aws-env.js";
import { cli, repo } from "./harness.js";
import { startMoto, useEmulatorCredentials, type Moto } from "./moto.js";
import type { StrictRule } from "../strict-aws/layer.js";
import { awsError } from "../strict-aws/protocol.js";
import { STRICT_RULES } from "../strict-aws/rules/index.js";

const region = "us-east-1";
const app = "web";
const group = `/kiln/${app}/prod`;
const release = "web-prod-r1";
const GONE = "i-0000000000000dead";

describe.sequential("kiln logs --env (AWS: CloudWatch Logs, moto)", () => {
  let moto: Moto;
  let config = "";
  let logs: CloudWatchLogsClient;
  let env: Record<string, string> = {};
  // The layer reads this list on every request: a test adds a refusal for its own run.
  const rules: StrictRule[] = [...STRICT_RULES];
  const instances: { id: string; zone: string }[] = [];
  // Timestamps a minute ago, so --since 30s leaves them out; `old` two hours ago (outside the default hour).
  const t0 = Date.now() - 60_000;
  const old = Date.now() - 2 * 3600_000;
  const iso = (ms: number) => new Date(ms).toISOString();

  async function put(stream: string, events: { timestamp: number; message: string }[]): Promise<void> {
    await logs.send(new PutLogEventsCommand({ logGroupName: group, logStreamName: stream, logEvents: events }));
  }

  beforeAll(async () => {
    moto = await startMoto({ strict: { rules } });
    useEmulatorCredentials();
    // Setup goes straight to moto: the layer's rules are about what kiln sends.
    const setup = createAwsClients({ region, endpoint: moto.upstream, maxAttempts: 1 });
    const subnets = ((await setup.ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? [])
      .filter((s) => s.DefaultForAz)
      .sort((a, b) => (a.AvailabilityZone! < b.AvailabilityZone! ? -1 : 1))
      .slice(0, 2);
    const template = await setup.ec2.send(
      new CreateLaunchTemplateCommand({
        LaunchTemplateName: `kiln-${release}`,
        LaunchTemplateData: { ImageId: "ami-12c6146b", InstanceType: "t3.micro" },
      }),
    );
    await setup.autoscaling.send(
      new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: release,
        LaunchTemplate: { LaunchTemplateId: template.LaunchTemplate!.LaunchTemplateId!, Version: "$Latest" },
        MinSize: 1,
        MaxSize: 2,
        DesiredCapacity: 1,
        VPCZoneIdentifier: subnets[0]!.SubnetId!,
        Tags: [
          { Key: "kiln:app", Value: app, PropagateAtLaunch: true },
          { Key: "kiln:env", Value: "prod", PropagateAtLaunch: true },
          { Key: "kiln:release", Value: release, PropagateAtLaunch: true },
        ],
      }),
    );
    // moto puts a group's instances in one zone: the second joins from the other zone.
    const second = await setup.ec2.send(
      new RunInstancesCommand({
        ImageId: "ami-12c6146b",
        MinCount: 1,
        MaxCount: 1,
        InstanceType: "t3.micro",
        SubnetId: subnets[1]!.SubnetId!,
      }),
    );
    await setup.autoscaling.send(
      new AttachInstancesCommand({ AutoScalingGroupName: release, InstanceIds: [second.Instances![0]!.InstanceId!] }),
    );
    const asg = (await setup.autoscaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [release] })))
      .AutoScalingGroups![0]!;
    for (const i of asg.Instances ?? []) instances.push({ id: i.InstanceId!, zone: i.AvailabilityZone! });
    instances.sort((a, b) => (a.id < b.id ? -1 : 1));
    expect(new Set(instances.map((i) => i.zone)).size).toBe(2);

    logs = new CloudWatchLogsClient({ region, endpoint: moto.upstream, maxAttempts: 1 });
    await logs.send(new CreateLogGroupCommand({ logGroupName: group }));
    // Streams made in reverse id order: moto answers a millisecond's events in stream order, kiln must not.
    for (const stream of [GONE, ...instances.map((i) => i.id)].reverse())
      await logs.send(new CreateLogStreamCommand({ logGroupName: group, logStreamName: stream }));
    const [a, b] = instances;
    await put(a!.id, [
      { timestamp: old, message: "a old line" },
      { timestamp: t0, message: "a first" },
      { timestamp: t0 + 20, message: 'a second "quoted" [x]' },
    ]);
    await put(b!.id, [
      { timestamp: t0 + 10, message: "b first" },
      // Same millisecond as "a second": the order between streams must not depend on the API's.
      { timestamp: t0 + 20, message: "b tie" },
    ]);
    await put(GONE, [{ timestamp: t0 + 30, message: "gone instance line" }]);

    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-logs-env-"));
    writeFileSync(
      path.join(dir, "kiln.yml"),
      `name: ${app}\nenvironments:\n  prod:\n    target: aws\n    region: ${region}\n  staging:\n    target: aws\n    region: ${region}\n`,
    );
    config = dir;
    env = {
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_ACCESS_KEY_ID: "testing",
      AWS_SECRET_ACCESS_KEY: "testing",
      AWS_SESSION_TOKEN: "testing",
      KILN_HOME: mkdtempSync(path.join(os.tmpdir(), "kiln-home-")),
    };
  }, 120_000);
  afterAll(async () => moto?.stop());

  const run = (...args: string[]) => cli(["logs", "--env", "prod", "--app", app, "--config", config, ...args], env);

  it("interleaves every instance's stream in time order, each line prefixed with instance and zone", async () => {
    const [a, b] = instances;
    const out = await run();
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout.split("\n")).toEqual([
      `${a!.id} ${a!.zone} | ${iso(t0)} a first`,
      `${b!.id} ${b!.zone} | ${iso(t0 + 10)} b first`,
      // Equal timestamps: by stream name (a's id sorts first), whatever order CloudWatch answered in.
      `${a!.id} ${a!.zone} | ${iso(t0 + 20)} a second "quoted" [x]`,
      `${b!.id} ${b!.zone} | ${iso(t0 + 20)} b tie`,
      `${GONE} | ${iso(t0 + 30)} gone instance line`,
      "",
    ]);
    // Zones are looked up once per run, for the instances whose lines were read.
    const describes = moto.strict!.calls.filter((c) => c.action === "DescribeInstances");
    // (the first test: nothing before it went through the layer)
    expect(describes.length).toBe(1);
  });

  it("--since takes a duration or an ISO time and refuses anything else with an example", async () => {
    const recent = await run("--since", "30s");
    expect(recent.code, recent.stderr).toBe(0);
    expect(recent.stdout).toBe("");
    const longer = await run("--since", "3h");
    expect(longer.stdout.split("\n")[0]).toBe(`${instances[0]!.id} ${instances[0]!.zone} | ${iso(old)} a old line`);
    const fromIso = await run("--since", iso(t0 + 15));
    expect(fromIso.stdout.trim().split("\n").length).toBe(3);
    const bad = await run("--since", "yesterday");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--since 'yesterday': not a duration or a time/);
    expect(bad.stderr).toMatch(/30s, 10m, 2h, 1d.*2026-11-29T20:00:00Z/);
  });

  it("--filter keeps the lines that contain the text as typed, quotes and brackets included", async () => {
    const quoted = await run("--filter", '"quoted" [x]');
    expect(quoted.code, quoted.stderr).toBe(0);
    expect(quoted.stdout).toMatch(/^i-\S+ \S+ \| \S+ a second "quoted" \[x\]\n$/);
    const first = await run("--filter", "first");
    expect(
      first.stdout
        .trim()
        .split("\n")
        .map((l) => l.replace(/^.* \| \S+ /, "")),
    ).toEqual(["a first", "b first"]);
  });

  it("--json prints one object per line; --release keeps that release's instances and names it", async () => {
    const json = await run("--json");
    expect(json.code, json.stderr).toBe(0);
    const objects = json.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(objects[0]).toEqual({ time: iso(t0), instance: instances[0]!.id, zone: instances[0]!.zone, message: "a first" });
    expect(objects.at(-1)).toEqual({ time: iso(t0 + 30), instance: GONE, message: "gone instance line" });
    const only = await run("--json", "--release", release);
    expect(only.code, only.stderr).toBe(0);
    const rows = only.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(rows.length).toBe(4);
    expect(rows.every((r) => r.release === release && r.instance !== GONE)).toBe(true);
    const unknown = await run("--release", "web-prod-r9");
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/web-prod-r9/);
    expect(unknown.stderr).toMatch(/web-prod-r1/);
  });

  it("-f prints a line put after it started, once, until Ctrl-C", async () => {
    const child = spawn(
      process.execPath,
      ["--", path.join(repo, "bin", "kiln.js"), "logs", "--env", "prod", "--app", app, "--config", config, "-f"],
      { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<number | null>((resolve) => child.on("close", resolve));
    const until = async (check: () => boolean, ms: number) => {
      const deadline = Date.now() + ms;
      while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      return check();
    };
    expect(await until(() => stdout.includes("gone instance line"), 30_000), stderr).toBe(true);
    const now = Date.now();
    await put(instances[1]!.id, [{ timestamp: now, message: "written after the start" }]);
    expect(await until(() => stdout.includes("written after the start"), 15_000), stderr).toBe(true);
    // A few more polls: nothing is printed twice.
    await new Promise((r) => setTimeout(r, 4500));
    child.kill("SIGINT");
    expect(await exit, stderr).toBe(0);
    const lines = stdout.trim().split("\n");
    expect(lines.at(-1)).toBe(`${instances[1]!.id} ${instances[1]!.zone} | ${iso(now)} written after the start`);
    expect(lines.length).toBe(6);
  }, 60_000);

  it("pages with nextToken and keeps one millisecond's lines together across a page boundary", async () => {
    const clients = createAwsClients({ region, endpoint: moto.endpoint, maxAttempts: 1 });
    const filters = () => moto.strict!.calls.filter((c) => c.action === "FilterLogEvents").length;
    const before = filters();
    const lines: string[] = [];
    const printed = await showAwsEnvLogs({
      clients,
      group,
      since: t0,
      follow: false,
      json: false,
      missingHint: "",
      signal: new AbortController().signal,
      onLine: (line) => lines.push(line),
      pageSize: 2,
    });
    expect(printed).toBe(6);
    // Six events two to a page: three requests at least.
    const pages = filters() - before;
    const whole = await cli(["logs", "--env", "prod", "--app", app, "--config", config, "--since", iso(t0)], env);
    expect(lines.join("\n")).toBe(whole.stdout.trimEnd());
    expect(pages).toBeGreaterThanOrEqual(3);
  });

  it("following with a --filter that matches nothing reads on from the newest event, not the whole window again", async () => {
    const starts: number[] = [];
    const clients = createAwsClients({
      region,
      endpoint: moto.endpoint,
      maxAttempts: 1,
      onRequest: (op, input) => op === "FilterLogEvents" && starts.push(input.startTime as number),
    });
    const controller = new AbortController();
    const since = old - 1000;
    const lines: string[] = [];
    const following = showAwsEnvLogs({
      clients,
      group,
      since,
      follow: true,
      filter: "no line has this",
      json: false,
      missingHint: "",
      signal: controller.signal,
      onLine: (line) => lines.push(line),
      intervalMs: 50,
    });
    while (starts.length < 3) await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    expect(await following).toBe(0);
    expect(lines).toEqual([]);
    expect(starts[0]).toBe(since);
    // From 30 s before the newest event of the group (t0 + 30 or later), not from two hours ago.
    expect(starts[1]).toBeGreaterThanOrEqual(t0 + 30 - 30_000);
    expect(starts[2]).toBe(starts[1]);
  });

  it("a denied read says which permission is missing", async () => {
    const deny: StrictRule = {
      name: "test-deny-filter-log-events",
      source: "test",
      before: (request) =>
        request.action === "FilterLogEvents"
          ? awsError(request, 400, "AccessDeniedException", "User is not authorized to perform: logs:FilterLogEvents")
          : undefined,
    };
    rules.unshift(deny);
    try {
      const out = await run();
      expect(out.code).toBe(7);
      expect(out.stderr).toMatch(/AWS FilterLogEvents on log group \/kiln\/web\/prod failed: AccessDeniedException/);
      expect(out.stderr).toMatch(/lack permission logs:FilterLogEvents on log group \/kiln\/web\/prod; kiln iam-policy/);
    } finally {
      rules.splice(rules.indexOf(deny), 1);
    }
  });

  it("without ec2:DescribeInstances the lines still print, without zones, and the missing permission is named", async () => {
    const deny: StrictRule = {
      name: "test-deny-describe-instances",
      source: "test",
      before: (request) =>
        request.action === "DescribeInstances" ? awsError(request, 403, "UnauthorizedOperation", "You are not authorized") : undefined,
    };
    rules.unshift(deny);
    try {
      const out = await run("--filter", "first");
      expect(out.code, out.stderr).toBe(0);
      expect(out.stdout.trim().split("\n")).toEqual([
        `${instances[0]!.id} | ${iso(t0)} a first`,
        `${instances[1]!.id} | ${iso(t0 + 10)} b first`,
      ]);
      expect(out.stderr).toMatch(
        /DescribeInstances .* failed: UnauthorizedOperation.*lines are shown without zones.*ec2:DescribeInstances/,
      );
    } finally {
      rules.splice(rules.indexOf(deny), 1);
    }
  });

  it("a missing log group says why it may be missing and what to do", async () => {
    const out = await cli(["logs", "--env", "staging", "--app", app, "--config", config], env);
    expect(out.code).toBe(6);
    expect(out.stderr).toMatch(/no log group \/kiln\/web\/staging/);
    expect(out.stderr).toMatch(/cloudwatch: false|nothing has been promoted/);
  });
});
