// Issue 18, item 6: what `kiln status` concludes from an observed state, on both targets' shapes:
// a release short of instances (a VM killed, an EC2 instance terminated) or with an unhealthy
// one is DEGRADED with its own exit code; destroyed and never-deployed environments are not errors.
import { describe, expect, it } from "vitest";
import { DEGRADED_EXIT_CODE, judgeEnvironment, statusExitCode } from "../../src/deploy/status.js";
import type { LiveState, ReleaseState } from "../../src/deploy/types.js";
import { r1, r2, release, state, v1 } from "./helpers/deploy-fixtures.js";

/** What AwsProvider.observe() reports after one of two instances was terminated and the other fails its checks. */
const awsRelease: ReleaseState = {
  id: "shop-prod-2-0-0-2222222",
  image: v1,
  desired: 2,
  serving: true,
  instances: [{ id: "i-0abc", zone: "eu-west-1a", healthy: false, health: "InService, target unhealthy (Target.ResponseCodeMismatch)" }],
};

describe("judgeEnvironment", () => {
  it("a serving release with every desired instance healthy is live (exit 0)", () => {
    const judged = judgeEnvironment(state(true, [release(r1, v1, true)]));
    expect(judged).toMatchObject({ state: "live", problems: [] });
    expect(judged.releases[0]).toMatchObject({ state: "live", problems: [] });
    expect(statusExitCode(judged.state)).toBe(0);
  });

  it("local: a VM killed behind kiln's back leaves the release short of instances: degraded", () => {
    const judged = judgeEnvironment(state(true, [{ ...release(r1, v1, true, 0) }]));
    expect(judged.state).toBe("degraded");
    expect(judged.releases[0]!.problems[0]).toMatch(/^0 of 2 instances running/);
    expect(statusExitCode(judged.state)).toBe(DEGRADED_EXIT_CODE);
  });

  it("AWS: a terminated instance and an unhealthy target: degraded, naming the unhealthy instance", () => {
    const judged = judgeEnvironment(state(true, [awsRelease]));
    expect(judged.state).toBe("degraded");
    expect(judged.problems).toEqual([
      `${awsRelease.id}: 1 of 2 instances running (1 stopped or terminated outside kiln?)`,
      `${awsRelease.id}: 1 of 1 instances unhealthy: i-0abc`,
    ]);
  });

  it("a standby release (an interrupted promote) does not degrade a healthy live one", () => {
    const judged = judgeEnvironment(state(true, [release(r1, v1, true), release(r2, v1, false, 0)]));
    expect(judged.state).toBe("live");
    expect(judged.releases.map((r) => r.state)).toEqual(["live", "standby"]);
  });

  it("releases but none serving is not-serving (exit 8); nothing at all is not-deployed or destroyed (exit 0)", () => {
    expect(judgeEnvironment(state(true, [release(r2, v1, false)])).state).toBe("not-serving");
    expect(statusExitCode("not-serving")).toBe(DEGRADED_EXIT_CODE);
    expect(judgeEnvironment(state(false)).state).toBe("not-deployed");
    const destroyed: LiveState = { ...state(false), history: [{ release: r1, image: v1, result: "destroyed", at: "1" }] };
    expect(judgeEnvironment(destroyed).state).toBe("destroyed");
    expect(statusExitCode("destroyed")).toBe(0);
  });

  it("a serving release whose load balancer is missing is degraded", () => {
    expect(judgeEnvironment(state(false, [release(r1, v1, true)])).problems).toEqual([
      "the load balancer is missing or incomplete (kiln promote recreates it)",
    ]);
  });
});
