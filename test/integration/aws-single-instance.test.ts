// The AWS single-instance mode (Elastic IP swap) against a real emulator (moto server) with the
// real SDK v3 clients: the first promote creates the Elastic IP, the security group and one
// tagged instance holding the address; a second promote moves the address and terminates the
// old instance; rollback; destroy leaves nothing; a failed health gate (injected: instances in
// the emulator run nothing) never moves the address and leaves nothing of the new release;
// interrupted before any step, a re-run converges; bad environments are refused before any
// Create*; status and history come from AWS tags alone. The default health check is exercised
// against a real local HTTP server.
import { writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import {
  CreateSubnetCommand,
  CreateVpcCommand,
  DescribeAddressesCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  type Instance,
} from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AwsClients } from "../../src/aws/clients.js";
import { destroyEnv, envStatus, promote, rollback, scaleEnv, type ProviderFactory } from "../../src/deploy/promote.js";
import type { DeployStep } from "../../src/deploy/types.js";
import { httpProbe, type InstanceHealthSource } from "../../src/providers/aws/instance-health.js";
import { SingleInstanceProvider } from "../../src/providers/aws/single-instance.js";
import { iamPolicy } from "../../src/push/iam-policy.js";
import { loadEnvironment, type AwsEnvironment } from "../../src/config/environments.js";
import { bakeNativeReleases, freshHome, quiet, sharedHome } from "./harness.js";
import { emulatorClients, startMoto, useEmulatorCredentials, type Moto, type RecordedCall } from "./moto.js";

const home = sharedHome();
const REGION = "eu-west-1";
let moto: Moto;
let app: string;
let refs: { v1: string; v2: string; d1: string; d2: string };
let calls: RecordedCall[] = [];
let probed: { release: string; instanceId: string; url: string }[] = [];

/** Recorded clients (what kiln sends); `recorded: false` for the test's own inspection calls. */
function clients(recorded = true): AwsClients {
  return emulatorClients(moto, REGION, recorded ? calls : undefined);
}

const healthy: InstanceHealthSource = async (target) => {
  probed.push(target);
  return { ok: true, detail: "HTTP 200" };
};

function providers(health: InstanceHealthSource = healthy): ProviderFactory {
  return (env) => new SingleInstanceProvider(env as AwsEnvironment, clients(), home, { pollMs: 20, health });
}

function writeConfig(extra = "", healthTimeout = 30): void {
  writeFileSync(
    path.join(app, "kiln.yml"),
    `cmd: ./server --listen 8080\nport: 8080\nhealthcheck: { path: /healthz }\nenvironments:\n  test:\n    target: aws\n    region: ${REGION}\n    mode: single-instance\n    deregistrationDelay: 0\n    healthcheck: { path: /healthz, timeout: ${healthTimeout} }\n${extra}`,
  );
}

const opts = (health?: InstanceHealthSource) => ({ home, config: app, envName: "test", progress: quiet, providers: providers(health) });
const tagsOf = (resource: { Tags?: { Key?: string; Value?: string }[] }) =>
  Object.fromEntries((resource.Tags ?? []).map((t) => [t.Key, t.Value]));

async function inventory() {
  const c = clients(false);
  const addresses = (await c.ec2.send(new DescribeAddressesCommand({}))).Addresses ?? [];
  const all = ((await c.ec2.send(new DescribeInstancesCommand({}))).Reservations ?? []).flatMap((r) => r.Instances ?? []);
  // Terminated instances stay visible (in AWS for about an hour, in moto until reset).
  const instances = all.filter((i) => i.State?.Name !== "terminated");
  const terminated = all.filter((i) => i.State?.Name === "terminated");
  const sgs = ((await c.ec2.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups ?? []).filter((g) =>
    g.GroupName?.startsWith("kiln-"),
  );
  const templates = (await c.ec2.send(new DescribeLaunchTemplatesCommand({}))).LaunchTemplates ?? [];
  return { addresses, instances, terminated, sgs, templates };
}

const digestOf = (i: Instance) => tagsOf(i)["kiln:digest"];

/** A progress that notes when the switch-traffic step finished (figures for the closing note). */
function switchTimer() {
  const timer = { started: performance.now(), switchedAt: 0, callsAtSwitch: 0, progress: quiet };
  timer.progress = {
    ...quiet,
    step: async (label, work) => {
      const result = await work();
      if (label.startsWith("switch traffic")) Object.assign(timer, { switchedAt: performance.now(), callsAtSwitch: calls.length });
      return result;
    },
  };
  return timer;
}

function measured(timer: ReturnType<typeof switchTimer>): string {
  const ebs = calls.filter((c) => /Snapshot/.test(c.op)).length;
  return `${calls.length} API calls (${ebs} of them snapshot calls of the AMI push), traffic switched after ${((timer.switchedAt - timer.started) / 1000).toFixed(2)}s and ${timer.callsAtSwitch} calls, done after ${((performance.now() - timer.started) / 1000).toFixed(2)}s`;
}

/** The live end state: one address on the only instance, which runs `digest`, with its template. */
async function expectLive(digest: string, because: string): Promise<void> {
  const inv = await inventory();
  expect(inv.instances.map(digestOf), because).toEqual([digest]);
  expect(inv.addresses, because).toHaveLength(1);
  expect(inv.addresses[0]!.InstanceId, because).toBe(inv.instances[0]!.InstanceId);
  expect(
    inv.templates.map((t) => t.LaunchTemplateName),
    because,
  ).toEqual([`kiln-${tagsOf(inv.instances[0]!)["kiln:release"]}`]);
  expect(inv.sgs, because).toHaveLength(1);
}

beforeAll(async () => {
  useEmulatorCredentials();
  moto = await startMoto();
  const baked = await bakeNativeReleases("solo", ["1.0.0", "2.0.0"], home, (dir) => {
    app = dir;
    writeConfig();
  });
  const [v1, v2] = baked.images as [{ ref: string; digest: string }, { ref: string; digest: string }];
  refs = { v1: v1.ref, v2: v2.ref, d1: v1.digest, d2: v2.digest };
});
afterAll(async () => moto?.stop());
beforeEach(async () => {
  await moto.reset();
  calls = [];
  probed = [];
  writeConfig();
});

describe.sequential("kiln promote, single-instance mode, on AWS (moto)", () => {
  it("first promote: an Elastic IP, the security group and one tagged instance that holds the address", async () => {
    const timer = switchTimer();
    const result = await promote({ ...opts(), progress: timer.progress, ref: refs.v1 });
    const figures = measured(timer);
    expect(result.plan.steps.map((s) => s.kind)).toEqual(["ensure-infrastructure", "launch", "wait-healthy", "switch-traffic", "record"]);
    const inv = await inventory();
    expect(inv.addresses).toHaveLength(1);
    expect(tagsOf(inv.addresses[0]!)).toMatchObject({ "kiln:app": "solo", "kiln:env": "test" });
    expect(inv.instances).toHaveLength(1);
    const instance = inv.instances[0]!;
    const release = tagsOf(instance)["kiln:release"]!;
    expect(tagsOf(instance)).toMatchObject({
      "kiln:app": "solo",
      "kiln:env": "test",
      "kiln:digest": refs.d1,
      "kiln:ref": refs.v1,
      "kiln:release": expect.stringMatching(/^solo-test-1-0-0-/),
    });
    expect(inv.addresses[0]!.InstanceId).toBe(instance.InstanceId);

    // The security group: tagged, the app's port open to the world, and on the instance's interface.
    expect(inv.sgs.map((g) => g.GroupName)).toEqual(["kiln-solo-test-instances"]);
    const sg = inv.sgs[0]!;
    expect(tagsOf(sg)).toMatchObject({ "kiln:app": "solo", "kiln:env": "test" });
    expect(sg.IpPermissions).toEqual([
      expect.objectContaining({ FromPort: 8080, ToPort: 8080, IpRanges: [expect.objectContaining({ CidrIp: "0.0.0.0/0" })] }),
    ]);
    expect(instance.NetworkInterfaces![0]!.Groups!.map((g) => g.GroupId)).toEqual([sg.GroupId]);

    // Placed in the first public subnet of the default VPC (all are public; by zone, then id), from its own launch template.
    const c = clients(false);
    const vpc = (await c.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: "isDefault", Values: ["true"] }] }))).Vpcs![0]!.VpcId!;
    const subnets = ((await c.ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: "vpc-id", Values: [vpc] }] }))).Subnets ?? [])
      .sort((a, b) => a.AvailabilityZone!.localeCompare(b.AvailabilityZone!) || a.SubnetId!.localeCompare(b.SubnetId!))
      .map((s) => s.SubnetId!);
    expect(instance.SubnetId).toBe(subnets[0]);
    expect(inv.templates.map((t) => t.LaunchTemplateName)).toEqual([`kiln-${release}`]);
    const run = calls.find((call) => call.op === "RunInstances")!.input as {
      NetworkInterfaces: { AssociatePublicIpAddress: boolean; SubnetId: string }[];
    };
    expect(run.NetworkInterfaces[0]).toMatchObject({ AssociatePublicIpAddress: true, SubnetId: subnets[0] });
    // The release's template, not the environment's lock (also a launch template, kiln-lock-…).
    const lt = calls.find((call) => call.op === "CreateLaunchTemplate" && !String(call.input.LaunchTemplateName).startsWith("kiln-lock-"))!
      .input as { LaunchTemplateData: { MetadataOptions: unknown; UserData: string; SecurityGroupIds?: unknown } };
    expect(lt.LaunchTemplateData.MetadataOptions).toMatchObject({ HttpTokens: "required" });
    expect(Buffer.from(lt.LaunchTemplateData.UserData, "base64").toString()).toContain("KILN_ENV=test");

    // Health was checked on the instance's own address (port and path of the image), not the Elastic IP.
    const eip = inv.addresses[0]!.PublicIp!;
    expect(probed.length).toBeGreaterThanOrEqual(2);
    expect(probed[0]!.url).toMatch(/^http:\/\/\d+\.\d+\.\d+\.\d+:8080\/healthz$/);
    expect(probed[0]!.url).not.toContain(`//${eip}:`);
    expect(result.endpoint).toBe(`http://${eip}:8080/`);

    const status = await envStatus({ ...opts(), app: "solo" });
    expect(status.live.releases).toEqual([
      expect.objectContaining({
        id: release,
        serving: true,
        instances: [expect.objectContaining({ id: instance.InstanceId, healthy: true })],
      }),
    ]);
    console.log(`single-instance first promote: ${result.plan.steps.length} steps, ${figures} (includes pushing the AMI)`);
  });

  it("a second promote moves the address and terminates the old instance; rollback returns; destroy leaves nothing", async () => {
    await promote({ ...opts(), ref: refs.v1 });
    const first = (await inventory()).instances[0]!;
    calls = [];
    const timer = switchTimer();
    const second = await promote({ ...opts(), progress: timer.progress, ref: refs.v2 });
    console.log(`single-instance second promote: ${second.plan.steps.length} steps, ${measured(timer)}`);
    expect(second.plan.steps.map((s) => s.kind)).toEqual([
      "launch",
      "wait-healthy",
      "switch-traffic",
      "drain",
      "delete-release",
      "record",
      "record",
    ]);
    // The move is one AssociateAddress with AllowReassociation, never a disassociate first.
    expect(calls.filter((c) => c.op === "AssociateAddress").map((c) => c.input.AllowReassociation)).toEqual([true]);
    expect(calls.some((c) => c.op === "DisassociateAddress")).toBe(false);
    await expectLive(refs.d2, "after the second promote");
    let inv = await inventory();
    expect(inv.terminated.map((i) => i.InstanceId)).toEqual([first.InstanceId]);
    expect(inv.templates.map((t) => t.LaunchTemplateName)).not.toContain(`kiln-${tagsOf(first)["kiln:release"]}`);
    const status = await envStatus({ ...opts(), app: "solo" });
    expect(status.live.history.map((h) => [h.result, h.image.digest])).toEqual([
      ["live", refs.d1],
      ["live", refs.d2],
      ["replaced", refs.d1],
    ]);

    await rollback({ ...opts(), app: "solo" });
    await expectLive(refs.d1, "after rollback");

    await destroyEnv({ ...opts(), app: "solo" });
    inv = await inventory();
    expect({
      addresses: inv.addresses.length,
      instances: inv.instances.length,
      sgs: inv.sgs.length,
      templates: inv.templates.length,
    }).toEqual({ addresses: 0, instances: 0, sgs: 0, templates: 0 });
  });

  it("a failed health gate never moves the address and leaves nothing of the new release", async () => {
    await promote({ ...opts(), ref: refs.v1 });
    const before = await inventory();
    const unhealthy: InstanceHealthSource = async (target) =>
      target.release.includes("2-0-0") ? { ok: false, detail: "HTTP 503" } : { ok: true, detail: "HTTP 200" };
    // 6 s: the gate's clock includes the wait for "running", which under the strict layer starts
    // with a DescribeInstances that does not know the new instance yet (rule ec2-describe-after-create).
    writeConfig("", 6);
    calls = [];
    await expect(promote({ ...opts(unhealthy), ref: refs.v2 })).rejects.toThrow(
      /did not become healthy: GET http:\/\/[\d.]+:8080\/healthz \(i-\w+\) not healthy within 6s: 0 of 2 checks in a row passed; last answer: HTTP 503/,
    );
    const after = await inventory();
    expect(after.addresses[0]!.InstanceId).toBe(before.instances[0]!.InstanceId);
    expect(after.instances.map((i) => i.InstanceId)).toEqual(before.instances.map((i) => i.InstanceId));
    const green = after.terminated.filter((i) => digestOf(i) === refs.d2);
    expect(green).toHaveLength(1);
    const left =
      after.instances.filter((i) => digestOf(i) === refs.d2).length +
      after.templates.filter((t) => t.LaunchTemplateName?.includes("2-0-0")).length;
    expect(left).toBe(0);
    expect(calls.some((c) => c.op === "AssociateAddress")).toBe(false);
    const status = await envStatus({ ...opts(), app: "solo" });
    expect(status.live.history.at(-1)).toMatchObject({ result: "failed", image: { digest: refs.d2 } });
    console.log(`single-instance failed promote: ${left} resources of the failed release left, ${calls.length} API calls`);
  });

  it("interrupted before any step, a re-run converges to the same end state", async () => {
    for (const kind of ["ensure-infrastructure", "launch", "wait-healthy", "switch-traffic", "record"]) {
      await moto.reset();
      let seen = 0;
      const beforeStep = async (step: DeployStep) => {
        if (step.kind === kind && seen++ === 0) throw new Error(`killed before ${kind}`);
      };
      await expect(promote({ ...opts(), ref: refs.v1, beforeStep })).rejects.toThrow(`killed before ${kind}`);
      await promote({ ...opts(), ref: refs.v1 });
      await expectLive(refs.d1, `first promote interrupted before ${kind}`);
    }
    for (const kind of ["launch", "wait-healthy", "switch-traffic", "drain", "delete-release", "record"]) {
      await moto.reset();
      await promote({ ...opts(), ref: refs.v1 });
      let seen = 0;
      const beforeStep = async (step: DeployStep) => {
        if (step.kind === kind && seen++ === 0) throw new Error(`killed before ${kind}`);
      };
      await expect(promote({ ...opts(), ref: refs.v2, beforeStep })).rejects.toThrow(`killed before ${kind}`);
      await promote({ ...opts(), ref: refs.v2 });
      await expectLive(refs.d2, `second promote interrupted before ${kind}`);
    }
  });

  it("killed between a launch template and its instance, the next run picks the release up (and deletes stray templates)", async () => {
    await promote({ ...opts(), ref: refs.v1 });
    // kiln dies as RunInstances is sent: nothing after it reaches AWS, not even the undo steps.
    // (The lock release, a DeleteLaunchTemplate of the lock's id, still goes through: a real kill
    // would leave the lock to the crashed-holder check, and this process is still alive.)
    const killedAtRunInstances: ProviderFactory = (env) => {
      const c = clients();
      let dead = false;
      let lockId: string | undefined;
      c.ec2.middlewareStack.add(
        (next, context) => async (args) => {
          const command = (context as { commandName?: string }).commandName;
          const input = args.input as { LaunchTemplateName?: string; LaunchTemplateId?: string };
          if (command === "RunInstancesCommand") dead = true;
          if (dead && !(command === "DeleteLaunchTemplateCommand" && input.LaunchTemplateId === lockId))
            throw new Error("killed during launch");
          const result = await next(args);
          if (command === "CreateLaunchTemplateCommand" && input.LaunchTemplateName?.startsWith("kiln-lock-")) {
            lockId = (result.output as { LaunchTemplate?: { LaunchTemplateId?: string } }).LaunchTemplate?.LaunchTemplateId;
          }
          return result;
        },
        { step: "initialize", name: "killAtRunInstances" },
      );
      return new SingleInstanceProvider(env as AwsEnvironment, c, home, { pollMs: 20, health: healthy });
    };
    await expect(promote({ ...opts(), providers: killedAtRunInstances, ref: refs.v2 })).rejects.toThrow(/killed during launch/);
    const killed = await inventory();
    expect(killed.templates).toHaveLength(2);
    expect(killed.instances.map(digestOf)).toEqual([refs.d1]);
    await promote({ ...opts(), ref: refs.v2 });
    await expectLive(refs.d2, "after a launch killed at RunInstances");
    // A template left by a release that never ran is deleted by the next promote.
    await promote({ ...opts(), providers: killedAtRunInstances, ref: refs.v1 }).catch(() => undefined);
    expect((await inventory()).templates).toHaveLength(2);
    await promote({ ...opts(), ref: refs.v2 });
    await expectLive(refs.d2, "after a stray template");
  });

  it("launch is idempotent: a release's live instance is reused, not doubled", async () => {
    const env = (await loadEnvironment(app, "solo", "/healthz", "test")) as AwsEnvironment;
    const provider = new SingleInstanceProvider(env, clients(), home, { pollMs: 20, health: healthy });
    await provider.ensureInfrastructure();
    const image = { ref: refs.v1, digest: refs.d1 };
    moto.strict?.calls.splice(0);
    await provider.launch("solo-test-1", image, 1);
    await provider.launch("solo-test-1", image, 1);
    // Launches that went through (a refused one, retried while EC2 did not know the new template yet, launched nothing).
    expect(moto.strict?.calls.filter((c) => c.action === "RunInstances" && c.status === 200)).toHaveLength(1);
    expect((await inventory()).instances).toHaveLength(1);
    await expect(provider.launch("solo-test-1", image, 2)).rejects.toThrow(/runs one instance, not 2/);
  });

  it("bad environments are refused before anything is created", async () => {
    const c = clients(false);
    const vpc = (await c.ec2.send(new CreateVpcCommand({ CidrBlock: "10.9.0.0/16" }))).Vpc!.VpcId!;
    const foreign = (await c.ec2.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: "10.9.1.0/24", AvailabilityZone: `${REGION}a` })))
      .Subnet!.SubnetId!;
    const empty = (await c.ec2.send(new CreateVpcCommand({ CidrBlock: "10.8.0.0/16" }))).Vpc!.VpcId!;
    const cases: [string, RegExp][] = [
      [
        `    https: { certificateArn: "arn:aws:acm:${REGION}:123456789012:certificate/abc" }\n`,
        /https: a single instance has no load balancer to terminate TLS; remove https: or use mode: load-balanced/,
      ],
      ["    instances: 2\n", /instances: a single-instance environment runs exactly 1 instance \(got 2\); use mode: load-balanced/],
      ["    max: 2\n", /min: 1 and max: 1/],
      ["    instanceType: x9.imaginary\n", /x9\.imaginary is not offered/],
      [`    vpc: vpc-doesnotmatter\n    subnets: [${foreign}]\n`, /not in VPC vpc-doesnotmatter/],
      [`    vpc: ${empty}\n`, new RegExp(`VPC ${empty} has no subnets`)],
    ];
    for (const [extra, message] of cases) {
      writeConfig(extra);
      calls = [];
      await expect(promote({ ...opts(), ref: refs.v1 }), extra).rejects.toThrow(message);
      expect(
        calls.filter((call) => /^(Create|Allocate|Run|Associate|Authorize|Put)/.test(call.op)).map((call) => call.op),
        extra,
      ).toEqual([]);
    }
  });

  it("status and history come from AWS tags alone: a second machine without the images sees them", async () => {
    await promote({ ...opts(), ref: refs.v1 });
    await promote({ ...opts(), ref: refs.v2 });
    const env = (await loadEnvironment(app, "solo", "/healthz", "test")) as AwsEnvironment;
    const elsewhere = new SingleInstanceProvider(env, emulatorClients(moto, REGION), freshHome("kiln-elsewhere-"), { health: healthy });
    const live = await elsewhere.observe();
    const eip = (await inventory()).addresses[0]!.PublicIp!;
    expect(live.infrastructure).toBe(true);
    expect(live.releases.map((r) => [r.image.digest, r.serving])).toEqual([[refs.d2, true]]);
    expect(live.history.map((h) => [h.result, h.image.digest])).toEqual([
      ["live", refs.d1],
      ["live", refs.d2],
      ["replaced", refs.d1],
    ]);
    expect(await elsewhere.endpoint()).toBe(`http://${eip}:8080/`);
  });

  it("scale is refused (load-balanced mode scales), and a held lock stops a second promote", async () => {
    await promote({ ...opts(), ref: refs.v1 });
    await expect(scaleEnv({ ...opts(), app: "solo", instances: 3 })).rejects.toThrow(/single-instance .* cannot scale to 3/);
    const env = (await loadEnvironment(app, "solo", "/healthz", "test")) as AwsEnvironment;
    const release = await new SingleInstanceProvider(env, clients(), home).lock("someone-else");
    await expect(promote({ ...opts(), ref: refs.v2 })).rejects.toThrow(/environment test is locked by someone-else/);
    await release();
    await promote({ ...opts(), ref: refs.v2 });
    await expectLive(refs.d2, "after the lock was released");
  });

  it("every AWS action kiln sends is in the policy kiln iam-policy prints", async () => {
    writeConfig("    env: { DB_PASSWORD: 'ssm:/solo/test/db' }\n");
    await promote({ ...opts(), ref: refs.v1 });
    await promote({ ...opts(), ref: refs.v2 });
    await destroyEnv({ ...opts(), app: "solo" });
    const granted = new Set((iamPolicy().Statement as { Action: string | string[] }[]).flatMap((s) => [s.Action].flat()));
    const ops = [...new Set(calls.map((c) => c.op))];
    expect(ops).toEqual(
      expect.arrayContaining([
        "AllocateAddress",
        "AssociateAddress",
        "RunInstances",
        "TerminateInstances",
        "ReleaseAddress",
        "CreateRole",
        "CreateLogGroup",
        "DeleteLogGroup",
      ]),
    );
    const missing = ops.filter((op) => !["ec2", "ebs", "iam", "logs"].some((service) => granted.has(`${service}:${op}`)));
    expect(missing).toEqual([]);
  });
});

describe("the default single-instance health check (a real HTTP server)", () => {
  it("passes 2xx and 3xx, fails other answers, refused connections and silence, saying which", async () => {
    const server = http.createServer((request, response) => {
      if (request.url === "/slow") return; // never answers
      const status = Number(request.url!.slice(1));
      response.writeHead(status, status === 302 ? { Location: "http://192.0.2.1/elsewhere" } : {}).end("x");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    const probe = httpProbe(300);
    const at = (p: string) => probe({ release: "r", instanceId: "i-1", url: `http://127.0.0.1:${port}${p}` });
    try {
      expect(await at("/200")).toEqual({ ok: true, detail: "HTTP 200" });
      expect(await at("/302")).toEqual({ ok: true, detail: "HTTP 302" });
      expect(await at("/503")).toEqual({ ok: false, detail: "HTTP 503" });
      expect(await at("/slow")).toEqual({ ok: false, detail: "no answer within 0.3s" });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    expect(await at("/200")).toEqual({ ok: false, detail: "ECONNREFUSED" });
  });
});
