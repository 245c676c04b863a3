// The blue/green planner over a table of (live state → plan) cases, pinned as golden plans,
// and the environments parser's errors.
import { describe, expect, it } from "vitest";
import { describeStep, planBlueGreen, planDestroy, planScale, previousRelease, releaseId } from "../../src/deploy/plan.js";
import type { LiveState } from "../../src/deploy/types.js";
import { parseEnvironments } from "../../src/config/environments.js";
import { SpecError } from "../../src/errors.js";
import { env, now, r1, r2, release, state, v1, v2 } from "./helpers/deploy-fixtures.js";
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
      { kind: "record", entry: { release: r2, image: v2, result: "failed", at: now.toISOString() } },
    ]);
  });

  it("is a pure function of its inputs", () => {
    const live = state(true, [release(r1, v1, true)]);
    expect(planBlueGreen(env, v2, "2.0.0", live, now)).toEqual(planBlueGreen(env, v2, "2.0.0", live, now));
  });
});

describe("other planners", () => {
  it("destroy deletes every release, then the load balancer", () => {
    expect(planDestroy(env, state(true, [release(r1, v1, true)])).steps).toEqual([
      { kind: "delete-release", release: r1 },
      { kind: "delete-infrastructure", resources: "HAProxy load balancer" },
    ]);
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
  const aws = {
    ...env,
    target: "aws",
    region: "eu-west-1",
    vpc: undefined,
    subnets: [],
    instanceType: "t3.micro",
    min: 2,
    max: 2,
    mode: "load-balanced",
    certificateArn: undefined,
    keepReleases: 3,
    deletionProtection: false,
  } as const;
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
    });
  });
  it("locally there is nothing to keep", () => {
    expect(
      planBlueGreen(env, v2, "2.0.0", state(true, [release(r1, v1, true)]), now).steps.find((s) => s.kind === "delete-release"),
    ).toEqual({ kind: "delete-release", release: r1 });
  });
});

describe("AWS network and destroy in the plan (issue 13, bugs 5 and 7)", () => {
  const aws = {
    ...env,
    target: "aws",
    region: "eu-west-1",
    vpc: undefined,
    subnets: [],
    instanceType: "t3.micro",
    min: 2,
    max: 2,
    mode: "load-balanced",
    certificateArn: undefined,
    keepReleases: 3,
    deletionProtection: true,
  } as const;
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
      "create the environment's load balancer, listener and security groups; load balancer in subnet-1 (eu-west-1a), " +
        "subnet-3 (eu-west-1b); deletion protection on",
    );
    expect(steps[1]).toMatch(/across subnet-1 \(eu-west-1a\), subnet-2 \(eu-west-1a\), subnet-3 \(eu-west-1b\)$/);
  });

  it("destroy plans delete-infrastructure for leftovers found by tag, even with the load balancer gone", () => {
    const kinds = (live: LiveState) => planDestroy(aws, live).steps.map((s) => s.kind);
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
