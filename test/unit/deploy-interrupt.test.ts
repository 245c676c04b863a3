// Issue 18, item 4: a promote stopped by Ctrl-C stops at a safe point, undoes nothing, and says
// where it stopped and what is left; a waiting step is left at once; a canary gives its share back.
import { describe, expect, it } from "vitest";
import { executePlan } from "../../src/deploy/execute.js";
import { PromoteInterrupted } from "../../src/deploy/interrupt.js";
import { planBlueGreen } from "../../src/deploy/plan.js";
import type { DeployProvider, DeployStep } from "../../src/deploy/types.js";
import { env, now, r1, r2, release, state, v1, v2 } from "./helpers/deploy-fixtures.js";

const quiet = { step: async <T>(_: string, work: () => Promise<T>) => work(), info: () => undefined };

/** Records the calls; waitHealthy and the canary's checks never finish on their own. */
function fakeProvider(calls: string[]): DeployProvider {
  const never = () => new Promise<never>(() => undefined);
  const note =
    (name: string) =>
    async (...args: unknown[]) =>
      void calls.push(`${name} ${args.slice(0, 2).join(" ")}`.trim());
  return {
    observe: async () => state(true),
    lock: async () => async () => undefined,
    ensureInfrastructure: note("ensureInfrastructure"),
    launch: note("launch"),
    waitHealthy: async (release) => {
      calls.push(`waitHealthy ${release}`);
      return never();
    },
    switchTraffic: note("switchTraffic"),
    splitTraffic: note("splitTraffic"),
    canaryCheck: never,
    drain: note("drain"),
    deleteRelease: note("deleteRelease"),
    scale: note("scale"),
    record: note("record"),
    deleteInfrastructure: note("deleteInfrastructure"),
    consoleTail: async () => "",
    endpoint: async () => undefined,
  };
}

const waitingFor = (calls: string[], kind: string) =>
  new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (calls.some((c) => c.startsWith(kind))) resolve(clearInterval(poll));
    }, 5);
  });

describe("executePlan interrupted", () => {
  it("Ctrl-C while waiting for health: stops at once, undoes nothing, says what is left", async () => {
    const plan = planBlueGreen(env, v2, "2.0.0", state(true, [release(r1, v1, true)]), now);
    const calls: string[] = [];
    const controller = new AbortController();
    const run = executePlan(plan, fakeProvider(calls), quiet, { signal: controller.signal });
    await waitingFor(calls, "waitHealthy");
    controller.abort("SIGINT");
    const error = (await run.catch((e: unknown) => e)) as PromoteInterrupted;
    expect(error).toBeInstanceOf(PromoteInterrupted);
    expect(error.exitCode).toBe(130);
    expect(error.index).toBe(1);
    expect(calls.map((c) => c.split(" ")[0])).toEqual(["launch", "waitHealthy"]);
    expect(calls.some((c) => c.startsWith("deleteRelease") || c.startsWith("record"))).toBe(false);
    expect(error.message).toMatch(
      new RegExp(`^promote of shop:2\\.0\\.0 to dev interrupted at step 2 of 7 \\(wait until every instance of ${r2}`),
    );
    expect(error.left).toEqual([
      `still running: release ${r2} (2 × shop:2.0.0), which receives no traffic`,
      `traffic stays on ${r1}`,
      "the history does not show this release yet",
    ]);
    expect(error.hint).toContain("kiln promote shop:2.0.0 --env dev");
    expect(error.toJSON()).toMatchObject({ interrupted: true, signal: "SIGINT", step: { index: 1, kind: "wait-healthy" } });
  });

  it("SIGTERM before a step that changes things: that step does not run (exit 143)", async () => {
    const plan = planBlueGreen(env, v2, "2.0.0", state(true, [release(r1, v1, true)]), now);
    const calls: string[] = [];
    const controller = new AbortController();
    const beforeStep = async (step: DeployStep) => {
      if (step.kind === "launch") controller.abort("SIGTERM");
    };
    const error = (await executePlan(plan, fakeProvider(calls), quiet, { signal: controller.signal, beforeStep }).catch(
      (e: unknown) => e,
    )) as PromoteInterrupted;
    // The launch already started when the signal came: it finishes, the next step does not start.
    expect(error.exitCode).toBe(143);
    expect(calls.map((c) => c.split(" ")[0])).toEqual(["launch"]);
    expect(error.index).toBe(1);
  });

  it("Ctrl-C during a canary gives the canary's share back to the current release", async () => {
    const plan = planBlueGreen(env, v2, "2.0.0", state(true, [release(r1, v1, true), release(r2, v2, false)]), now, {
      percent: 10,
      seconds: 600,
    });
    const calls: string[] = [];
    const provider = { ...fakeProvider(calls), waitHealthy: async () => ({ healthy: true, detail: "ok" }) };
    const controller = new AbortController();
    const run = executePlan(plan, provider, quiet, { signal: controller.signal });
    await waitingFor(calls, "splitTraffic");
    controller.abort("SIGINT");
    const error = (await run.catch((e: unknown) => e)) as PromoteInterrupted;
    expect(error).toBeInstanceOf(PromoteInterrupted);
    expect(calls.at(-1)).toBe(`switchTraffic ${r1} ${r2}`);
    expect(error.left).toContain(`the canary's share of requests went back to ${r1}`);
  });
});
