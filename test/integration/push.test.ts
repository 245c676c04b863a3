// kiln push against a real AWS emulator (moto server) with the real SDK v3 clients over HTTP:
// blocks read back equal the disk, the AMI is registered with what kiln sent (moto keeps only
// Name/Description, so the request itself is checked), pushing again uploads nothing, an
// app-only rebake uploads only changed blocks against the parent, an interrupted push
// resumes, a failed push leaves no snapshot, and errors say what to fix.
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { CreateAutoScalingGroupCommand, DeleteAutoScalingGroupCommand } from "@aws-sdk/client-auto-scaling";
import {
  CreateLaunchTemplateCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EnableEbsEncryptionByDefaultCommand,
} from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { bake } from "../../src/bake/bake.js";
import { createAwsClients, type AwsClients } from "../../src/aws/clients.js";
import { getSnapshotBlock, listSnapshotBlockTokens } from "./ebs-readback.js";
import { BLOCK_SIZE } from "../../src/push/blocks.js";
import { pushImage } from "../../src/push/push.js";
import { readDiskBlock, scanDiskBlocks } from "../../src/push/scan.js";
import type { StoredImage } from "../../src/image/store.js";
import { bakeExample, cli, quiet, repo, sharedHome } from "./harness.js";
import { startMoto, useEmulatorCredentials, type Moto } from "./moto.js";

const home = sharedHome();
let moto: Moto;
type Call = { op: string; input: Record<string, unknown> };

function recordingClients(calls: Call[], region = "eu-west-1", onRequest?: (op: string) => void): AwsClients {
  return createAwsClients({
    region,
    endpoint: moto.endpoint,
    maxAttempts: 1,
    onRequest: (op, input) => {
      calls.push({ op, input });
      onRequest?.(op);
    },
  });
}

async function freshApp(): Promise<string> {
  execMake();
  const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-push-app-"));
  cpSync(path.join(repo, "examples", "hello-native"), dir, { recursive: true });
  writeFileSync(path.join(dir, "data.txt"), `first ${randomUUID()}\n`);
  return dir;
}

function execMake(): void {
  // The example binary is built by its own build step.
  execFileSync("make", ["-s", "-C", path.join(repo, "examples", "hello-native")]);
}

/**
 * Reads a snapshot back block by block through the strict layer (which gives a child its parent's
 * blocks) and compares every block of the volume with the image's raw disk: listed blocks byte for
 * byte, unlisted ones must be zeros on the disk.
 */
async function expectSnapshotIsDisk(clients: AwsClients, snapshot: string, image: StoredImage): Promise<number> {
  const tokens = await listSnapshotBlockTokens(clients, snapshot);
  const hashes = await scanDiskBlocks(image.dir, image.disk);
  const volumeBlocks = (image.manifest.layout.volumeGiB * 1024 * 1024 * 1024) / BLOCK_SIZE;
  let compared = 0;
  for (let index = 0; index < volumeBlocks; index++) {
    const token = tokens.get(index);
    if (token === undefined) {
      expect(hashes[index] ?? null, `block ${index} is missing from ${snapshot}`).toBeNull();
      continue;
    }
    const stored = await getSnapshotBlock(clients, snapshot, index, token);
    expect(stored.equals(await readDiskBlock(image.disk, index)), `block ${index} of ${snapshot}`).toBe(true);
    compared++;
  }
  return compared;
}

const KEY_1 = "arn:aws:kms:eu-west-1:123456789012:key/11111111-1111-4111-8111-111111111111";
const KEY_2 = "arn:aws:kms:eu-west-1:123456789012:key/22222222-2222-4222-8222-222222222222";
/** Retry delays short enough for tests; the eventual-consistency window is the layer's 1 s. */
const FAST_RETRY = { baseDelayMs: 20, maxDelayMs: 400 };

async function snapshotEncryption(clients: AwsClients, id: string): Promise<{ encrypted: boolean; key: string | undefined }> {
  const out = await clients.ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }));
  return { encrypted: out.Snapshots?.[0]?.Encrypted === true, key: out.Snapshots?.[0]?.KmsKeyId };
}

beforeAll(async () => {
  useEmulatorCredentials();
  moto = await startMoto();
});
afterAll(async () => moto?.stop());
beforeEach(async () => moto.reset());

describe.sequential("kiln push (moto)", () => {
  it("uploads every non-zero block, registers the AMI as requested, and a second push reuses it", async () => {
    const { image } = await bakeExample("hello-native", home);
    const calls: Call[] = [];
    const clients = recordingClients(calls);
    const result = await pushImage({ ref: image.ref, clients, home });
    expect(result.reused).toBe(false);
    expect(result.ami).toMatch(/^ami-/);
    expect(result.totalBlocks).toBe(image.manifest.layout.volumeGiB * 2048);
    expect(result.uploadedBlocks + result.skippedBlocks.zero).toBe(result.totalBlocks);

    // Blocks read back from the snapshot equal the raw disk's non-zero blocks.
    const tokens = await listSnapshotBlockTokens(clients, result.snapshot);
    expect(tokens.size).toBe(result.uploadedBlocks);
    for (const [index, token] of tokens) {
      const stored = await getSnapshotBlock(clients, result.snapshot, index, token);
      expect(stored.length).toBe(BLOCK_SIZE);
      expect(stored.equals(await readDiskBlock(image.disk, index))).toBe(true);
    }
    const puts = calls.filter((c) => c.op === "PutSnapshotBlock");
    expect(puts.every((c) => c.input.ChecksumAlgorithm === "SHA256" && typeof c.input.Checksum === "string")).toBe(true);
    const complete = calls.find((c) => c.op === "CompleteSnapshot")!.input;
    expect(complete).toMatchObject({ ChangedBlocksCount: result.uploadedBlocks, ChecksumAggregationMethod: "LINEAR" });

    // What kiln asked RegisterImage for (moto stores only Name/Description).
    const register = calls.find((c) => c.op === "RegisterImage")!.input;
    expect(register).toMatchObject({
      Architecture: "x86_64",
      VirtualizationType: "hvm",
      EnaSupport: true,
      BootMode: "uefi-preferred",
      ImdsSupport: "v2.0",
      RootDeviceName: "/dev/xvda",
      BlockDeviceMappings: [
        { DeviceName: "/dev/xvda", Ebs: { SnapshotId: result.snapshot, VolumeType: "gp3", DeleteOnTermination: true } },
      ],
    });
    const images = await clients.ec2.send(new DescribeImagesCommand({ ImageIds: [result.ami] }));
    const tags = Object.fromEntries((images.Images?.[0]?.Tags ?? []).map((t) => [t.Key, t.Value]));
    expect(tags).toEqual({ "kiln:app": "hello-native", "kiln:version": "0.1.0", "kiln:digest": image.digest });

    const again: Call[] = [];
    const second = await pushImage({ ref: image.ref, clients: recordingClients(again), home });
    expect(second).toMatchObject({ reused: true, ami: result.ami, uploadedBlocks: 0 });
    expect(again.some((c) => c.op === "StartSnapshot" || c.op === "PutSnapshotBlock")).toBe(false);
  });

  it("an app-only rebake uploads only the changed blocks, with the previous snapshot as parent", async () => {
    const app = await freshApp();
    const v1 = await bake(app, { version: "1.0.0" }, home, quiet);
    const first = await pushImage({ ref: v1.image.ref, clients: recordingClients([]), home });
    writeFileSync(path.join(app, "data.txt"), `second ${randomUUID()}\n`);
    const v2 = await bake(app, { version: "1.0.1" }, home, quiet);
    const calls: Call[] = [];
    const second = await pushImage({ ref: v2.image.ref, clients: recordingClients(calls), home });
    expect(calls.find((c) => c.op === "StartSnapshot")!.input.ParentSnapshotId).toBe(first.snapshot);
    expect(second.parentSnapshot).toBe(first.snapshot);
    // Only the app partition changed: a handful of blocks, not the kernel or the boot partition.
    expect(second.uploadedBlocks).toBeGreaterThan(0);
    expect(second.uploadedBlocks).toBeLessThanOrEqual(4);
    expect(second.skippedBlocks.unchanged).toBeGreaterThan(first.uploadedBlocks - 5);
  });

  it("an interrupted push, run again, uploads only what is missing", async () => {
    const app = await freshApp();
    const { image } = await bake(app, { version: "2.0.0" }, home, quiet);
    const controller = new AbortController();
    let puts = 0;
    const interrupted = pushImage({
      ref: image.ref,
      home,
      concurrency: 4,
      signal: controller.signal,
      clients: recordingClients([], "eu-west-1", (op) => {
        if (op !== "PutSnapshotBlock") return;
        // Past the layer's "not yet visible" window at once, so the first ten writes all store a block.
        if (++puts === 1) moto.strict!.advance(60_000);
        if (puts === 10) controller.abort();
      }),
    });
    await expect(interrupted).rejects.toThrow(/interrupted/);
    const calls: Call[] = [];
    const resumed = await pushImage({ ref: image.ref, clients: recordingClients(calls), home });
    expect(resumed.resumed).toBe(true);
    expect(calls.some((c) => c.op === "StartSnapshot")).toBe(false);
    expect(resumed.skippedBlocks.alreadyUploaded).toBeGreaterThanOrEqual(6);
    const tokens = await listSnapshotBlockTokens(recordingClients([]), resumed.snapshot);
    expect(tokens.size).toBe(resumed.uploadedBlocks + resumed.skippedBlocks.alreadyUploaded);
    for (const [index, token] of tokens) {
      expect(
        (await getSnapshotBlock(recordingClients([]), resumed.snapshot, index, token)).equals(await readDiskBlock(image.disk, index)),
      ).toBe(true);
    }
  });

  it("a push that fails deletes its incomplete snapshot and registers nothing", async () => {
    const app = await freshApp();
    const { image } = await bake(app, { version: "3.0.0" }, home, quiet);
    let puts = 0;
    const clients = createAwsClients({
      region: "eu-west-1",
      endpoint: moto.endpoint,
      maxAttempts: 1,
      onRequest: (op) => {
        if (op === "PutSnapshotBlock" && ++puts === 5)
          throw Object.assign(new Error("injected: access denied"), { name: "AccessDeniedException", $metadata: { httpStatusCode: 403 } });
      },
    });
    await expect(pushImage({ ref: image.ref, clients, home, concurrency: 1 })).rejects.toThrow(/AccessDenied/);
    const snapshots = await clients.ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ["self"] }));
    expect((snapshots.Snapshots ?? []).filter((s) => s.Description?.includes(image.digest))).toEqual([]);
    const images = await clients.ec2.send(new DescribeImagesCommand({ Owners: ["self"] }));
    expect(images.Images ?? []).toEqual([]);
  });

  it("an incremental push reads back byte for byte: the child starts with its parent's blocks", async () => {
    const app = await freshApp();
    const a = await bake(app, { version: "5.0.0" }, home, quiet);
    const clients = recordingClients([]);
    const first = await pushImage({ ref: a.image.ref, clients, home, retry: FAST_RETRY });
    writeFileSync(path.join(app, "data.txt"), `changed ${randomUUID()}\n`);
    const b = await bake(app, { version: "5.0.1" }, home, quiet);
    const second = await pushImage({ ref: b.image.ref, clients, home, retry: FAST_RETRY });
    expect(second.parentSnapshot).toBe(first.snapshot);
    expect(second.uploadedBlocks).toBeLessThanOrEqual(4);
    expect(await expectSnapshotIsDisk(clients, second.snapshot, b.image)).toBeGreaterThan(second.uploadedBlocks);
    // moto alone keeps only the child's own blocks: without the layer this read-back could not pass.
    const direct = createAwsClients({ region: "eu-west-1", endpoint: moto.upstream, maxAttempts: 1 });
    expect((await listSnapshotBlockTokens(direct, second.snapshot)).size).toBe(second.uploadedBlocks);
  });

  it("push --kms-key with a parent: the child takes the parent's key; another key goes full and says why", async () => {
    const app = await freshApp();
    const v1 = await bake(app, { version: "6.0.0" }, home, quiet);
    const clients = recordingClients([]);
    const first = await pushImage({ ref: v1.image.ref, clients, home, kmsKeyArn: KEY_1, retry: FAST_RETRY });
    expect(await snapshotEncryption(clients, first.snapshot)).toEqual({ encrypted: true, key: KEY_1 });

    writeFileSync(path.join(app, "data.txt"), `v2 ${randomUUID()}\n`);
    const v2 = await bake(app, { version: "6.0.1" }, home, quiet);
    const calls: Call[] = [];
    const second = await pushImage({ ref: v2.image.ref, clients: recordingClients(calls), home, kmsKeyArn: KEY_1, retry: FAST_RETRY });
    const start = calls.find((c) => c.op === "StartSnapshot")!.input;
    expect(start.ParentSnapshotId).toBe(first.snapshot);
    expect(start).not.toHaveProperty("Encrypted");
    expect(start).not.toHaveProperty("KmsKeyArn");
    expect(second.parentSnapshot).toBe(first.snapshot);
    expect(await snapshotEncryption(clients, second.snapshot)).toEqual({ encrypted: true, key: KEY_1 });
    await expectSnapshotIsDisk(clients, second.snapshot, v2.image);

    writeFileSync(path.join(app, "data.txt"), `v3 ${randomUUID()}\n`);
    const v3 = await bake(app, { version: "6.0.2" }, home, quiet);
    const logs: string[] = [];
    const third = await pushImage({ ref: v3.image.ref, clients, home, kmsKeyArn: KEY_2, retry: FAST_RETRY, log: (m) => logs.push(m) });
    expect(third.parentSnapshot).toBeUndefined();
    expect(third.parentNotes.join("\n")).toContain(`encrypted with ${KEY_1}, not with --kms-key ${KEY_2}`);
    expect(logs.join("\n")).toMatch(/Uploading in full: .*not with --kms-key/);
    expect(await snapshotEncryption(clients, third.snapshot)).toEqual({ encrypted: true, key: KEY_2 });
    await expectSnapshotIsDisk(clients, third.snapshot, v3.image);

    await expect(pushImage({ ref: v3.image.ref, clients, home, kmsKeyArn: "alias/mine" })).rejects.toThrow(/not a KMS key ARN/);
  });

  it("with EBS encryption by default an unencrypted parent is passed over: the push goes full, encrypted, and says why", async () => {
    const app = await freshApp();
    const v1 = await bake(app, { version: "7.0.0" }, home, quiet);
    const clients = recordingClients([]);
    const first = await pushImage({ ref: v1.image.ref, clients, home, retry: FAST_RETRY });
    expect((await snapshotEncryption(clients, first.snapshot)).encrypted).toBe(false);
    await clients.ec2.send(new EnableEbsEncryptionByDefaultCommand({}));

    writeFileSync(path.join(app, "data.txt"), `v2 ${randomUUID()}\n`);
    const v2 = await bake(app, { version: "7.0.1" }, home, quiet);
    const calls: Call[] = [];
    const second = await pushImage({ ref: v2.image.ref, clients: recordingClients(calls), home, retry: FAST_RETRY });
    expect(second.parentSnapshot).toBeUndefined();
    expect(second.parentNotes.join("\n")).toMatch(/unencrypted and the account has EBS encryption by default/);
    expect(calls.some((c) => c.op === "GetEbsEncryptionByDefault")).toBe(true);
    expect((await snapshotEncryption(clients, second.snapshot)).encrypted).toBe(true);
    await expectSnapshotIsDisk(clients, second.snapshot, v2.image);

    // The next push builds on the encrypted one.
    writeFileSync(path.join(app, "data.txt"), `v3 ${randomUUID()}\n`);
    const v3 = await bake(app, { version: "7.0.2" }, home, quiet);
    const third = await pushImage({ ref: v3.image.ref, clients, home, retry: FAST_RETRY });
    expect(third.parentSnapshot).toBe(second.snapshot);
    await expectSnapshotIsDisk(clients, third.snapshot, v3.image);
  });

  it.each([
    [0.1, 101],
    [0.3, 303],
  ])("under %s of EBS requests faulted the push completes and the snapshot is the disk", async (rate, seed) => {
    const app = await freshApp();
    const { image } = await bake(app, { version: `8.0.${seed}` }, home, quiet);
    const clients = recordingClients([]);
    const from = moto.strict!.calls.length;
    moto.strict!.setFaults({ rate, seed, services: ["ebs"] });
    let result;
    try {
      result = await pushImage({ ref: image.ref, clients, home, retry: FAST_RETRY });
    } finally {
      moto.strict!.setFaults(undefined);
    }
    const ebs = moto.strict!.calls.slice(from).filter((c) => c.service === "ebs");
    const faults = ebs.filter((c) => c.fault).length;
    const notVisible = ebs.filter((c) => c.refusedBy === "ebs-eventual").length;
    console.log(
      `faults ${rate}: ${ebs.length} EBS calls, ${faults} faults injected, ${notVisible} not-yet-visible, ${result.retries} retries, ` +
        `${result.uploadedBlocks} blocks, ${result.seconds.toFixed(2)} s`,
    );
    expect(faults).toBeGreaterThan(0);
    expect(result.retries).toBe(faults + notVisible);
    expect(await expectSnapshotIsDisk(clients, result.snapshot, image)).toBe(result.uploadedBlocks);
  });

  it("under 100 % EBS faults the push fails cleanly: a clear error, no snapshot, no AMI, no progress record", async () => {
    const app = await freshApp();
    const { image } = await bake(app, { version: "9.0.0" }, home, quiet);
    const clients = recordingClients([]);
    const leftovers = async () => {
      const snapshots = await clients.ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ["self"] }));
      const images = await clients.ec2.send(new DescribeImagesCommand({ Owners: ["self"] }));
      return [
        ...(snapshots.Snapshots ?? []).filter((s) => s.Description?.includes(image.digest)).map((s) => s.SnapshotId),
        ...(images.Images ?? []).filter((i) => i.Name?.includes("9.0.0")).map((i) => i.ImageId),
      ];
    };
    // From the start: StartSnapshot itself never succeeds.
    moto.strict!.setFaults({ rate: 1, seed: 7, services: ["ebs"] });
    try {
      await expect(pushImage({ ref: image.ref, clients, home, retry: FAST_RETRY })).rejects.toThrow(
        /StartSnapshot kept failing after 9 attempts/,
      );
    } finally {
      moto.strict!.setFaults(undefined);
    }
    expect(await leftovers()).toEqual([]);

    // After StartSnapshot: every block write fails; the budget runs out and the snapshot is deleted.
    let started = false;
    const faulting = recordingClients([], "eu-west-1", (op) => {
      if (op === "PutSnapshotBlock" && !started) {
        started = true;
        moto.strict!.setFaults({ rate: 1, seed: 8, services: ["ebs"] });
      }
    });
    const from = moto.strict!.calls.length;
    try {
      await expect(pushImage({ ref: image.ref, clients: faulting, home, retry: FAST_RETRY })).rejects.toThrow(
        /gave up: EBS kept failing \(0 of \d+ blocks stored; block \d+: .*\); the incomplete snapshot snap-\w+ was deleted/,
      );
    } finally {
      moto.strict!.setFaults(undefined);
    }
    const puts = moto.strict!.calls.slice(from).filter((c) => c.action === "PutSnapshotBlock");
    console.log(`faults 1.0: ${puts.length} PutSnapshotBlock calls, all faulted: ${puts.every((c) => c.fault || c.refusedBy)}`);
    expect(await leftovers()).toEqual([]);
    expect(existsSync(path.join(home.root, "push", "eu-west-1", `${image.digest.slice(7)}.json`))).toBe(false);
  });

  it("the CLI prints one JSON object; copy-to copies to another region", async () => {
    const { image } = await bakeExample("hello-native", home);
    const out = await cli(["push", image.ref, "--region", "us-east-2", "--copy-to", "eu-central-1", "--json"], {
      KILN_HOME: home.root,
      AWS_ENDPOINT_URL: moto.endpoint,
    });
    expect(out.code, out.stderr).toBe(0);
    const result = JSON.parse(out.stdout) as Record<string, unknown>;
    expect(result).toMatchObject({ region: "us-east-2", reused: false });
    for (const key of ["ami", "snapshot", "uploadedBlocks", "skippedBlocks"]) expect(result).toHaveProperty(key);
    const copy = (result.copies as { region: string; ami: string }[])[0]!;
    expect(copy).toMatchObject({ region: "eu-central-1" });
    // The strict layer keeps a copy pending for a moment (rule ec2-copied-image-pending): push
    // returns only once the copy can launch, so a promote in that region never finds it pending.
    const there = createAwsClients({ region: "eu-central-1", endpoint: moto.endpoint, maxAttempts: 1 });
    const described = await there.ec2.send(new DescribeImagesCommand({ ImageIds: [copy.ami] }));
    expect(described.Images?.[0]?.State).toBe("available");
  });

  it("bad input: no region, no credentials, an image not in the store, a missing EBS permission", async () => {
    // No profile region either (kiln reads the shared config file's region as the SDK does).
    const env = {
      KILN_HOME: home.root,
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_REGION: "",
      AWS_DEFAULT_REGION: "",
      AWS_CONFIG_FILE: path.join(home.root, "no-aws-config"),
    };
    const noRegion = await cli(["push", "hello-native:0.1.0"], env);
    expect(noRegion.code).toBe(2);
    expect(noRegion.stderr).toMatch(/no AWS region[\s\S]*hint: pass --region/);

    const noCreds = await cli(["push", "hello-native:0.1.0", "--region", "eu-west-1"], {
      ...env,
      AWS_ACCESS_KEY_ID: "",
      AWS_SECRET_ACCESS_KEY: "",
      AWS_SESSION_TOKEN: "",
      AWS_PROFILE: "kiln-no-such-profile",
      AWS_CONFIG_FILE: "/nonexistent",
      AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
      AWS_EC2_METADATA_DISABLED: "true",
    });
    expect(noCreds.code).not.toBe(0);
    expect(noCreds.stderr).toMatch(/no AWS credentials found|credentials/i);
    expect(noCreds.stderr).toMatch(/hint:/);

    const missing = await cli(["push", "nosuch:1.0", "--region", "eu-west-1"], env);
    expect(missing.code).toBe(6);
    expect(missing.stderr).toMatch(/not in the local store/);

    // An endpoint that answers EBS StartSnapshot with AccessDenied and forwards the rest to moto.
    const proxy = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", async () => {
        if (req.method === "POST" && req.url === "/snapshots") {
          res.writeHead(403, {
            "content-type": "application/json",
            "x-amzn-errortype": "AccessDeniedException",
            "x-amzn-requestid": "req-denied-1",
          });
          res.end(JSON.stringify({ message: "User is not authorized to perform: ebs:StartSnapshot" }));
          return;
        }
        const upstream = await fetch(`${moto.endpoint}${req.url}`, {
          method: req.method,
          headers: req.headers as Record<string, string>,
          body: chunks.length ? Buffer.concat(chunks) : undefined,
        });
        res.writeHead(upstream.status, Object.fromEntries(upstream.headers));
        res.end(Buffer.from(await upstream.arrayBuffer()));
      });
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const port = (proxy.address() as { port: number }).port;
    const app = await freshApp();
    const { image } = await bake(app, { version: "4.0.0" }, home, quiet);
    const denied = await cli(["push", image.ref, "--region", "eu-west-1"], { ...env, AWS_ENDPOINT_URL: `http://127.0.0.1:${port}` });
    proxy.close();
    expect(denied.code).toBe(7);
    expect(denied.stderr).toMatch(/StartSnapshot[\s\S]*AccessDenied[\s\S]*req-denied-1/);
    expect(denied.stderr).toMatch(/hint: the credentials lack permission ebs:StartSnapshot/);
    const images = await createAwsClients({ region: "eu-west-1", endpoint: moto.endpoint }).ec2.send(
      new DescribeImagesCommand({ Owners: ["self"] }),
    );
    expect((images.Images ?? []).filter((i) => i.Name?.includes("4.0.0"))).toEqual([]);
  });

  it("images --region lists kiln's AMIs with the environments that run them; rm --region refuses while one does", async () => {
    const { image } = await bakeExample("hello-native", home);
    const clients = recordingClients([]);
    const pushed = await pushImage({ ref: image.ref, clients, home });
    const env = { KILN_HOME: home.root, AWS_ENDPOINT_URL: moto.endpoint };
    const listed = JSON.parse((await cli(["images", "--region", "eu-west-1", "--json"], env)).stdout) as {
      ami: string;
      digest: string;
      inUseBy: string[];
    }[];
    expect(listed).toEqual([expect.objectContaining({ ami: pushed.ami, digest: image.digest, inUseBy: [] })]);

    // An environment running the digest (an ASG tagged by kiln promote) blocks removal.
    const lt = await clients.ec2.send(
      new CreateLaunchTemplateCommand({
        LaunchTemplateName: "in-use",
        LaunchTemplateData: { ImageId: pushed.ami, InstanceType: "t3.micro" },
      }),
    );
    await clients.autoscaling.send(
      new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: "hello-native-prod-x",
        MinSize: 0,
        MaxSize: 0,
        DesiredCapacity: 0,
        AvailabilityZones: ["eu-west-1a"],
        LaunchTemplate: { LaunchTemplateId: lt.LaunchTemplate!.LaunchTemplateId!, Version: "1" },
        Tags: [
          { Key: "kiln:digest", Value: image.digest, PropagateAtLaunch: true },
          { Key: "kiln:env", Value: "prod", PropagateAtLaunch: true },
        ],
      }),
    );
    const refused = await cli(["rm", image.ref, "--region", "eu-west-1"], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/running in prod/);
    await clients.autoscaling.send(new DeleteAutoScalingGroupCommand({ AutoScalingGroupName: "hello-native-prod-x", ForceDelete: true }));

    const removed = await cli(["rm", image.ref, "--region", "eu-west-1"], env);
    expect(removed.code, removed.stderr).toBe(0);
    const images = await clients.ec2.send(new DescribeImagesCommand({ Owners: ["self"] }));
    expect(images.Images ?? []).toEqual([]);
    const snapshots = await clients.ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ["self"] }));
    expect((snapshots.Snapshots ?? []).filter((x) => x.SnapshotId === pushed.snapshot)).toEqual([]);
  });
});
