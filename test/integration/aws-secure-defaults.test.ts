// Secure by default, as AWS Security Hub's foundational best practices expect, through the
// strictness layer: encrypted root volumes in both AWS modes (account default key or the
// environment's kmsKeyId), an HTTPS listener with a TLS 1.2+/1.3 policy and an HTTP listener
// that redirects to it, an ALB that drops invalid header fields; each shown by --dry-run, and
// brought back by a re-run when changed by hand. Also the AMI's SriovNetSupport flag against
// the ixgbevf driver in the pushed image (issue 13, bug 8).
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { DescribeSecurityGroupsCommand } from "@aws-sdk/client-ec2";
import {
  DescribeListenersCommand,
  DescribeLoadBalancerAttributesCommand,
  DescribeLoadBalancersCommand,
  type Listener,
  ModifyListenerCommand,
  ModifyLoadBalancerAttributesCommand,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AwsClients } from "../../src/aws/clients.js";
import type { AwsEnvironment } from "../../src/config/environments.js";
import { describeStep } from "../../src/deploy/plan.js";
import { type ProviderFactory, promote } from "../../src/deploy/promote.js";
import { ImageStore } from "../../src/image/store.js";
import { AwsProvider } from "../../src/providers/aws/provider.js";
import { SingleInstanceProvider } from "../../src/providers/aws/single-instance.js";
import { pushImage } from "../../src/push/push.js";
import { bakeNativeReleases, quiet, sharedHome } from "./harness.js";
import { emulatorClients, type Moto, type RecordedCall, startMoto, useEmulatorCredentials } from "./moto.js";

const home = sharedHome();
const REGION = "eu-west-1";
const DEFAULT_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09";
const KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
let moto: Moto;
let app: string;
let ref: string;
let digest: string;
let volumeGiB: number;
let calls: RecordedCall[] = [];

const clients = (recorded = true): AwsClients => emulatorClients(moto, REGION, recorded ? calls : undefined);

function writeConfig(extra: string, instances = 2): void {
  writeFileSync(
    path.join(app, "kiln.yml"),
    `cmd: ./server --listen 8080\nport: 8080\nhealthcheck: { path: /healthz }\nenvironments:\n  test:\n    target: aws\n    region: ${REGION}\n    instances: ${instances}\n    deregistrationDelay: 0\n    healthcheck: { path: /healthz, timeout: 30 }\n${extra}`,
  );
}

const loadBalanced: ProviderFactory = (env) => new AwsProvider(env as AwsEnvironment, clients(), home, { pollMs: 50 });
const singleInstance: ProviderFactory = (env) =>
  new SingleInstanceProvider(env as AwsEnvironment, clients(), home, {
    pollMs: 20,
    health: async () => ({ ok: true, detail: "HTTP 200" }),
  });
const opts = (providers: ProviderFactory) => ({ home, config: app, envName: "test", progress: quiet, providers });

/** An ACM certificate in moto (the SDK's ACM client is not a kiln dependency; moto reads the scope, not the signature). */
async function requestCertificate(): Promise<string> {
  const response = await fetch(moto.upstream, {
    method: "POST",
    headers: {
      authorization: `AWS4-HMAC-SHA256 Credential=testing/20260101/${REGION}/acm/aws4_request, SignedHeaders=host, Signature=0`,
      "x-amz-target": "CertificateManager.RequestCertificate",
      "content-type": "application/x-amz-json-1.1",
    },
    body: JSON.stringify({ DomainName: "app.example.com" }),
  });
  return ((await response.json()) as { CertificateArn: string }).CertificateArn;
}

async function loadBalancer() {
  const c = clients(false);
  const lb = (await c.elbv2.send(new DescribeLoadBalancersCommand({}))).LoadBalancers![0]!;
  const listeners = (await c.elbv2.send(new DescribeListenersCommand({ LoadBalancerArn: lb.LoadBalancerArn }))).Listeners ?? [];
  const attributes =
    (await c.elbv2.send(new DescribeLoadBalancerAttributesCommand({ LoadBalancerArn: lb.LoadBalancerArn }))).Attributes ?? [];
  const attribute = (key: string) => attributes.find((a) => a.Key === key)?.Value;
  const on = (port: number) => listeners.find((l) => l.Port === port);
  return { lb, listeners, attribute, https: on(443), http: on(80) };
}

const redirect = (l: Listener | undefined) => l?.DefaultActions?.[0]?.RedirectConfig;

beforeAll(async () => {
  useEmulatorCredentials();
  moto = await startMoto();
  const baked = await bakeNativeReleases("secure", ["1.0.0"], home, (dir) => {
    app = dir;
    writeConfig("");
  });
  ref = baked.images[0]!.ref;
  digest = baked.images[0]!.digest;
  volumeGiB = (await new ImageStore(home).resolve(digest)).manifest.layout.volumeGiB;
});
afterAll(async () => moto?.stop());
beforeEach(async () => {
  await moto.reset();
  calls = [];
});

describe.sequential("secure defaults on AWS (moto behind the strict layer)", () => {
  it("load-balanced with https: TLS 1.2+/1.3 policy, HTTP→HTTPS redirect, invalid headers dropped, encrypted root volumes", async () => {
    const certificate = await requestCertificate();
    writeConfig(`    https: { certificateArn: "${certificate}" }\n    kmsKeyId: ${KEY}\n`);
    const dry = await promote({ ...opts(loadBalanced), ref, dryRun: true });
    const planned = dry.plan.steps.map(describeStep).join("\n");
    expect(planned).toContain(`HTTPS listener on 443 with TLS policy ${DEFAULT_POLICY}`);
    expect(planned).toContain("HTTP listener on 80 redirecting to HTTPS (301)");
    expect(planned).toContain("drops invalid HTTP header fields");
    expect(planned).toContain(`root volume encrypted with KMS key ${KEY}`);

    const result = await promote({ ...opts(loadBalanced), ref });
    expect(result.endpoint).toMatch(/^https:\/\//);
    const template = calls.find((c) => c.op === "CreateLaunchTemplate" && JSON.stringify(c.input).includes("ImageId"))!.input as {
      LaunchTemplateData: Record<string, unknown>;
    };
    expect(template.LaunchTemplateData.BlockDeviceMappings).toEqual([
      {
        DeviceName: "/dev/xvda",
        Ebs: { Encrypted: true, KmsKeyId: KEY, VolumeSize: volumeGiB, VolumeType: "gp3", DeleteOnTermination: true },
      },
    ]);

    const { https, http, attribute, listeners } = await loadBalancer();
    expect(listeners).toHaveLength(2);
    expect(https).toMatchObject({ Protocol: "HTTPS", SslPolicy: DEFAULT_POLICY, Certificates: [{ CertificateArn: certificate }] });
    expect(https?.DefaultActions?.[0]?.Type).toBe("forward");
    expect(http?.Protocol).toBe("HTTP");
    expect(redirect(http)).toMatchObject({ Protocol: "HTTPS", Port: "443", StatusCode: "HTTP_301" });
    expect(attribute("routing.http.drop_invalid_header_fields.enabled")).toBe("true");
    // The load balancer's group lets port 80 in too: the redirect must be reachable.
    const sg = (await clients(false).ec2.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups!.find((g) =>
      g.GroupName?.endsWith("-lb"),
    )!;
    expect((sg.IpPermissions ?? []).map((p) => p.FromPort).sort()).toEqual([443, 80]);
  });

  it("settings changed by hand show in --dry-run and a re-run brings them back", async () => {
    const certificate = await requestCertificate();
    writeConfig(`    https: { certificateArn: "${certificate}" }\n`);
    await promote({ ...opts(loadBalanced), ref });
    const before = await loadBalancer();
    const c = clients(false);
    await c.elbv2.send(
      new ModifyLoadBalancerAttributesCommand({
        LoadBalancerArn: before.lb.LoadBalancerArn,
        Attributes: [{ Key: "routing.http.drop_invalid_header_fields.enabled", Value: "false" }],
      }),
    );
    await c.elbv2.send(new ModifyListenerCommand({ ListenerArn: before.https!.ListenerArn, SslPolicy: "ELBSecurityPolicy-2016-08" }));
    await c.elbv2.send(new ModifyListenerCommand({ ListenerArn: before.http!.ListenerArn, DefaultActions: before.https!.DefaultActions }));

    const dry = await promote({ ...opts(loadBalanced), ref, dryRun: true });
    expect(dry.plan.steps.map((s) => s.kind)).toEqual(["ensure-infrastructure"]);
    const planned = describeStep(dry.plan.steps[0]!);
    expect(planned).toMatch(/keeps invalid HTTP header fields/);
    expect(planned).toMatch(/TLS policy ELBSecurityPolicy-2016-08/);
    expect(planned).toMatch(/HTTP listener on 80 does not redirect/);

    await promote({ ...opts(loadBalanced), ref });
    const after = await loadBalancer();
    expect(after.attribute("routing.http.drop_invalid_header_fields.enabled")).toBe("true");
    expect(after.https?.SslPolicy).toBe(DEFAULT_POLICY);
    expect(redirect(after.http)).toMatchObject({ Protocol: "HTTPS", StatusCode: "HTTP_301" });
    expect(after.https?.DefaultActions?.[0]?.Type).toBe("forward");
    expect((await promote({ ...opts(loadBalanced), ref, dryRun: true })).plan.steps).toEqual([]);
  });

  it("without https: one HTTP listener that serves; adding https later moves the serving to 443 and redirects 80", async () => {
    writeConfig("");
    await promote({ ...opts(loadBalanced), ref });
    const first = await loadBalancer();
    expect(first.listeners.map((l) => [l.Port, l.Protocol, l.DefaultActions?.[0]?.Type])).toEqual([[80, "HTTP", "forward"]]);
    expect(first.attribute("routing.http.drop_invalid_header_fields.enabled")).toBe("true");
    const served = first.http!.DefaultActions![0]!;
    const group = served.TargetGroupArn ?? served.ForwardConfig?.TargetGroups?.[0]?.TargetGroupArn;

    writeConfig(`    https: { certificateArn: "${await requestCertificate()}" }\n`);
    const dry = await promote({ ...opts(loadBalanced), ref, dryRun: true });
    expect(dry.plan.steps.map(describeStep)).toEqual([expect.stringMatching(/back in line: there is no HTTPS listener on 443; the HTTP/)]);
    await promote({ ...opts(loadBalanced), ref });
    const after = await loadBalancer();
    const forward = after.https?.DefaultActions?.[0];
    expect(forward?.TargetGroupArn ?? forward?.ForwardConfig?.TargetGroups?.[0]?.TargetGroupArn).toBe(group);
    expect(redirect(after.http)).toMatchObject({ Protocol: "HTTPS", StatusCode: "HTTP_301" });
  });

  it("removing https, and turning deletion protection on and off, are planned fixes: 80 serves again, 443 goes", async () => {
    writeConfig(`    https: { certificateArn: "${await requestCertificate()}" }\n`);
    await promote({ ...opts(loadBalanced), ref });
    const served = (await loadBalancer()).https!.DefaultActions![0]!;
    const group = served.TargetGroupArn ?? served.ForwardConfig?.TargetGroups?.[0]?.TargetGroupArn;

    writeConfig("    deletionProtection: true\n");
    const dry = await promote({ ...opts(loadBalanced), ref, dryRun: true });
    const planned = dry.plan.steps.map(describeStep).join("\n");
    expect(planned).toMatch(/HTTP listener on 80 redirects to HTTPS/);
    expect(planned).toMatch(/HTTPS listener on 443 remains/);
    expect(planned).toMatch(/deletion protection is off/);
    await promote({ ...opts(loadBalanced), ref });
    const after = await loadBalancer();
    expect(after.listeners.map((l) => [l.Port, l.Protocol, l.DefaultActions?.[0]?.Type])).toEqual([[80, "HTTP", "forward"]]);
    const forward = after.http!.DefaultActions![0]!;
    expect(forward.TargetGroupArn ?? forward.ForwardConfig?.TargetGroups?.[0]?.TargetGroupArn).toBe(group);
    expect(after.attribute("deletion_protection.enabled")).toBe("true");

    writeConfig("");
    expect((await promote({ ...opts(loadBalanced), ref, dryRun: true })).plan.steps.map(describeStep).join("\n")).toMatch(
      /deletion protection is on/,
    );
    await promote({ ...opts(loadBalanced), ref });
    expect((await loadBalancer()).attribute("deletion_protection.enabled")).toBe("false");
    expect((await promote({ ...opts(loadBalanced), ref, dryRun: true })).plan.steps).toEqual([]);
  });

  it("an sslPolicy AWS does not know is refused by CreateListener (strict layer), before any release launches", async () => {
    const certificate = await requestCertificate();
    writeConfig(`    https: { certificateArn: "${certificate}", sslPolicy: ELBSecurityPolicy-Made-Up-2099 }\n`);
    await expect(promote({ ...opts(loadBalanced), ref })).rejects.toThrow(/SSLPolicyNotFound|ELBSecurityPolicy-Made-Up-2099/);
    expect(calls.some((c) => c.op === "CreateAutoScalingGroup")).toBe(false);
  });

  it("single-instance: the launch template encrypts the root volume with the account's default key", async () => {
    writeConfig("    mode: single-instance\n", 1);
    const dry = await promote({ ...opts(singleInstance), ref, dryRun: true });
    expect(dry.plan.steps.map(describeStep).join("\n")).toContain("root volume encrypted with the account's default EBS key");
    await promote({ ...opts(singleInstance), ref });
    const template = calls.find((c) => c.op === "CreateLaunchTemplate" && JSON.stringify(c.input).includes("ImageId"))!.input as {
      LaunchTemplateData: Record<string, unknown>;
    };
    expect(template.LaunchTemplateData.BlockDeviceMappings).toEqual([
      { DeviceName: "/dev/xvda", Ebs: { Encrypted: true, VolumeSize: volumeGiB, VolumeType: "gp3", DeleteOnTermination: true } },
    ]);
  });

  it("the AMI asks for SriovNetSupport and the pushed image carries ixgbevf for the Intel 82599 VF", async () => {
    const stored = await new ImageStore(home).resolve(digest);
    // The initramfs from the image's own boot partition: what EC2 would boot.
    const boot = stored.manifest.layout.partitions.find((p) => p.name === "boot")!;
    const initrd = execFileSync("mtype", ["-i", `${stored.disk}@@${boot.offsetBytes}`, "::/initrd.img"], {
      maxBuffer: 256 << 20,
      encoding: "buffer",
    });
    const cpio = gunzipSync(initrd).toString("latin1");
    expect(cpio).toContain("lib/modules/ixgbevf.ko");
    expect(cpio).toMatch(/alias\tpci:v00008086d000010EDsv\*sd\*bc\*sc\*i\*\tixgbevf\n/);
    await pushImage({ ref, clients: clients(), home });
    const register = calls.find((c) => c.op === "RegisterImage")!.input;
    expect(register).toMatchObject({ EnaSupport: true, SriovNetSupport: "simple" });
  });
});
