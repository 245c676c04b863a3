// The blue/green planner over a table of (live state → plan) cases, pinned as golden plans,
// and the environments parser's errors.
import { describe, expect, it } from "vitest";
import { describeStep, planBlueGreen, planDestroy, planScale, previousRelease, releaseId } from "../../src/deploy/plan.js";
import type { LiveState } from "../../src/deploy/types.js";
import { parseEnvironments } from "../../src/config/environments.js";
import { launchConfig } from "../../src/deploy/launch-config.js";
import { SpecError } from "../../src/errors.js";
import { awsEnv, env, now, r1, r2, release, state, v1, v2 } from "./helpers/deploy-fixtures.js";
const lines = (live: LiveState, image = v2, version = "2.0.0") => planBlueGreen(env, image, version, live, now).steps.map(describeStep);

describe("planBlueGreen (golden plans)", () => {
  const cases: [string, LiveState, string[]][] = [
    [
      "empty environment",
      state(false),
      [
        "create the environment's HAProxy load balancer",
        `launch ${r2}: 2 × shop:2.0.0 across zone-a, zone-b`,
        `wait until every instance of ${r2} is healthy (≤ 120s)`,
        `switch traffic to ${r2}`,
        `record ${r2} as live`,
      ],
    ],
    [
      "v1 live",
      state(true, [release(r1, v1, true)]),
      [
        `launch ${r2}: 2 × shop:2.0.0 across zone-a, zone-b`,
        `wait until every instance of ${r2} is healthy (≤ 120s)`,
        `switch traffic to ${r2} from ${r1}`,
        `drain ${r1} (5s)`,
        `delete ${r1}`,
        `record ${r2} as live`,
        `record ${r1} as replaced`,
      ],
    ],
    [
      "interrupted after launch: green exists, not serving",
      state(true, [release(r1, v1, true), release(r2, v2, false)]),
      [
        `wait until every instance of ${r2} is healthy (≤ 120s)`,
        `switch traffic to ${r2} from ${r1}`,
        `drain ${r1} (5s)`,
        `delete ${r1}`,
        `record ${r2} as live`,
        `record ${r1} as replaced`,
      ],
    ],
    [
      "interrupted during launch: green has 1 of 2 instances",
      state(true, [release(r1, v1, true), release(r2, v2, false, 1)]),
      [
        `launch ${r2}: 2 × shop:2.0.0 across zone-a, zone-b`,
        `wait until every instance of ${r2} is healthy (≤ 120s)`,
        `switch traffic to ${r2} from ${r1}`,
        `drain ${r1} (5s)`,
        `delete ${r1}`,
        `record ${r2} as live`,
        `record ${r1} as replaced`,
      ],
    ],
    [
      "interrupted after the switch: blue still there",
      state(true, [release(r1, v1, false), release(r2, v2, true)]),
      [`drain ${r1} (5s)`, `delete ${r1}`],
    ],
    ["converged", state(true, [release(r2, v2, true)]), []],
    [
      "load balancer lost (restarted), green live",
      state(false, [release(r2, v2, true)]),
      ["create the environment's HAProxy load balancer"],
    ],
  ];
  for (const [name, live, expected] of cases) {
    it(name, () => expect(lines(live)).toEqual(expected));
  }

  it("undoing a failed release deletes it and records the failure", () => {
    const plan = planBlueGreen(env, v2, "2.0.0", state(true, [release(r1, v1, true)]), now);
    expect(plan.onFailure).toEqual([
      { kind: "delete-release", release: r2 },
      // The failure is recorded with the launch configuration it was tried with.
      { kind: "record", entry: { release: r2, image: v2, result: "failed", at: now.toISOString(), config: launchConfig(env) } },
    ]);
  });

  it("is a pure function of its inputs", () => {
    const live = state(true, [release(r1, v1, true)]);
    expect(planBlueGreen(env, v2, "2.0.0", live, now)).toEqual(planBlueGreen(env, v2, "2.0.0", live, now));
  });
});

describe("other planners", () => {
  it("destroy deletes every release, then the load balancer, and records the environment as destroyed (issue 18, item 7)", () => {
    expect(planDestroy(env, state(true, [release(r1, v1, true)]), now).steps).toEqual([
      { kind: "delete-release", release: r1 },
      { kind: "delete-infrastructure", resources: "HAProxy load balancer" },
      { kind: "record", entry: { release: r1, image: v1, result: "destroyed", at: now.toISOString() } },
    ]);
    // Nothing left to delete, or already recorded: nothing to do.
    expect(planDestroy(env, state(false), now).steps).toEqual([]);
    const gone: LiveState = { ...state(false), leftovers: ["sg-1"], history: [{ release: r1, image: v1, result: "destroyed", at: "1" }] };
    expect(planDestroy(env, gone, now).steps.map((s) => s.kind)).toEqual(["delete-infrastructure"]);
  });
  it("scale resizes the live release and waits for health", () => {
    expect(planScale(env, state(true, [release(r1, v1, true)]), 4).steps.map((s) => s.kind)).toEqual(["scale", "wait-healthy"]);
  });
  it("rollback goes to the newest earlier release that was live", () => {
    const live: LiveState = {
      infrastructure: true,
      releases: [release(r2, v2, true)],
      history: [
        { release: r1, image: v1, result: "live", at: "1" },
        { release: r2, image: v2, result: "live", at: "2" },
        { release: r1, image: v1, result: "replaced", at: "2" },
      ],
    };
    expect(previousRelease(live)).toEqual(v1);
    expect(previousRelease({ ...live, history: [{ release: r2, image: v2, result: "live", at: "2" }] })).toBeUndefined();
  });
});

describe("environments in kiln.yml", () => {
  it("defaults to a local dev environment", () => {
    const envs = parseEnvironments(undefined, "shop", "/healthz", "kiln.yml");
    expect(envs.get("dev")).toMatchObject({ target: "local", instances: 2, port: 8000, health: { path: "/healthz" } });
  });

  it("orders dev → test → prod as promotion gates", () => {
    const envs = parseEnvironments(
      { dev: {}, test: { target: "aws", region: "eu-west-1" }, prod: { target: "aws", region: "eu-west-1", instances: 3, max: 6 } },
      "shop",
      "/",
      "kiln.yml",
    );
    expect(envs.get("test")!.after).toEqual(["dev"]);
    expect(envs.get("prod")!.after).toEqual(["test"]);
  });

  it("lists every problem with its path", () => {
    let error: unknown;
    try {
      parseEnvironments(
        {
          prod: { target: "aws", subnets: ["subnet-1"], https: {}, instances: 5, max: 2 },
          Bad_Name: { target: "gcp" },
        },
        "shop",
        "/",
        "kiln.yml",
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SpecError);
    const problems = (error as SpecError).problems.join("\n");
    expect(problems).toMatch(/environments\.prod\.region: required/);
    expect(problems).toMatch(/environments\.prod\.subnets: .*at least two availability zones/);
    expect(problems).toMatch(/environments\.prod\.https\.certificateArn: required/);
    expect(problems).toMatch(/environments\.prod: needs min ≤ instances ≤ max/);
    expect(problems).toMatch(/environments\.Bad_Name: environment names/);
    expect(problems).toMatch(/environments\.Bad_Name\.target: .gcp. must be one of local, aws/);
  });
});

describe("launch templates kept for rollback (AWS)", () => {
  const aws = awsEnv;
  const a1 = releaseId(aws, v1, "1.0.0");
  const a2 = releaseId(aws, v2, "2.0.0");
  const deletes = (live: LiveState) => planBlueGreen(aws, v2, "2.0.0", live, now).steps.filter((s) => s.kind === "delete-release");

  it("the replaced release goes, its launch template stays", () => {
    expect(deletes(state(true, [release(a1, v1, true)]))).toEqual([{ kind: "delete-release", release: a1, keepForRollback: true }]);
  });
  it("after an interruption past the switch, the history still marks the old release as one to keep", () => {
    const live: LiveState = {
      ...state(true, [release(a1, v1, false), release(a2, v2, true)]),
      history: [{ release: a1, image: v1, result: "live", at: "1" }],
    };
    expect(deletes(live)).toEqual([{ kind: "delete-release", release: a1, keepForRollback: true }]);
  });
  it("a leftover that never served is deleted whole, and so is a failed release", () => {
    expect(deletes(state(true, [release(a2, v2, true), release(a1, v1, false)]))).toEqual([{ kind: "delete-release", release: a1 }]);
    expect(planBlueGreen(aws, v2, "2.0.0", state(true, [release(a1, v1, true)]), now).onFailure[0]).toEqual({
      kind: "delete-release",
      release: a2,
    });
  });
  it("a single-instance environment keeps nothing (a rollback relaunches from the AMI)", () => {
    const single = { ...aws, mode: "single-instance", instances: 1 } as const;
    const s1 = releaseId(single, v1, "1.0.0");
    expect(
      planBlueGreen(single, v2, "2.0.0", state(true, [release(s1, v1, true)]), now).steps.find((s) => s.kind === "delete-release"),
    ).toEqual({ kind: "delete-release", release: s1 });
    expect(planBlueGreen(single, v2, "2.0.0", state(false), now).steps[0]).toEqual({
      kind: "ensure-infrastructure",
      resources: "Elastic IP and security group",
      logGroup: { name: "/kiln/shop/dev", retentionDays: 30 },
    });
  });
  it("locally there is nothing to keep", () => {
    expect(
      planBlueGreen(env, v2, "2.0.0", state(true, [release(r1, v1, true)]), now).steps.find((s) => s.kind === "delete-release"),
    ).toEqual({ kind: "delete-release", release: r1 });
  });
});

describe("load-balanced AWS: the new target group is attached before the health gate (golden plans)", () => {
  // An ALB health-checks only target groups a listener forwards to: until then real AWS reports
  // every target `unused` (Target.NotInUse), and a health gate before the attach times out.
  const aws = { ...awsEnv, name: "test" };
  const a1 = releaseId(aws, v1, "1.0.0");
  const a2 = releaseId(aws, v2, "2.0.0");
  const plan = (live: LiveState, canary?: { percent: number; seconds: number }) =>
    planBlueGreen(aws, v2, "2.0.0", live, now, canary).steps.map(describeStep);
  const cases: [string, LiveState, { percent: number; seconds: number } | undefined, string[]][] = [
    [
      "first promote: no release serves, so a rule for the release's own header attaches it",
      state(false),
      undefined,
      [
        "create the environment's load balancer (drops invalid HTTP header fields), HTTP listener on 80 and security groups; " +
          "log group /kiln/shop/test keeping logs 30 days",
        `launch ${a2}: 2 × shop:2.0.0 across a, b, root volume encrypted with the account's default EBS key`,
        `attach the target group of ${a2} to the listener through a rule for its own header only (no release serves yet)`,
        `wait until every instance of ${a2} is healthy (≤ 120s)`,
        `switch traffic to ${a2}`,
        `record ${a2} as live`,
      ],
    ],
    [
      "v1 live: weight 0 next to v1, then the health gate, then the switch",
      state(true, [release(a1, v1, true)]),
      undefined,
      [
        `launch ${a2}: 2 × shop:2.0.0 across a, b, root volume encrypted with the account's default EBS key`,
        `attach the target group of ${a2} to the listener with weight 0 (all requests stay on ${a1})`,
        `wait until every instance of ${a2} is healthy (≤ 120s)`,
        `switch traffic to ${a2} from ${a1}`,
        `drain ${a1} (5s)`,
        `delete ${a1} (its launch template is kept for rollback)`,
        `record ${a2} as live`,
        `record ${a1} as replaced`,
      ],
    ],
    [
      "v1 live with a canary: weight 0, health gate, canary share, then all",
      state(true, [release(a1, v1, true)]),
      { percent: 10, seconds: 60 },
      [
        `launch ${a2}: 2 × shop:2.0.0 across a, b, root volume encrypted with the account's default EBS key`,
        `attach the target group of ${a2} to the listener with weight 0 (all requests stay on ${a1})`,
        `wait until every instance of ${a2} is healthy (≤ 120s)`,
        `canary: 10% of requests to ${a2} for 60s, watching its health`,
        `switch traffic to ${a2} from ${a1}`,
        `drain ${a1} (5s)`,
        `delete ${a1} (its launch template is kept for rollback)`,
        `record ${a2} as live`,
        `record ${a1} as replaced`,
      ],
    ],
    [
      "interrupted after the attach (or during the canary): attach again, which sets weight 0",
      state(true, [release(a1, v1, true), release(a2, v2, false)]),
      undefined,
      [
        `attach the target group of ${a2} to the listener with weight 0 (all requests stay on ${a1})`,
        `wait until every instance of ${a2} is healthy (≤ 120s)`,
        `switch traffic to ${a2} from ${a1}`,
        `drain ${a1} (5s)`,
        `delete ${a1} (its launch template is kept for rollback)`,
        `record ${a2} as live`,
        `record ${a1} as replaced`,
      ],
    ],
    [
      "interrupted after the switch: nothing to attach",
      state(true, [release(a1, v1, false), release(a2, v2, true)]),
      undefined,
      [`drain ${a1} (5s)`, `delete ${a1}`],
    ],
  ];
  for (const [name, live, canary, expected] of cases) it(name, () => expect(plan(live, canary)).toEqual(expected));

  it("the attach step is data the provider gets: release and the releases that keep serving", () => {
    const steps = planBlueGreen(aws, v2, "2.0.0", state(true, [release(a1, v1, true)]), now).steps;
    expect(steps.find((s) => s.kind === "attach")).toEqual({ kind: "attach", release: a2, from: [a1] });
  });

  it("single-instance and local environments have no listener to attach to", () => {
    const single = { ...aws, mode: "single-instance", instances: 1 } as const;
    expect(planBlueGreen(single, v2, "2.0.0", state(true), now).steps.some((s) => s.kind === "attach")).toBe(false);
    expect(planBlueGreen(env, v2, "2.0.0", state(true), now).steps.some((s) => s.kind === "attach")).toBe(false);
  });
});

describe("health check settings of a load-balanced AWS environment (what CreateTargetGroup accepts)", () => {
  const parse = (healthcheck: Record<string, unknown>, mode = "load-balanced") =>
    parseEnvironments({ test: { target: "aws", region: "eu-west-1", mode, healthcheck } }, "shop", "/", "kiln.yml").get("test")!;
  const problems = (healthcheck: Record<string, unknown>): string => {
    try {
      parse(healthcheck);
    } catch (e) {
      return (e as SpecError).problems.join("\n");
    }
    return "";
  };

  it("defaults send every value, within AWS's ranges, interval above the check timeout", () => {
    expect(parse({}).health).toMatchObject({ intervalSeconds: 5, checkTimeoutSeconds: 4, healthyThreshold: 2, unhealthyThreshold: 2 });
  });
  it("interval not greater than checkTimeout is refused, naming both values", () => {
    expect(problems({ interval: 5, checkTimeout: 5 })).toMatch(
      /environments\.test\.healthcheck: interval \(5s\) must be greater than checkTimeout \(5s\)/,
    );
    expect(problems({ interval: 10, checkTimeout: 12 })).toMatch(/interval \(10s\) must be greater than checkTimeout \(12s\)/);
    expect(problems({ interval: 10, checkTimeout: 9 })).toBe("");
  });
  it("values outside AWS's ranges are refused with the range", () => {
    const found = problems({ interval: 3, checkTimeout: 1, healthyThreshold: 1, unhealthyThreshold: 1 });
    expect(found).toMatch(/healthcheck\.interval: 3 is outside what an AWS load balancer accepts \(5 to 300\)/);
    expect(found).toMatch(/healthcheck\.checkTimeout: 1 is outside .* \(2 to 120\)/);
    expect(found).toMatch(/healthcheck\.healthyThreshold: 1 is outside .* \(2 to 10\)/);
    expect(found).toMatch(/healthcheck\.unhealthyThreshold: 1 is outside .* \(2 to 10\)/);
    expect(problems({ checkTimeout: 121 })).toMatch(/must be ≤ 120|checkTimeout/);
  });
  it("a single instance (checked by kiln, not an ALB) keeps the wider ranges", () => {
    expect(parse({ interval: 2, healthyThreshold: 1 }, "single-instance").health).toMatchObject({
      intervalSeconds: 2,
      healthyThreshold: 1,
    });
  });
});

describe("AWS network and destroy in the plan (issue 13, bugs 5 and 7)", () => {
  const aws = { ...awsEnv, deletionProtection: true };
  const network = {
    loadBalancer: [
      { subnet: "subnet-1", zone: "eu-west-1a" },
      { subnet: "subnet-3", zone: "eu-west-1b" },
    ],
    instances: [
      { subnet: "subnet-1", zone: "eu-west-1a" },
      { subnet: "subnet-2", zone: "eu-west-1a" },
      { subnet: "subnet-3", zone: "eu-west-1b" },
    ],
  };

  it("the plan names the load balancer's subnets, its deletion protection and the instances' subnets", () => {
    const steps = planBlueGreen(aws, v1, "1.0.0", { ...state(false), network }, now).steps.map(describeStep);
    expect(steps[0]).toBe(
      "create the environment's load balancer (drops invalid HTTP header fields), HTTP listener on 80 and security groups; load balancer in subnet-1 (eu-west-1a), " +
        "subnet-3 (eu-west-1b); deletion protection on; log group /kiln/shop/dev keeping logs 30 days",
    );
    expect(steps[1]).toMatch(
      /across subnet-1 \(eu-west-1a\), subnet-2 \(eu-west-1a\), subnet-3 \(eu-west-1b\), root volume encrypted with the account.s default EBS key$/,
    );
  });

  it("destroy plans delete-infrastructure for leftovers found by tag, even with the load balancer gone", () => {
    const kinds = (live: LiveState) => planDestroy(aws, live, now).steps.map((s) => s.kind);
    expect(kinds(state(false))).toEqual([]);
    expect(kinds({ ...state(false), leftovers: ["sg-1"] })).toEqual(["delete-infrastructure"]);
  });

  it("deletionProtection defaults to on for an environment named prod only", () => {
    const parsed = parseEnvironments(
      { prod: { target: "aws", region: "eu-west-1" }, test: { target: "aws", region: "eu-west-1" } },
      "shop",
      "/",
      "kiln.yml",
    );
    const flag = (name: string) => (parsed.get(name) as { deletionProtection: boolean }).deletionProtection;
    expect([flag("prod"), flag("test")]).toEqual([true, false]);
    const off = parseEnvironments({ prod: { target: "aws", region: "eu-west-1", deletionProtection: false } }, "shop", "/", "kiln.yml");
    expect((off.get("prod") as { deletionProtection: boolean }).deletionProtection).toBe(false);
    expect(() =>
      parseEnvironments({ prod: { target: "aws", region: "eu-west-1", deletionProtection: "no" } }, "shop", "/", "kiln.yml"),
    ).toThrow(/deletionProtection/);
  });
});
