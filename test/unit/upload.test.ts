import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BLOCK_SIZE, aggregateChecksum, blockChecksum, planBlocks } from "../../src/push/blocks.js";
import { RetriesExhausted, uploadBlocks, UploadInterrupted } from "../../src/push/upload.js";
import { isSnapshotNotYetVisible, isTransientEbsError } from "../../src/aws/ebs.js";
import { retryTransient } from "../../src/push/retry.js";
import { isThrottling, translateAwsError, AwsError } from "../../src/aws/errors.js";

const noSleep = async () => undefined;
const block = (fill: number) => Buffer.alloc(16, fill);

describe("block plan", () => {
  it("skips all-zero blocks on a first push", () => {
    const plan = planBlocks(["a", null, null, "b", null]);
    expect(plan).toEqual({ upload: [0, 3], skippedZero: 3, skippedUnchanged: 0, totalBlocks: 5 });
  });

  it("against a parent uploads only changed blocks, including blocks that became zero", () => {
    const parent = ["a", "b", null, "c", "d"];
    const disk = ["a", "B", "new", null, "d", "tail"];
    const plan = planBlocks(disk, parent);
    expect(plan.upload).toEqual([1, 2, 3, 5]);
    expect(plan.skippedUnchanged).toBe(2);
    expect(plan.skippedZero).toBe(0);
  });
});

describe("checksums", () => {
  it("a block's checksum is its base64 SHA256", () => {
    const data = Buffer.alloc(BLOCK_SIZE, 7);
    expect(blockChecksum(data)).toBe(createHash("sha256").update(data).digest("base64"));
  });

  it("the LINEAR aggregate hashes the block digests in index order, whatever order they finished in", () => {
    const sums = new Map([
      [5, blockChecksum(block(5))],
      [1, blockChecksum(block(1))],
      [3, blockChecksum(block(3))],
    ]);
    const expected = createHash("sha256")
      .update(Buffer.concat([1, 3, 5].map((i) => createHash("sha256").update(block(i)).digest())))
      .digest("base64");
    expect(aggregateChecksum(sums)).toBe(expected);
  });
});

describe("upload engine", () => {
  const base = {
    read: async (i: number) => block(i),
    checksum: blockChecksum,
    isRetryable: isThrottling,
    maxRetries: 5,
    sleep: noSleep,
    random: () => 0.5,
  };

  it("retries throttled blocks with growing backoff and succeeds", async () => {
    const failures = new Map([
      [2, 2],
      [4, 1],
    ]);
    const delays: number[] = [];
    const stats = await uploadBlocks({
      ...base,
      indexes: [1, 2, 3, 4],
      concurrency: 2,
      sleep: async (ms) => void delays.push(ms),
      put: async (i) => {
        const left = failures.get(i) ?? 0;
        if (left > 0) {
          failures.set(i, left - 1);
          throw Object.assign(new Error("Rate exceeded"), { name: "ThrottlingException", $metadata: { httpStatusCode: 400 } });
        }
      },
    });
    expect([...stats.checksums.keys()].sort()).toEqual([1, 2, 3, 4]);
    expect(stats.retries).toBe(3);
    expect(delays.length).toBe(3);
    expect(Math.max(...delays)).toBeGreaterThan(Math.min(...delays));
  });

  it("never has more requests in flight than the concurrency bound", async () => {
    let inFlight = 0;
    let peak = 0;
    const stats = await uploadBlocks({
      ...base,
      indexes: Array.from({ length: 40 }, (_, i) => i),
      concurrency: 7,
      put: async () => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((r) => setTimeout(r, 2));
        inFlight--;
      },
    });
    expect(peak).toBe(7);
    expect(stats.maxInFlight).toBe(7);
    expect(stats.checksums.size).toBe(40);
  });

  it("a non-retryable error stops the upload and is reported", async () => {
    const sent: number[] = [];
    await expect(
      uploadBlocks({
        ...base,
        indexes: Array.from({ length: 20 }, (_, i) => i),
        concurrency: 1,
        put: async (i) => {
          if (i === 3) throw Object.assign(new Error("denied"), { name: "AccessDeniedException", $metadata: { httpStatusCode: 403 } });
          sent.push(i);
        },
      }),
    ).rejects.toThrow("denied");
    expect(sent).toEqual([0, 1, 2]);
  });

  it("gives up after maxRetries on persistent throttling", async () => {
    let calls = 0;
    await expect(
      uploadBlocks({
        ...base,
        indexes: [0],
        concurrency: 1,
        maxRetries: 3,
        put: async () => {
          calls++;
          throw Object.assign(new Error("slow down"), { name: "ThrottlingException" });
        },
      }),
    ).rejects.toThrow("slow down");
    expect(calls).toBe(4);
  });

  it("stops between blocks when aborted", async () => {
    const controller = new AbortController();
    const sent: number[] = [];
    await expect(
      uploadBlocks({
        ...base,
        indexes: [0, 1, 2, 3, 4, 5],
        concurrency: 1,
        signal: controller.signal,
        put: async (i) => {
          sent.push(i);
          if (i === 2) controller.abort();
        },
      }),
    ).rejects.toBeInstanceOf(UploadInterrupted);
    expect(sent).toEqual([0, 1, 2]);
  });
});

describe("upload engine under transient EBS errors", () => {
  const sdkError = (name: string, status: number, extra: Record<string, unknown> = {}) =>
    Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status }, ...extra });
  const base = {
    read: async (i: number) => block(i),
    checksum: blockChecksum,
    isRetryable: isTransientEbsError,
    isNotYetVisible: isSnapshotNotYetVisible,
    maxRetries: 4,
    sleep: noSleep,
    random: () => 0.5,
  };

  it("the first block waits alone until a just-started snapshot is visible, then the rest go in parallel", async () => {
    let visibleAfter = 5;
    const order: string[] = [];
    let inFlight = 0;
    const stats = await uploadBlocks({
      ...base,
      indexes: [0, 1, 2, 3, 4, 5],
      concurrency: 4,
      put: async (i) => {
        inFlight++;
        order.push(`${i}:${inFlight}`);
        await new Promise((r) => setTimeout(r, 1));
        inFlight--;
        if (visibleAfter-- > 0) throw sdkError("ResourceNotFoundException", 404, { Reason: "SNAPSHOT_NOT_FOUND" });
      },
    });
    // Five "does not exist" answers on block 0, more than maxRetries (4): visibility has its own time budget.
    expect(order.slice(0, 6)).toEqual(["0:1", "0:1", "0:1", "0:1", "0:1", "0:1"]);
    expect(stats.retries).toBe(5);
    expect(stats.checksums.size).toBe(6);
  });

  it("a snapshot that never becomes visible fails after the visibility wait", async () => {
    await expect(
      uploadBlocks({
        ...base,
        indexes: [0, 1],
        concurrency: 2,
        visibilityWaitMs: 1000,
        baseDelayMs: 100,
        put: async () => {
          throw sdkError("ResourceNotFoundException", 404, { Reason: "SNAPSHOT_NOT_FOUND" });
        },
      }),
    ).rejects.toThrow(/still not visible after \d+ ms/);
  });

  it("the overall retry budget stops a persistent outage instead of retrying every block", async () => {
    let calls = 0;
    const error = await uploadBlocks({
      ...base,
      indexes: Array.from({ length: 50 }, (_, i) => i),
      concurrency: 4,
      maxRetries: 8,
      retryBudget: 10,
      put: async (i) => {
        calls++;
        if (i > 0) throw sdkError("ServiceUnavailable", 503);
      },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetriesExhausted);
    expect((error as RetriesExhausted).message).toMatch(/retry budget of 10 is spent/);
    expect(calls).toBeLessThanOrEqual(1 + 10 + 4);
  });

  it("classifies EBS errors: throttling, 5xx, resets and unreadable block data retry; denial and bad input do not", () => {
    expect(isTransientEbsError(sdkError("ThrottlingException", 400))).toBe(true);
    expect(isTransientEbsError(sdkError("RequestThrottledException", 400))).toBe(true);
    expect(isTransientEbsError(sdkError("InternalServerException", 500))).toBe(true);
    expect(isTransientEbsError(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }))).toBe(true);
    expect(isTransientEbsError(Object.assign(sdkError("ValidationException", 400), { message: "Failed to read block data" }))).toBe(true);
    expect(isTransientEbsError(Object.assign(sdkError("ValidationException", 400), { message: "checksum mismatch" }))).toBe(false);
    expect(isTransientEbsError(sdkError("AccessDeniedException", 403))).toBe(false);
    expect(isSnapshotNotYetVisible(sdkError("ResourceNotFoundException", 404, { Reason: "SNAPSHOT_NOT_FOUND" }))).toBe(true);
    expect(isSnapshotNotYetVisible(sdkError("ResourceNotFoundException", 404, { Reason: "GRANT_NOT_FOUND" }))).toBe(false);
    // Errors already translated at the AWS boundary are classified by their cause.
    expect(isTransientEbsError(translateAwsError(sdkError("ThrottlingException", 400), "StartSnapshot", "x"))).toBe(true);
  });

  it("retryTransient retries an idempotent call on transient errors only, and says when it gave up", async () => {
    let n = 0;
    const policy = { attempts: 3, baseDelayMs: 1, maxDelayMs: 1, sleep: noSleep };
    expect(
      await retryTransient(
        "StartSnapshot",
        async () => (++n < 3 ? Promise.reject(sdkError("ThrottlingException", 400)) : "snap-1"),
        isTransientEbsError,
        policy,
      ),
    ).toBe("snap-1");
    await expect(
      retryTransient("StartSnapshot", async () => Promise.reject(sdkError("ServiceUnavailable", 503)), isTransientEbsError, policy),
    ).rejects.toThrow(/StartSnapshot kept failing after 3 attempts/);
    await expect(
      retryTransient("StartSnapshot", async () => Promise.reject(sdkError("AccessDeniedException", 403)), isTransientEbsError, policy),
    ).rejects.toThrow("AccessDeniedException");
  });
});

describe("AWS error translation", () => {
  it("names the missing permission", () => {
    const error = translateAwsError(
      Object.assign(new Error("User is not authorized"), {
        name: "AccessDeniedException",
        $metadata: { httpStatusCode: 403, requestId: "r-1" },
      }),
      "StartSnapshot",
      "a 1 GiB snapshot",
    );
    expect(error).toBeInstanceOf(AwsError);
    expect(error.message).toContain("r-1");
    expect((error as AwsError).hint).toContain("ebs:StartSnapshot");
  });

  it("says how to fix missing and expired credentials", () => {
    // Each service module names its own IAM action; EC2 is the default.
    const denied = () => Object.assign(new Error("denied"), { name: "AccessDenied", $metadata: { httpStatusCode: 403 } });
    expect((translateAwsError(denied(), "DescribeTags", "lb", "elasticloadbalancing") as AwsError).hint).toMatch(
      /permission elasticloadbalancing:DescribeTags on lb/,
    );
    expect((translateAwsError(denied(), "GetMetricData", "canary", "cloudwatch") as AwsError).hint).toMatch(
      /permission cloudwatch:GetMetricData/,
    );
    expect((translateAwsError(denied(), "DescribeTags", "lt-1") as AwsError).hint).toMatch(/permission ec2:DescribeTags/);
    expect(
      (
        translateAwsError(
          Object.assign(new Error("Could not load credentials from any providers"), { name: "CredentialsProviderError" }),
          "DescribeImages",
          "x",
        ) as AwsError
      ).hint,
    ).toMatch(/AWS_PROFILE/);
    expect(
      (
        translateAwsError(
          Object.assign(new Error("The security token included in the request is expired"), { name: "ExpiredToken" }),
          "DescribeImages",
          "x",
        ) as AwsError
      ).hint,
    ).toMatch(/expired/);
  });
});
