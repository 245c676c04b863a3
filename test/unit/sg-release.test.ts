// Deleting a security group a deleted ALB's network interfaces still hold (bug 7): retried with
// backoff while AWS answers DependencyViolation, within a bound; other errors are not retried.
import { describe, expect, it } from "vitest";
import type { AwsClients } from "../../src/aws/clients.js";
import { deleteSecurityGroupWhenFree } from "../../src/aws/ec2-deploy.js";

/** EC2 whose DeleteSecurityGroup answers `answers` in turn (an error name, or "ok"). */
function ec2Answering(answers: string[]): { clients: AwsClients; tries: () => number } {
  let tries = 0;
  const send = async () => {
    const answer = answers[Math.min(tries++, answers.length - 1)]!;
    if (answer !== "ok") throw Object.assign(new Error(`resource sg-1 has a dependent object (${answer})`), { name: answer });
    return {};
  };
  return { clients: { ec2: { send } } as unknown as AwsClients, tries: () => tries };
}

function fakeClock() {
  let t = 0;
  const pauses: number[] = [];
  const sleep = async (ms: number) => {
    pauses.push(ms);
    t += ms;
  };
  return { now: () => t, sleep, pauses };
}

describe("deleteSecurityGroupWhenFree", () => {
  it("retries DependencyViolation with doubling pauses until the group is free", async () => {
    const clock = fakeClock();
    const { clients } = ec2Answering(["DependencyViolation", "DependencyViolation", "DependencyViolation", "ok"]);
    expect(await deleteSecurityGroupWhenFree(clients, "sg-1", { maxWaitSeconds: 600, minDelayMs: 1000, ...clock })).toBe(4);
    expect(clock.pauses).toEqual([1000, 2000, 4000]);
  });

  it("gives up within its bound, saying why and that a second destroy finishes the job", async () => {
    const clock = fakeClock();
    const { clients } = ec2Answering(["DependencyViolation"]);
    const error = await deleteSecurityGroupWhenFree(clients, "sg-1", { maxWaitSeconds: 60, minDelayMs: 2000, ...clock }).catch(
      (e: unknown) => e as Error & { hint?: string },
    );
    expect((error as Error).message).toMatch(/sg-1 is still in use after \d+s \(DependencyViolation\)/);
    expect((error as { hint?: string }).hint).toMatch(/run kiln destroy again/);
    expect(clock.now()).toBeLessThanOrEqual(60_000);
    expect(Math.max(...clock.pauses)).toBeLessThanOrEqual(30_000);
  });

  it("a group already gone counts as deleted; other errors are not retried", async () => {
    const clock = fakeClock();
    expect(
      await deleteSecurityGroupWhenFree(ec2Answering(["InvalidGroup.NotFound"]).clients, "sg-1", { maxWaitSeconds: 60, ...clock }),
    ).toBe(1);
    const denied = ec2Answering(["UnauthorizedOperation"]);
    await expect(deleteSecurityGroupWhenFree(denied.clients, "sg-1", { maxWaitSeconds: 60, ...clock })).rejects.toThrow(
      /UnauthorizedOperation/,
    );
    expect(denied.tries()).toBe(1);
    expect(clock.pauses).toEqual([]);
  });
});
