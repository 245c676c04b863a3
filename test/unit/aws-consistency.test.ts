/** The bounded retry for AWS's eventual consistency: only the named errors, with backoff, within a budget. */
import { describe, expect, it } from "vitest";
import { isInstanceProfilePropagation, isNotYetVisible, retryEventualConsistency } from "../../src/aws/consistency.js";

const refused = Object.assign(new Error("Value (p) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"), {
  name: "InvalidParameterValue",
});

describe("retryEventualConsistency", () => {
  it("repeats a call refused with the named error, with growing delays, until it passes", async () => {
    let calls = 0;
    const delays: number[] = [];
    const result = await retryEventualConsistency(
      async () => {
        calls += 1;
        if (calls < 4) throw refused;
        return "launched";
      },
      isInstanceProfilePropagation,
      { budgetMs: 1000, firstDelayMs: 10, maxDelayMs: 25 },
      (_e, _attempt, delay) => delays.push(delay),
    );
    expect(result).toBe("launched");
    expect(delays).toEqual([10, 20, 25]);
  });

  it("gives up with AWS's own error once the budget is spent", async () => {
    const started = Date.now();
    const error = await retryEventualConsistency(
      async () => {
        throw refused;
      },
      isInstanceProfilePropagation,
      { budgetMs: 200, firstDelayMs: 20, maxDelayMs: 40 },
    ).catch((e: unknown) => e);
    expect(error).toBe(refused);
    expect(Date.now() - started).toBeLessThan(400);
  });

  it("does not retry any other error", async () => {
    let calls = 0;
    const other = Object.assign(new Error("Value (t9.nano) for parameter instanceType is invalid"), { name: "InvalidParameterValue" });
    await expect(
      retryEventualConsistency(
        async () => {
          calls += 1;
          throw other;
        },
        isInstanceProfilePropagation,
        { budgetMs: 1000, firstDelayMs: 10, maxDelayMs: 10 },
      ),
    ).rejects.toBe(other);
    expect(calls).toBe(1);
  });

  it("names the documented codes only", () => {
    expect(
      isInstanceProfilePropagation({
        name: "ValidationError",
        message: "You must use a valid fully-formed launch template. Invalid IAM Instance Profile name",
      }),
    ).toBe(true);
    expect(isInstanceProfilePropagation({ name: "AccessDenied", message: "Invalid IAM Instance Profile" })).toBe(false);
    for (const code of ["InvalidGroup.NotFound", "InvalidInstanceID.NotFound", "InvalidAMIID.NotFound", "InvalidLaunchTemplateId.NotFound"])
      expect(isNotYetVisible({ name: code })).toBe(true);
    expect(isNotYetVisible({ name: "InvalidGroup.Duplicate" })).toBe(false);
    expect(isNotYetVisible({ code: "InvalidAMIID.Malformed" })).toBe(false);
  });
});
