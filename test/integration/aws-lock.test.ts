// The AWS environment lock (src/providers/aws/env-lock.ts) against a real emulator (moto
// server) with the real SDK v3 clients: of 8 promotes locking one environment at once (their
// requests jittered, round after round) exactly one gets the lock, through the module and
// through both providers' lock(); a released lock can
// be taken again, and released twice; an expired lock, and one held by a crashed process of the
// same owner on this machine, are taken over (by 8 at once: still exactly one winner, because
// the stale lock is deleted by id); a live holder's lock, and another owner's, are not;
// two environments do not share a lock; a foreign launch template of the lock's name is left alone.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { CreateLaunchTemplateCommand, DescribeLaunchTemplatesCommand } from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AwsClients } from "../../src/aws/clients.js";
import { HOLDER_TAG, UNTIL_TAG, lockEnvironment, lockTemplateName } from "../../src/providers/aws/env-lock.js";
import { AwsProvider } from "../../src/providers/aws/provider.js";
import { SingleInstanceProvider } from "../../src/providers/aws/single-instance.js";
import { loadEnvironment, type AwsEnvironment } from "../../src/config/environments.js";
import { sharedHome } from "./harness.js";
import { emulatorClients, startMoto, useEmulatorCredentials, type Moto } from "./moto.js";

const REGION = "eu-west-1";
const ME = "me@here";
const LOCKED = /^environment test is locked by /;
let moto: Moto;

const clients = (): AwsClients => emulatorClients(moto, REGION);

/**
 * Clients whose every request waits 0-40 ms first, so racing promotes interleave in many orders
 * (without it moto answers them in lockstep, and even a write-then-read-back lock passes).
 */
function jittery(): AwsClients {
  const c = clients();
  c.ec2.middlewareStack.add(
    (next) => async (args) => {
      await new Promise((r) => setTimeout(r, Math.random() * 40));
      return next(args);
    },
    { step: "initialize", name: "jitter" },
  );
  return c;
}

/** Every launch template moto holds, with its tags. */
async function templates(): Promise<{ id: string; name: string; tags: Record<string, string> }[]> {
  const out = await clients().ec2.send(new DescribeLaunchTemplatesCommand({}));
  return (out.LaunchTemplates ?? []).map((t) => ({
    id: t.LaunchTemplateId!,
    name: t.LaunchTemplateName!,
    tags: Object.fromEntries((t.Tags ?? []).map((x) => [x.Key!, x.Value!])),
  }));
}

/** A lock as another kiln (or a crashed one) left it, written with the SDK. */
async function plantLock(holder: string, until: number): Promise<string> {
  const out = await clients().ec2.send(
    new CreateLaunchTemplateCommand({
      LaunchTemplateName: lockTemplateName("lockapp", "test"),
      LaunchTemplateData: { MetadataOptions: { HttpTokens: "required" } },
      TagSpecifications: [
        {
          ResourceType: "launch-template",
          Tags: [
            { Key: "kiln:app", Value: "lockapp" },
            { Key: "kiln:env", Value: "test" },
            { Key: HOLDER_TAG, Value: holder },
            { Key: UNTIL_TAG, Value: String(until) },
          ],
        },
      ],
    }),
  );
  return out.LaunchTemplate!.LaunchTemplateId!;
}

/** A pid that was a process of this machine and has exited. */
function deadPid(): number {
  const pid = spawnSync("true").pid;
  expect(process.kill.bind(process, pid, 0)).toThrow();
  return pid;
}

/** Runs all attempts at once; the releases of those that got the lock, and the errors of the rest. */
async function race(attempts: (() => Promise<() => Promise<void>>)[]) {
  const results = await Promise.allSettled(attempts.map((take) => take()));
  const won = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const lost = results.flatMap((r) => (r.status === "rejected" ? [(r.reason as Error).message] : []));
  return { won, lost };
}

const eight = <T>(make: (i: number) => T): T[] => Array.from({ length: 8 }, (_, i) => make(i));

beforeAll(async () => {
  useEmulatorCredentials();
  moto = await startMoto();
});
afterAll(async () => moto?.stop());
beforeEach(async () => moto.reset());

describe.sequential("the AWS environment lock (moto)", () => {
  it("the lock is held as long as the promote may wait on purpose: a 2 h canary gets more than 2 h", async () => {
    const before = Date.now();
    const release = await lockEnvironment(clients(), "lockapp", "test", ME, 3 * 3600);
    const until = Number((await templates())[0]!.tags[UNTIL_TAG]);
    expect(until).toBeGreaterThanOrEqual(before + 3 * 3600 * 1000);
    expect(until).toBeLessThan(Date.now() + 3 * 3600 * 1000 + 1000);
    await release();
  });

  it("8 concurrent lock() attempts on one environment: exactly one holds it; after release it can be taken again", async () => {
    let release: (() => Promise<void>) | undefined;
    for (let round = 1; round <= 10; round++) {
      await release?.();
      const { won, lost } = await race(eight(() => () => lockEnvironment(jittery(), "lockapp", "test", ME)));
      expect(won, `round ${round}`).toHaveLength(1);
      expect(lost).toHaveLength(7);
      for (const message of lost) expect(message).toMatch(new RegExp(`${LOCKED.source}${ME} until \\d{4}-\\d\\d-\\d\\dT`));
      release = won[0];
    }
    const held = await templates();
    expect(held.map((t) => t.name)).toEqual(["kiln-lock-lockapp-test"]);
    // Listed by release lookups only through kiln:release / kiln:mode: the lock has neither.
    expect(held[0]!.tags).toEqual({
      "kiln:app": "lockapp",
      "kiln:env": "test",
      [HOLDER_TAG]: expect.stringMatching(new RegExp(`^${ME}#${process.pid}#[0-9a-f]{8}$`)),
      [UNTIL_TAG]: expect.stringMatching(/^\d+$/),
    });
    const until = Number(held[0]!.tags[UNTIL_TAG]);
    expect(until).toBeGreaterThan(Date.now() + 59 * 60_000);
    expect(until).toBeLessThanOrEqual(Date.now() + 60 * 60_000);

    await release!();
    expect(await templates()).toEqual([]);
    const again = await lockEnvironment(clients(), "lockapp", "test", ME);
    expect(await templates()).toHaveLength(1);
    await again();
    expect(await templates()).toEqual([]);
  });

  it("both providers' lock() take the same lock: of 8 at once (4 load-balanced, 4 single-instance) exactly one wins", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-aws-lock-"));
    const config = (mode: string) => `environments:\n  test:\n    target: aws\n    region: ${REGION}\n    mode: ${mode}\n`;
    writeFileSync(path.join(dir, "lb.yml"), config("load-balanced"));
    writeFileSync(path.join(dir, "single.yml"), config("single-instance"));
    const lb = (await loadEnvironment(path.join(dir, "lb.yml"), "lockapp", "/", "test")) as AwsEnvironment;
    const single = (await loadEnvironment(path.join(dir, "single.yml"), "lockapp", "/", "test")) as AwsEnvironment;
    const home = sharedHome();
    const { won, lost } = await race(
      eight((i) => () => (i % 2 ? new AwsProvider(lb, jittery(), home) : new SingleInstanceProvider(single, jittery(), home)).lock(ME)),
    );
    expect(won).toHaveLength(1);
    expect(
      lost.every((m) => LOCKED.test(m)),
      lost.join("\n"),
    ).toBe(true);
    expect((await templates()).map((t) => t.name)).toEqual(["kiln-lock-lockapp-test"]);
    // Holding the lock, a second promote of either mode is refused, naming the template to delete.
    const refused = await new AwsProvider(lb, clients(), home)
      .lock("someone-else")
      .catch((e: unknown) => e as { message: string; hint?: string });
    expect((refused as { message: string }).message).toMatch(new RegExp(`${LOCKED.source}${ME} until`));
    expect((refused as { hint?: string }).hint).toContain(
      `launch template kiln-lock-lockapp-test: aws ec2 delete-launch-template --region ${REGION} --launch-template-id ${(await templates())[0]!.id}`,
    );
    await won[0]!();
    expect(await templates()).toEqual([]);
  });

  it("releasing twice does not throw", async () => {
    const release = await lockEnvironment(clients(), "lockapp", "test", ME);
    await release();
    await release();
    expect(await templates()).toEqual([]);
  });

  it("an expired lock is taken over (by 8 at once: one winner, as the stale lock is deleted by id)", async () => {
    const stale = await plantLock("ghost@elsewhere#4242#0badf00d", Date.now() - 1000);
    const { won, lost } = await race(eight(() => () => lockEnvironment(jittery(), "lockapp", "test", ME)));
    expect(won).toHaveLength(1);
    expect(
      lost.every((m) => new RegExp(`${LOCKED.source}${ME} until`).test(m)),
      lost.join("\n"),
    ).toBe(true);
    const now = await templates();
    expect(now).toHaveLength(1);
    expect(now[0]!.id).not.toBe(stale);
    expect(now[0]!.tags[HOLDER_TAG]).toMatch(new RegExp(`^${ME}#${process.pid}#`));
    await won[0]!();
  });

  it("a takeover never deletes a lock that a third promote took after the stale one was read", async () => {
    const stale = await plantLock("ghost@elsewhere#4242#0badf00d", Date.now() - 1000);
    // Right after this promote has read the stale lock, another one takes it over.
    const late = clients();
    let third: (() => Promise<void>) | undefined;
    late.ec2.middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        if ((context as { commandName?: string }).commandName === "DescribeLaunchTemplatesCommand" && !third) {
          third = await lockEnvironment(clients(), "lockapp", "test", "someone-else");
        }
        return result;
      },
      { step: "initialize", name: "takeOverMeanwhile" },
    );
    await expect(lockEnvironment(late, "lockapp", "test", ME)).rejects.toThrow(/^environment test is locked by someone-else until /);
    const now = await templates();
    expect(now).toHaveLength(1);
    expect(now[0]!.id).not.toBe(stale);
    expect(now[0]!.tags[HOLDER_TAG]).toMatch(/^someone-else#/);
    await third!();
  });

  it("a lock of this owner whose process has died is taken over; one whose process lives is not", async () => {
    const crashed = await plantLock(`${ME}#${deadPid()}#0badf00d`, Date.now() + 3_600_000);
    const release = await lockEnvironment(clients(), "lockapp", "test", ME);
    const now = await templates();
    expect(now).toHaveLength(1);
    expect(now[0]!.id).not.toBe(crashed);
    await release();
    // The same owner, alive (this very process): not stale.
    const live = await plantLock(`${ME}#${process.pid}#0badf00d`, Date.now() + 3_600_000);
    await expect(lockEnvironment(clients(), "lockapp", "test", ME)).rejects.toThrow(new RegExp(`${LOCKED.source}${ME} until`));
    expect((await templates()).map((t) => t.id)).toEqual([live]);
  });

  it("another holder's unexpired lock is not taken over, alive or not (its pid may be another machine's)", async () => {
    const other = await lockEnvironment(clients(), "lockapp", "test", "someone-else");
    await expect(lockEnvironment(clients(), "lockapp", "test", ME)).rejects.toThrow(/^environment test is locked by someone-else until /);
    await other();
    const elsewhere = await plantLock(`someone-else#${deadPid()}#0badf00d`, Date.now() + 3_600_000);
    await expect(lockEnvironment(clients(), "lockapp", "test", ME)).rejects.toThrow(/^environment test is locked by someone-else until /);
    expect((await templates()).map((t) => t.id)).toEqual([elsewhere]);
  });

  it("two environments do not interfere", async () => {
    const [a, b] = await Promise.all([
      lockEnvironment(clients(), "lockapp", "test", ME),
      lockEnvironment(clients(), "lockapp", "prod", ME),
    ]);
    expect((await templates()).map((t) => t.name).sort()).toEqual(["kiln-lock-lockapp-prod", "kiln-lock-lockapp-test"]);
    await a();
    // Releasing one leaves the other held.
    await expect(lockEnvironment(clients(), "lockapp", "prod", "someone-else")).rejects.toThrow(
      /^environment prod is locked by me@here until /,
    );
    const a2 = await lockEnvironment(clients(), "lockapp", "test", "someone-else");
    await Promise.all([a2(), b()]);
    expect(await templates()).toEqual([]);
  });

  it("a launch template of the lock's name that is not a lock is refused, never deleted", async () => {
    const foreign = (
      await clients().ec2.send(
        new CreateLaunchTemplateCommand({
          LaunchTemplateName: lockTemplateName("lockapp", "test"),
          LaunchTemplateData: { InstanceType: "t3.micro" },
        }),
      )
    ).LaunchTemplate!.LaunchTemplateId!;
    await expect(lockEnvironment(clients(), "lockapp", "test", ME)).rejects.toThrow(
      /launch template kiln-lock-lockapp-test .* is not a kiln lock/,
    );
    expect((await templates()).map((t) => t.id)).toEqual([foreign]);
  });
});
