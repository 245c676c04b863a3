// Secure and working-on-real-EC2 defaults (issue 13): the NVMe I/O timeout on the rendered boot
// entries, the ixgbevf driver the SriovNetSupport flag promises, the environment settings
// (sslPolicy, kmsKeyId) and how a plan shows them, and the IAM policy for them.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { fillBootTemplate, kernelCommandLine } from "../../src/bake/boot.js";
import { type AwsEnvironment, parseEnvironments } from "../../src/config/environments.js";
import { describeStep, planBlueGreen } from "../../src/deploy/plan.js";
import { SpecError } from "../../src/errors.js";
import { checkKernelConfig, parseFragment, parseKernelConfig } from "../../src/kmod/kconfig.js";
import { iamPolicy } from "../../src/push/iam-policy.js";
import { amiNetworkFlags } from "../../src/push/push.js";
import { awsEnv, now, r1, release, state, v1, v2 } from "./helpers/deploy-fixtures.js";

const repo = path.resolve(import.meta.dirname, "../..");
const template = (name: string) => readFileSync(path.join(repo, "templates", name), "utf8");

describe("kernel command line (NVMe on Nitro)", () => {
  const cmdline = kernelCommandLine("0a1b2c3d");
  it("both boot entries pass the highest NVMe I/O timeout, as AWS recommends for EBS on Nitro", () => {
    const syslinux = fillBootTemplate(template("boot/syslinux.cfg"), { cmdline });
    const entry = fillBootTemplate(template("boot/kiln.conf"), { cmdline, title: "app" });
    expect(syslinux).toMatch(/^\s*APPEND .*\bnvme_core\.io_timeout=4294967295\b/m);
    expect(entry).toMatch(/^options .*\bnvme_core\.io_timeout=4294967295\b/m);
  });
});

describe("ixgbevf (Xen SR-IOV instance types)", () => {
  const fragment = parseFragment(readFileSync(path.join(repo, "kernel-configs/kiln.config"), "utf8"));
  const cloudKernel = parseKernelConfig(readFileSync(path.join(repo, "test/fixtures/kernel/config-6.1.0-57-cloud-amd64"), "utf8"));
  it("the Debian cloud kernel passes the check and its ixgbevf module goes into the image", () => {
    const check = checkKernelConfig(fragment, cloudKernel);
    expect(check.missing).toEqual([]);
    expect(check.modules).toContain("ixgbevf");
  });
  it("SriovNetSupport is asked for only when the image carries the driver", () => {
    expect(amiNetworkFlags(["ena", "ixgbevf", "virtio_net"])).toEqual({ sriovNetSupport: true });
    // An image baked before the driver was added (no module list) or with a kernel without it.
    expect(amiNetworkFlags(undefined)).toEqual({ sriovNetSupport: false });
    expect(amiNetworkFlags(["ena"])).toEqual({ sriovNetSupport: false });
  });
});

const CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/0b7c4a4e-1111-2222-3333-444455556666";
const yamlEnv = (extra: Record<string, unknown>) =>
  parseEnvironments({ prod: { target: "aws", region: "eu-west-1", ...extra } }, "shop", "/healthz", "kiln.yml").get(
    "prod",
  ) as AwsEnvironment;
const problems = (extra: Record<string, unknown>) => {
  try {
    yamlEnv(extra);
    return "";
  } catch (error) {
    return error instanceof SpecError ? error.message : String(error);
  }
};

describe("environment settings", () => {
  it("https gets a TLS 1.2+/1.3 policy unless the environment names another", () => {
    expect(yamlEnv({ https: { certificateArn: CERT } }).sslPolicy).toBe("ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09");
    expect(yamlEnv({ https: { certificateArn: CERT, sslPolicy: "ELBSecurityPolicy-TLS13-1-3-2021-06" } }).sslPolicy).toBe(
      "ELBSecurityPolicy-TLS13-1-3-2021-06",
    );
    expect(yamlEnv({}).sslPolicy).toBeUndefined();
  });
  it("refuses an sslPolicy that is not an ELB security policy name", () => {
    expect(problems({ https: { certificateArn: CERT, sslPolicy: "TLSv1.2" } })).toMatch(/sslPolicy.*ELBSecurityPolicy-/);
    expect(problems({ https: { certificateArn: CERT, sslPolicy: "ELBSecurityPolicy-x\nSslPolicy=bad" } })).toMatch(/sslPolicy/);
  });
  it("kmsKeyId takes a key id, key ARN, alias or alias ARN and refuses anything else", () => {
    for (const key of [
      "1234abcd-12ab-34cd-56ef-1234567890ab",
      "mrk-1234abcd12ab34cd56ef1234567890ab",
      "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
      "alias/kiln-prod",
      "arn:aws:kms:eu-west-1:123456789012:alias/kiln-prod",
    ])
      expect(yamlEnv({ kmsKeyId: key }).kmsKeyId).toBe(key);
    expect(yamlEnv({}).kmsKeyId).toBeUndefined();
    expect(problems({ kmsKeyId: "my key" })).toMatch(/kmsKeyId.*KMS key/);
    expect(problems({ kmsKeyId: "alias/aws/ebs\nx" })).toMatch(/kmsKeyId/);
  });
});

describe("the plan shows the environment's protections", () => {
  const aws: AwsEnvironment = { ...awsEnv, certificateArn: CERT, sslPolicy: "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09" };
  const lines = (e: AwsEnvironment, live = state(false)) => planBlueGreen(e, v2, "2.0.0", live, now).steps.map(describeStep);

  it("a new HTTPS environment: TLS policy, the redirect, dropped invalid headers, encrypted root volumes", () => {
    const text = lines(aws).join("\n");
    expect(text).toMatch(/HTTPS listener on 443 with TLS policy ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09/);
    expect(text).toMatch(/HTTP listener on 80 redirecting to HTTPS \(301\)/);
    expect(text).toMatch(/drops invalid HTTP header fields/);
    expect(text).toMatch(/root volume encrypted with the account's default EBS key/);
  });
  it("an HTTP-only environment says it serves plain HTTP; a kmsKeyId is named", () => {
    const text = lines({ ...aws, certificateArn: undefined, sslPolicy: undefined, kmsKeyId: "alias/kiln-prod" }).join("\n");
    expect(text).toMatch(/HTTP listener on 80/);
    expect(text).not.toMatch(/redirect/);
    expect(text).toMatch(/root volume encrypted with KMS key alias\/kiln-prod/);
  });
  it("an existing environment whose settings drifted gets a step that brings them back", () => {
    const a1 = release(r1.replace("shop-dev", "shop-dev"), v1, true);
    const live = { ...state(true, [a1]), drift: ["the load balancer keeps invalid HTTP header fields"] };
    const steps = planBlueGreen(aws, v2, "2.0.0", live, now).steps;
    expect(steps[0]).toMatchObject({ kind: "ensure-infrastructure" });
    expect(describeStep(steps[0]!)).toMatch(/the load balancer keeps invalid HTTP header fields/);
    expect(planBlueGreen(aws, v2, "2.0.0", state(true, [a1]), now).steps[0]?.kind).toBe("launch");
  });
});

describe("kiln iam-policy", () => {
  const statements = iamPolicy().Statement as { Sid: string; Action: string | string[]; Condition?: unknown }[];
  const actions = statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
  it("covers the load balancer attributes and encrypted root volumes with a customer managed key", () => {
    expect(actions).toEqual(
      expect.arrayContaining(["elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:DescribeLoadBalancerAttributes"]),
    );
    const kms = statements.find((s) => s.Sid === "KilnEncryptedRootVolumes");
    expect(kms?.Action).toEqual(expect.arrayContaining(["kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext"]));
    expect(JSON.stringify(kms?.Condition)).toMatch(/ec2\.\*\.amazonaws\.com/);
  });
});
