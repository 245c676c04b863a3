// Canary: the planner's steps and undo, the command-line parsing, the HAProxy weights and the
// error-rate verdict. All pure.
import { describe, expect, it } from "vitest";
import { parseCanary, parseDuration } from "../../src/deploy/canary.js";
import { describeStep, lockHoldSeconds, planBlueGreen } from "../../src/deploy/plan.js";
import type { LiveState, ReleaseState } from "../../src/deploy/types.js";
import { InputError } from "../../src/errors.js";
import { canaryWeights, judgeErrorRates } from "../../src/providers/local/canary.js";
import { parseShowStat, type ServerStatus } from "../../src/providers/local/haproxy.js";
import { env, now, r1, r2, release, state, v1, v2 } from "./helpers/deploy-fixtures.js";

const live = (releases: ReleaseState[], infrastructure = true): LiveState => state(infrastructure, releases);
const canary = { percent: 10, seconds: 300 };

describe("planBlueGreen with a canary", () => {
  it("splits traffic between the health gate and the full switch", () => {
    const plan = planBlueGreen(env, v2, "2.0.0", live([release(r1, v1, true)]), now, canary);
    expect(plan.steps.map(describeStep)).toEqual([
      `launch ${r2}: 2 × shop:2.0.0 across zone-a, zone-b`,
      `wait until every instance of ${r2} is healthy (≤ 120s)`,
      `canary: 10% of requests to ${r2} for 300s, watching its health`,
      `switch traffic to ${r2} from ${r1}`,
      `drain ${r1} (5s)`,
      `delete ${r1}`,
      `record ${r2} as live`,
      `record ${r1} as replaced`,
    ]);
    expect(plan.summary).toMatch(/canary 10% for 300s first/);
  });

  it("a failed canary gives all traffic back to the current release before deleting the new one", () => {
    const plan = planBlueGreen(env, v2, "2.0.0", live([release(r1, v1, true)]), now, canary);
    expect(plan.onFailure.map(describeStep)).toEqual([`switch traffic to ${r1} from ${r2}`, `delete ${r2}`, `record ${r2} as failed`]);
  });

  it("a first deploy has nothing to compare against: no canary, and the summary says so", () => {
    const plan = planBlueGreen(env, v2, "2.0.0", live([], false), now, canary);
    expect(plan.steps.map((s) => s.kind)).not.toContain("canary");
    expect(plan.onFailure.map((s) => s.kind)).toEqual(["delete-release", "record"]);
    expect(plan.summary).toMatch(/no release serves yet: no canary/);
  });

  it("re-run after an interruption during the canary: the canary runs again, then the switch", () => {
    const plan = planBlueGreen(env, v2, "2.0.0", live([release(r1, v1, true), release(r2, v2, false)]), now, canary);
    expect(plan.steps.map((s) => s.kind)).toEqual([
      "wait-healthy",
      "canary",
      "switch-traffic",
      "drain",
      "delete-release",
      "record",
      "record",
    ]);
  });

  it("already live: nothing to do, with or without --canary", () => {
    expect(planBlueGreen(env, v2, "2.0.0", live([release(r2, v2, true)]), now, canary).steps).toEqual([]);
  });
});

describe("--canary and --canary-for", () => {
  it("reads percentages and durations", () => {
    expect(parseCanary("10%", "90s")).toEqual({ percent: 10, seconds: 90 });
    expect(parseCanary("25")).toEqual({ percent: 25, seconds: 300 });
    expect(parseDuration("2", "x")).toBe(120);
    expect(parseDuration("1h", "x")).toBe(3600);
  });
  it.each(["0%", "51%", "abc", "10.5%", ""])("refuses --canary %j with what to type", (text) => {
    expect(() => parseCanary(text)).toThrow(InputError);
    expect(() => parseCanary(text)).toThrow(/from 1% to 50%/);
  });
  it.each(["5 minutes", "0s", "-1m", "25h"])("refuses --canary-for %j", (text) => {
    expect(() => parseCanary("10%", text)).toThrow(InputError);
  });
});

describe("local canary arithmetic", () => {
  it("gives the canary servers their share of the total HAProxy weight", () => {
    for (const [percent, g, b] of [
      [10, 2, 2],
      [50, 2, 2],
      [1, 1, 3],
      [30, 3, 1],
    ] as const) {
      const w = canaryWeights(percent, g, b);
      const share = (w.canary * g) / (w.canary * g + w.current * b);
      expect(Math.abs(share - percent / 100)).toBeLessThan(0.01);
      expect(w.canary).toBeGreaterThanOrEqual(1);
      expect(w.current).toBeLessThanOrEqual(256);
    }
  });

  const server = (name: string, responses: number, errors: number): ServerStatus => ({
    name,
    status: "UP",
    weight: 10,
    currentSessions: 0,
    responses,
    errors,
  });
  it("passes a canary with no errors, or no worse than the current release", () => {
    expect(judgeErrorRates([server("g", 100, 0)], [server("b", 1000, 0)]).ok).toBe(true);
    expect(judgeErrorRates([server("g", 100, 3)], [server("b", 1000, 25)]).ok).toBe(true);
    expect(judgeErrorRates([server("g", 0, 0)], []).ok).toBe(true);
  });
  it("fails a canary whose error rate is over the current one by more than a point", () => {
    const verdict = judgeErrorRates([server("g", 50, 5)], [server("b", 1000, 0)]);
    expect(verdict.ok).toBe(false);
    expect(verdict.detail).toBe("canary answered 50 requests with 5 errors (10.0%); current release 0.0%");
  });

  it("reads responses and errors from HAProxy's show stat", () => {
    const header = "# pxname,svname,scur,weight,status,eresp,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other";
    const csv = [header, "app,green-0,1,10,UP,2,0,40,1,3,4,0", "app,BACKEND,0,20,UP,2,0,40,1,3,4,0", "stats,FRONTEND,0,0,OPEN,,,,,,,"].join(
      "\n",
    );
    expect(parseShowStat(csv)).toEqual([{ name: "green-0", status: "UP", weight: 10, currentSessions: 1, responses: 50, errors: 6 }]);
  });
});

describe("lock hold time", () => {
  it("covers the health gate, the canary window and the drains, on top of an hour", () => {
    expect(lockHoldSeconds(env)).toBe(3600 + 120 + 10);
    expect(lockHoldSeconds(env, { percent: 10, seconds: 7200 })).toBe(3600 + 120 + 7200 + 10);
  });
});
