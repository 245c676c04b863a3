// The init's AWS helpers, run exactly as the image runs them: busybox sh with only busybox
// applets on PATH (the busybox-static binary kiln puts into the initramfs). kiln-secrets' SigV4
// signer is checked against AWS's published SigV4 test suite, then resolves ssm:/kms:
// references against moto's SSM and KMS; kiln-imds speaks IMDSv2 to the test metadata server.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startImds, type ImdsServer } from "../fixtures/imds/server.js";
import { startMoto, type Moto } from "../integration/moto.js";
import { rolePolicyPropagation } from "../strict-aws/rules/role-policy-propagation.js";
import { repo } from "../integration/harness.js";

/** The busybox the images use (cached by earlier bakes), else the host's busybox-static. */
function findBusybox(): string | undefined {
  if (process.env.KILN_TEST_BUSYBOX) return process.env.KILN_TEST_BUSYBOX;
  const unpacked = path.join(process.env.KILN_TEST_HOME ?? path.join(repo, ".kiln-test", "home"), "cache", "unpacked");
  const cached = existsSync(unpacked)
    ? readdirSync(unpacked)
        .filter((d) => d.startsWith("busybox-static-"))
        .map((d) => path.join(unpacked, d, "bin", "busybox"))
        .filter((p) => existsSync(p))
        .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)
    : [];
  return cached[0] ?? ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
}

const busybox = findBusybox();
const script = (name: string) => path.join(repo, "templates", "init", name);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let bin = "";
function sh(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(path.join(bin, "sh"), args, { env: { PATH: bin, TMPDIR: os.tmpdir(), ...env }, encoding: "utf8" }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe.skipIf(!busybox)("init helpers under busybox sh", () => {
  const work = mkdtempSync(path.join(os.tmpdir(), "kiln-secrets-"));
  beforeAll(async () => {
    bin = path.join(work, "bin");
    mkdirSync(bin);
    const list = await new Promise<string>((resolve, reject) => execFile(busybox!, ["--list"], (e, out) => (e ? reject(e) : resolve(out))));
    for (const applet of list.split("\n").filter(Boolean)) symlinkSync(busybox!, path.join(bin, applet));
  });

  describe("SigV4 (AWS's published test suite, AKIDEXAMPLE)", () => {
    const credentials = { AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };
    const empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    // From the suite's get-vanilla, post-vanilla, post-header-key-sort, get-vanilla-with-session-token
    // and post-x-www-form-urlencoded cases (request, canonical request, string to sign, signature).
    const vectors = [
      {
        name: "get-vanilla",
        method: "GET",
        body: "",
        headers: [],
        token: undefined,
        canonical: `GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n${empty}`,
        requestHash: "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
      },
      {
        name: "post-vanilla",
        method: "POST",
        body: "",
        headers: [],
        token: undefined,
        canonical: `POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n${empty}`,
        requestHash: "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
        signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
      },
      {
        name: "post-header-key-sort",
        method: "POST",
        body: "",
        headers: ["My-Header1:value1"],
        token: undefined,
        canonical: `POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n${empty}`,
        requestHash: "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
        signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
      },
      {
        name: "get-vanilla-with-session-token",
        method: "GET",
        body: "",
        headers: [],
        token: "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
        canonical: `GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-security-token:6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267\n\nhost;x-amz-date;x-amz-security-token\n${empty}`,
        requestHash: "067b36aa60031588cea4a4cde1f21215227a047690c72247f1d70b32fbbfad2b",
        signature: "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
      },
      {
        name: "post-x-www-form-urlencoded",
        method: "POST",
        body: "Param1=value1",
        headers: [
          "Content-Length:13",
          "Content-Type:application/x-www-form-urlencoded",
          "x-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
        ],
        token: undefined,
        canonical:
          "POST\n/\n\ncontent-length:13\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\nx-amz-date:20150830T123600Z\n\ncontent-length;content-type;host;x-amz-content-sha256;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
        requestHash: "b1edd1d03544c25390e32085d55b57acc9a3961bb59415ff86c45c3d89d16cfb",
        signature: "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
      },
    ];
    for (const v of vectors) {
      it(v.name, async () => {
        const body = path.join(work, `${v.name}.body`);
        writeFileSync(body, v.body);
        const result = await sh(
          [
            script("kiln-secrets"),
            "sign",
            v.method,
            "example.amazonaws.com",
            "/",
            "",
            body,
            "20150830T123600Z",
            "us-east-1",
            "service",
            ...v.headers,
          ],
          { ...credentials, ...(v.token ? { AWS_SESSION_TOKEN: v.token } : {}) },
        );
        expect(result.code, result.stderr).toBe(0);
        const [canonical, stringToSign, authorization] = result.stdout.replace(/\n$/, "").split("\n--\n");
        expect(canonical).toBe(v.canonical);
        expect(stringToSign).toBe(`AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n${v.requestHash}`);
        const signed = v.canonical.split("\n").at(-2);
        expect(authorization).toBe(
          `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=${signed}, Signature=${v.signature}`,
        );
      });
    }
  });

  describe("resolve against moto (SSM GetParameter, KMS Decrypt)", () => {
    let moto: Moto;
    let ciphertext = "";
    const secretValue = `p@ss "w0rd" \\ é ☃ 𝄞 = tail`;
    const emulator = () => ({
      AWS_ACCESS_KEY_ID: "testing",
      AWS_SECRET_ACCESS_KEY: "testing",
      AWS_SESSION_TOKEN: "testing-token",
      AWS_REGION: "us-east-1",
      KILN_AWS_ENDPOINT: moto.endpoint,
    });
    const call = async (service: string, target: string, body: unknown) => {
      const response = await fetch(`${moto.endpoint}/`, {
        method: "POST",
        body: JSON.stringify(body),
        headers: {
          "content-type": "application/x-amz-json-1.1",
          "x-amz-target": target,
          authorization: `AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/${service}/aws4_request, SignedHeaders=host, Signature=0`,
        },
      });
      const json = (await response.json()) as Record<string, unknown>;
      if (!response.ok) throw new Error(`${target}: ${JSON.stringify(json)}`);
      return json;
    };

    beforeAll(async () => {
      moto = await startMoto();
      await call("ssm", "AmazonSSM.PutParameter", { Name: "/shop/prod/db-password", Value: secretValue, Type: "SecureString" });
      await call("ssm", "AmazonSSM.PutParameter", { Name: "plain-name", Value: "not-so-secret", Type: "String" });
      await call("ssm", "AmazonSSM.PutParameter", { Name: "/shop/multiline", Value: "line1\nline2", Type: "SecureString" });
      const key = (await call("kms", "TrentService.CreateKey", { Description: "kiln test" })) as { KeyMetadata: { KeyId: string } };
      const encrypted = (await call("kms", "TrentService.Encrypt", {
        KeyId: key.KeyMetadata.KeyId,
        Plaintext: Buffer.from("api-key-123+/=").toString("base64"),
      })) as { CiphertextBlob: string };
      ciphertext = encrypted.CiphertextBlob;
    }, 60_000);
    afterAll(async () => moto?.stop());

    it("replaces ssm: and kms: values, keeps every other line, and logs names but never values", async () => {
      const envFile = path.join(work, "app.env");
      writeFileSync(
        envFile,
        `PATH=/usr/bin\nDB_PASSWORD=ssm:/shop/prod/db-password\nNAME_ONLY=ssm:plain-name\nAPI_KEY=kms:${ciphertext}\nURL=https://example.test/?a=b\n`,
      );
      const result = await sh([script("kiln-secrets"), "resolve", envFile], emulator());
      expect(result.code, result.stderr).toBe(0);
      expect(readFileSync(envFile, "utf8")).toBe(
        `PATH=/usr/bin\nDB_PASSWORD=${secretValue}\nNAME_ONLY=not-so-secret\nAPI_KEY=api-key-123+/=\nURL=https://example.test/?a=b\n`,
      );
      expect(result.stderr).toMatch(/secret DB_PASSWORD resolved from ssm:\/shop\/prod\/db-password/);
      expect(result.stderr).toMatch(/secret API_KEY resolved from kms:/);
      for (const leaked of ["p@ss", "not-so-secret", "api-key-123", "testing-token"])
        expect(result.stdout + result.stderr).not.toContain(leaked);
    });

    it("fails without touching the file when a reference cannot be resolved, naming it and the HTTP error", async () => {
      const envFile = path.join(work, "missing.env");
      const before = "A=1\nMISSING=ssm:/shop/nope\nMULTI=ssm:/shop/multiline\n";
      writeFileSync(envFile, before);
      const result = await sh([script("kiln-secrets"), "resolve", envFile], emulator());
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/secret MISSING \(ssm:\/shop\/nope\) could not be resolved: HTTP\/1\.1 400/);
      expect(result.stderr).toMatch(/secret MULTI .*line break/);
      expect(readFileSync(envFile, "utf8")).toBe(before);
    });

    it("refuses an endpoint override that is not a test VM's host, and works without credentials only by failing", async () => {
      const envFile = path.join(work, "refused.env");
      writeFileSync(envFile, "X=ssm:/shop/prod/db-password\n");
      const refused = await sh([script("kiln-secrets"), "resolve", envFile], {
        ...emulator(),
        KILN_AWS_ENDPOINT: "http://attacker.example:80",
      });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/KILN_AWS_ENDPOINT=http:\/\/attacker\.example:80 refused/);
      const { AWS_ACCESS_KEY_ID: _a, AWS_SECRET_ACCESS_KEY: _s, ...noCredentials } = emulator();
      const anonymous = await sh([script("kiln-secrets"), "resolve", envFile], noCredentials);
      expect(anonymous.code).toBe(1);
      expect(anonymous.stderr).toMatch(/no AWS credentials/);
    });
  });

  describe("resolve while the instance role's policy is not yet in effect (IAM eventual consistency)", () => {
    let moto: Moto;
    const env = (extra: Record<string, string> = {}) => ({
      AWS_ACCESS_KEY_ID: "testing",
      AWS_SECRET_ACCESS_KEY: "testing",
      AWS_SESSION_TOKEN: "testing-token",
      AWS_REGION: "us-east-1",
      KILN_AWS_ENDPOINT: moto.endpoint,
      ...extra,
    });
    beforeAll(async () => {
      // SSM and KMS deny for 3 s from the first call, as a role whose policy was just put does.
      moto = await startMoto({ strict: { rules: [rolePolicyPropagation({ windowMs: 3000 })] } });
      const response = await fetch(`${moto.upstream}/`, {
        method: "POST",
        body: JSON.stringify({ Name: "/late/db", Value: "late-value", Type: "SecureString" }),
        headers: {
          "content-type": "application/x-amz-json-1.1",
          "x-amz-target": "AmazonSSM.PutParameter",
          authorization: "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=0",
        },
      });
      expect(response.ok).toBe(true);
    }, 60_000);
    afterAll(async () => moto?.stop());

    it("retries AccessDenied with backoff until the role's policy takes effect", async () => {
      const envFile = path.join(work, "late.env");
      writeFileSync(envFile, "DB=ssm:/late/db\n");
      const started = Date.now();
      const result = await sh([script("kiln-secrets"), "resolve", envFile], env());
      expect(result.code, result.stderr).toBe(0);
      expect(readFileSync(envFile, "utf8")).toBe("DB=late-value\n");
      expect(result.stderr).toMatch(/secret DB \(ssm:\/late\/db\): .*AccessDeniedException.*retrying in 1s/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(3000);
      expect(moto.strict!.calls.filter((c) => c.refusedBy === "role-policy-propagation").length).toBeGreaterThanOrEqual(2);
    }, 30_000);

    it("gives up after its time budget, and never retries what waiting cannot fix", async () => {
      moto.strict!.reset();
      const envFile = path.join(work, "late-budget.env");
      writeFileSync(envFile, "DB=ssm:/late/db\n");
      const started = Date.now();
      const result = await sh([script("kiln-secrets"), "resolve", envFile], env({ KILN_SECRETS_WAIT: "1" }));
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/could not be resolved: HTTP\/1\.1 400.*AccessDeniedException/);
      expect(Date.now() - started).toBeLessThan(2900);
      // A parameter that does not exist is not a propagation delay: one call, no retry.
      moto.strict!.advance(10_000);
      writeFileSync(envFile, "NOPE=ssm:/late/nope\n");
      const missing = await sh([script("kiln-secrets"), "resolve", envFile], env());
      expect(missing.code).toBe(1);
      expect(missing.stderr).not.toMatch(/retrying/);
    }, 30_000);
  });

  describe("kiln-imds (IMDSv2 client)", () => {
    let imds: ImdsServer;
    beforeAll(async () => {
      imds = await startImds({
        userData: "GREETING=from-imds\nKILN_ENV=test\n",
        instanceId: "i-0123456789abcdef0",
        availabilityZone: "eu-west-1b",
        region: "eu-west-1",
      });
    });
    afterAll(async () => imds?.close());
    const at = () => ({ KILN_IMDS_ADDRESS: "127.0.0.1", KILN_IMDS_PORT: String(imds.port) });

    it("gets a token with PUT, then reads user-data and metadata with it; 404 and 401 are exit codes", async () => {
      const token = await sh([script("kiln-imds"), "token"], at());
      expect(token.code, token.stderr).toBe(0);
      const env = { ...at(), KILN_IMDS_TOKEN: token.stdout.trim() };
      expect(await sh([script("kiln-imds"), "get", "user-data"], env)).toMatchObject({
        code: 0,
        stdout: "GREETING=from-imds\nKILN_ENV=test\n",
      });
      expect(await sh([script("kiln-imds"), "get", "meta-data/placement/availability-zone"], env)).toMatchObject({
        code: 0,
        stdout: "eu-west-1b",
      });
      expect((await sh([script("kiln-imds"), "get", "meta-data/iam/security-credentials/"], env)).code).toBe(2);
      expect((await sh([script("kiln-imds"), "get", "user-data"], { ...at(), KILN_IMDS_TOKEN: "forged" })).code).toBe(3);
      expect(imds.requests[0]).toMatchObject({ method: "PUT", path: "/latest/api/token", status: 200 });
      expect(imds.requests.filter((r) => r.status === 200 && r.method === "GET").every((r) => r.hadValidToken)).toBe(true);
    });

    it("gives up quickly when nothing listens", async () => {
      const started = Date.now();
      const result = await sh([script("kiln-imds"), "token"], { KILN_IMDS_ADDRESS: "127.0.0.1", KILN_IMDS_PORT: "9" });
      expect(result.code).toBe(1);
      expect(Date.now() - started).toBeLessThan(3000);
    });
  });
});
