// Boot-time configuration the EC2 way, end to end in QEMU: the VM has no seed drive, so the
// init asks the instance metadata service (IMDSv2: PUT token, then GETs with it). A test IMDS
// on the host answers at 169.254.169.254:80 through QEMU's guestfwd. From it the app gets the
// user-data variables and the instance facts; ssm:/kms: values are resolved by the init with
// the instance-role credentials IMDS hands out, against moto's SSM and KMS; the logs go to a
// UDP syslog listener on the host as RFC 5424, and to moto's CloudWatch Logs (KILN_CLOUDWATCH_LOGS:
// kiln-cwlogs, stream = the instance id IMDS served, signed with the role's credentials).
import dgram from "node:dgram";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { ImageStore } from "../../src/image/store.js";
import { LocalVm } from "../../src/providers/qemu.js";
import { buildQemuArgs, IMDS_NETWORK_HOST } from "../../src/providers/qemu-args.js";
import { waitHealthy } from "../../src/run/health.js";
import { findFreePort } from "../../src/run/ports.js";
import { startImds, type ImdsServer } from "../fixtures/imds/server.js";
import { httpGet, quiet, repo, sharedHome } from "./harness.js";
import { startMoto, type Moto } from "./moto.js";
import { rolePolicyPropagation } from "../strict-aws/rules/role-policy-propagation.js";
import { STRICT_RULES } from "../strict-aws/rules/index.js";

const home = sharedHome();
const region = "eu-central-1";
const dbPassword = 's3cret-from-ssm "quoted" ünïcode';
const apiKey = "api-key-from-kms";
const roleSecret = "role-secret-access-key-EXAMPLE";
const roleToken = "role-session-token-EXAMPLE";
const logGroup = "/kiln/env-app/staging";
const instanceId = "i-0abc1234def567890";

async function awsCall(moto: Moto, service: string, target: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${moto.endpoint}/`, {
    method: "POST",
    body: JSON.stringify(body),
    headers: {
      "content-type": "application/x-amz-json-1.1",
      "x-amz-target": target,
      authorization: `AWS4-HMAC-SHA256 Credential=testing/20250101/${region}/${service}/aws4_request, SignedHeaders=host, Signature=0`,
    },
  });
  const text = await response.text(); // CreateLogGroup answers with an empty body
  const json = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
  if (!response.ok) throw new Error(`${target}: ${JSON.stringify(json)}`);
  return json;
}

describe("QEMU user network with a metadata service", () => {
  it("puts the guest in a network that contains 169.254.169.254 and forwards it to a host command, commas escaped", () => {
    const args = buildQemuArgs({
      disk: "/d.raw",
      diskFormat: "raw",
      seed: undefined,
      firmware: "bios",
      accelerator: "tcg",
      memoryMiB: 512,
      cpus: 1,
      forwards: [{ hostAddress: "127.0.0.1", hostPort: 18080, guestPort: 8080 }],
      consoleFile: "/c",
      qmpSocket: "/q",
      pidFile: "/p",
      network: "169.254.0.0/16",
      guestForwards: [{ guestAddress: "169.254.169.254", guestPort: 80, command: "relay a,b" }],
    });
    expect(args[args.indexOf("-netdev") + 1]).toBe(
      "user,id=net0,net=169.254.0.0/16,hostfwd=tcp:127.0.0.1:18080-:8080,guestfwd=tcp:169.254.169.254:80-cmd:relay a,,b",
    );
    expect(args).not.toContain("file=undefined");
  });
});

describe.sequential("configuration from EC2 instance metadata (IMDSv2)", () => {
  let moto: Moto;
  let imds: ImdsServer;
  let vm: LocalVm | undefined;
  const syslog = dgram.createSocket("udp4");
  const datagrams: string[] = [];

  beforeAll(async () => {
    // The role's policy is not in effect for the guest's first seconds (IAM eventual
    // consistency): SSM and KMS deny its first calls, and the init must wait, not power off.
    moto = await startMoto({ strict: { rules: [...STRICT_RULES, rolePolicyPropagation({ windowMs: 4000 })] } });
    await awsCall(moto, "ssm", "AmazonSSM.PutParameter", { Name: "/env-app/staging/db-password", Value: dbPassword, Type: "SecureString" });
    const key = (await awsCall(moto, "kms", "TrentService.CreateKey", {})) as { KeyMetadata: { KeyId: string } };
    const { CiphertextBlob } = (await awsCall(moto, "kms", "TrentService.Encrypt", {
      KeyId: key.KeyMetadata.KeyId,
      Plaintext: Buffer.from(apiKey).toString("base64"),
    })) as { CiphertextBlob: string };
    await awsCall(moto, "logs", "Logs_20140328.CreateLogGroup", { logGroupName: logGroup });
    syslog.on("message", (m) => datagrams.push(m.toString("utf8")));
    await new Promise<void>((resolve) => syslog.bind(0, "127.0.0.1", resolve));
    const motoPort = new URL(moto.endpoint).port;
    imds = await startImds({
      instanceId: "i-0abc1234def567890",
      availabilityZone: `${region}b`,
      region,
      role: { name: "env-app-role", accessKeyId: "ASIAEXAMPLEROLEKEY", secretAccessKey: roleSecret, token: roleToken },
      userData: [
        "# kiln user-data for the staging environment",
        "GREETING=from-imds",
        // Hand-written user-data can hold lines kiln's own writers refuse: the init skips them by line number.
        "1BAD=x",
        "BAD-NAME=y",
        "KILN_ENV=staging",
        "DB_PASSWORD=ssm:/env-app/staging/db-password",
        `API_KEY=kms:${CiphertextBlob}`,
        // The guest reaches the host's loopback services at the user network's host address.
        `KILN_AWS_ENDPOINT=http://${IMDS_NETWORK_HOST}:${motoPort}`,
        `KILN_SYSLOG=udp://${IMDS_NETWORK_HOST}:${syslog.address().port}`,
        `KILN_CLOUDWATCH_LOGS=${logGroup}`,
        "",
      ].join("\r\n"),
    });
  }, 120_000);

  afterAll(async () => {
    if (vm) {
      await vm.shutdown(20_000);
      await vm.cleanup();
    }
    syslog.close();
    await imds?.close();
    await moto?.stop();
  });

  it("gives the app user-data, instance facts and resolved secrets; never prints a secret", async () => {
    const { image } = await bake(path.join(repo, "test", "fixtures", "imds", "env-app"), {}, home, quiet);
    const stored = await new ImageStore(home).resolve(image.ref);
    const port = await findFreePort();
    vm = await LocalVm.start({
      image: stored,
      home,
      firmware: "bios",
      forwards: [{ hostAddress: "127.0.0.1", hostPort: port, guestPort: 8080 }],
      env: {},
      seedDrive: false,
      imds: { hostPort: imds.port },
    });
    const health = await waitHealthy(`http://127.0.0.1:${port}/healthz`, 180_000, vm.exited, vm.startedAtMs);
    expect(health.healthy, `${JSON.stringify(health)}\n${await vm.consoleTail(40)}`).toBe(true);

    const answer = JSON.parse((await httpGet(`http://127.0.0.1:${port}/`)).body) as { env: Record<string, string>; uid: number };
    expect(answer.env).toEqual({
      GREETING: "from-imds",
      KILN_ENV: "staging",
      KILN_IMAGE: "env-app:0.1.0",
      BAKED: "from-kiln-yml",
      KILN_INSTANCE_ID: "i-0abc1234def567890",
      KILN_AZ: `${region}b`,
      KILN_REGION: region,
      DB_PASSWORD: dbPassword,
      API_KEY: apiKey,
    });
    expect(answer.uid).toBe(1000);

    // IMDSv2 only: the token came first and every answered GET carried a valid token.
    expect(imds.requests[0]).toMatchObject({ method: "PUT", path: "/latest/api/token", status: 200 });
    const gets = imds.requests.filter((r) => r.method === "GET");
    expect(gets.every((r) => r.hadValidToken)).toBe(true);
    expect(gets.map((r) => r.path)).toEqual(
      expect.arrayContaining([
        "/latest/user-data",
        "/latest/meta-data/instance-id",
        "/latest/meta-data/placement/availability-zone",
        "/latest/meta-data/placement/region",
        "/latest/meta-data/iam/security-credentials/",
        "/latest/meta-data/iam/security-credentials/env-app-role",
      ]),
    );

    const console = (await vm.consoleTail(400)).replace(/\r/g, "");
    expect(console).toMatch(/kiln-init: applied boot-time configuration from EC2 user-data \(IMDSv2\)/);
    expect(console).toMatch(/ignoring user-data line \d+: '1BAD' is not a variable name/);
    expect(console).toMatch(/ignoring user-data line \d+: 'BAD-NAME' is not a variable name/);
    expect(console).toMatch(
      /kiln-init: secret DB_PASSWORD \(ssm:\/env-app\/staging\/db-password\): .*AccessDeniedException.*retrying in 1s/,
    );
    expect(moto.strict!.calls.some((c) => c.refusedBy === "role-policy-propagation")).toBe(true);
    expect(console).toMatch(/kiln-init: secret DB_PASSWORD resolved from ssm:\/env-app\/staging\/db-password/);
    expect(console).toMatch(/kiln-init: secret API_KEY resolved from kms:/);
    for (const secret of [dbPassword, apiKey, roleSecret, roleToken, "s3cret"]) expect(console).not.toContain(secret);
  });

  it("ships the app's and the init's lines to CloudWatch Logs, stream = the instance id", async () => {
    const port = vm!.record.forwards[0]!.hostPort;
    const written = Date.now();
    await httpGet(`http://127.0.0.1:${port}/log`);
    const messages = async (): Promise<{ message: string; timestamp: number }[]> => {
      const page = await awsCall(moto, "logs", "Logs_20140328.GetLogEvents", {
        logGroupName: logGroup,
        logStreamName: instanceId,
        startFromHead: true,
      }).catch(() => ({ events: [] }));
      return (page.events ?? []) as { message: string; timestamp: number }[];
    };
    const deadline = Date.now() + 30_000;
    while (!(await messages()).some((e) => e.message === "env-app: an error on stderr") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    const seenAfter = Date.now() - written;
    const events = await messages();
    const texts = events.map((e) => e.message);
    expect(texts, `${texts.join("\n")}\n${await vm!.consoleTail(60)}`).toContain("env-app: an error on stderr");
    expect(texts).toContain("env-app listening on 8080");
    expect(texts).toContain("env-app: request to /log on stdout");
    expect(texts).toContainEqual(expect.stringMatching(/^kiln-init: starting app: /));
    expect(texts).toContainEqual(
      `kiln-init: shipping logs to CloudWatch Logs: group ${logGroup}, stream ${instanceId}, ` +
        `http://${IMDS_NETWORK_HOST}:${new URL(moto.endpoint).port} (${IMDS_NETWORK_HOST})`,
    );
    const times = events.map((e) => e.timestamp);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    for (const secret of [dbPassword, apiKey, roleSecret, roleToken]) expect(texts.join("\n")).not.toContain(secret);
    // The app still answers while its lines are shipped.
    expect((await httpGet(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    console.log(`figure: guest app line -> visible in moto's CloudWatch Logs: ${seenAfter} ms (TCG guest, 1 s batches)`);
  }, 60_000);

  it("ships the app's and the init's lines to the syslog server as RFC 5424 over UDP", async () => {
    const port = vm!.record.forwards[0]!.hostPort;
    await httpGet(`http://127.0.0.1:${port}/log`);
    const deadline = Date.now() + 20_000;
    while (!datagrams.some((d) => d.includes("an error on stderr")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const rfc5424 = /^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) - - - (.*)$/s;
    const frames = datagrams.map((d) => rfc5424.exec(d)).map((m) => m && { pri: Number(m[1]), host: m[3], app: m[4], msg: m[5] });
    expect(frames.every(Boolean), datagrams.join("\n")).toBe(true);
    expect(frames).toContainEqual({ pri: 14, host: "i-0abc1234def567890", app: "env-app", msg: "env-app listening on 8080" });
    expect(frames).toContainEqual({ pri: 14, host: "i-0abc1234def567890", app: "env-app", msg: "env-app: request to /log on stdout" });
    // "<3>" (sd-daemon prefix) on stderr: severity err, facility user -> PRI 11.
    expect(frames).toContainEqual({ pri: 11, host: "i-0abc1234def567890", app: "env-app", msg: "env-app: an error on stderr" });
    expect(frames).toContainEqual(expect.objectContaining({ app: "kiln-init", msg: expect.stringMatching(/^starting app: /) }));
    for (const secret of [dbPassword, apiKey, roleSecret, roleToken]) expect(datagrams.join("\n")).not.toContain(secret);
    expect(await vm!.shutdown(30_000)).toBe("clean");
    // Powering off, the init has kiln-cwlogs send what it still held: the last line is in CloudWatch Logs.
    const last = await awsCall(moto, "logs", "Logs_20140328.GetLogEvents", {
      logGroupName: logGroup,
      logStreamName: instanceId,
      startFromHead: false,
      limit: 5,
    });
    expect((last.events as { message: string }[]).map((e) => e.message)).toContain("kiln-init: powering off");
  });
});
