// Where a load-balanced environment's ALB and instances go (bug 5): one public subnet per zone
// for an internet-facing ALB, the same choice on every run, instances only where the ALB is.
import { describe, expect, it } from "vitest";
import {
  describePlacements,
  isPublicSubnet,
  planNetwork,
  type RouteTableFacts,
  singleInstanceSubnet,
} from "../../src/providers/aws/subnet-choice.js";

const publicMain: RouteTableFacts = { id: "rtb-main", main: true, subnets: [], internetRoute: true };
const privateMain: RouteTableFacts = { id: "rtb-main", main: true, subnets: [], internetRoute: false };
const publicTable = (...subnets: string[]): RouteTableFacts => ({ id: "rtb-pub", main: false, subnets, internetRoute: true });
const privateTable = (...subnets: string[]): RouteTableFacts => ({ id: "rtb-priv", main: false, subnets, internetRoute: false });
const s = (id: string, zone: string) => ({ id, zone });

describe("isPublicSubnet", () => {
  it("follows the subnet's own table, else the VPC's main table", () => {
    expect(isPublicSubnet("subnet-a", [privateMain, publicTable("subnet-a")])).toBe(true);
    expect(isPublicSubnet("subnet-b", [privateMain, publicTable("subnet-a")])).toBe(false);
    expect(isPublicSubnet("subnet-b", [publicMain, privateTable("subnet-a")])).toBe(true);
    expect(isPublicSubnet("subnet-a", [publicMain, privateTable("subnet-a")])).toBe(false);
    expect(isPublicSubnet("subnet-a", [])).toBe(false);
  });
});

describe("planNetwork", () => {
  const internet = { scheme: "internet-facing", named: false } as const;

  it("a default VPC with an extra subnet in one zone: one subnet per zone for the ALB (lowest id), instances in all", () => {
    const subnets = [s("subnet-9", "eu-west-1a"), s("subnet-3", "eu-west-1b"), s("subnet-1", "eu-west-1a"), s("subnet-5", "eu-west-1c")];
    const plan = planNetwork(subnets, [publicMain], internet);
    expect(describePlacements(plan.loadBalancer)).toBe("subnet-1 (eu-west-1a), subnet-3 (eu-west-1b), subnet-5 (eu-west-1c)");
    expect(plan.instances.map((p) => p.subnet)).toEqual(["subnet-1", "subnet-9", "subnet-3", "subnet-5"]);
    expect(plan.problems).toEqual([]);
  });

  it("the same choice whatever order AWS lists the subnets in", () => {
    const subnets = [s("subnet-b2", "z-b"), s("subnet-a2", "z-a"), s("subnet-b1", "z-b"), s("subnet-a1", "z-a")];
    const one = planNetwork(subnets, [publicMain], internet);
    const two = planNetwork([...subnets].reverse(), [publicMain], internet);
    expect(two).toEqual(one);
    expect(one.loadBalancer.map((p) => p.subnet)).toEqual(["subnet-a1", "subnet-b1"]);
  });

  it("an internet-facing ALB skips private subnets, even with a lower id; instances stay out of zones without the ALB", () => {
    const subnets = [s("subnet-1", "z-a"), s("subnet-2", "z-a"), s("subnet-3", "z-b"), s("subnet-4", "z-c")];
    const plan = planNetwork(subnets, [privateMain, publicTable("subnet-2", "subnet-3")], internet);
    expect(plan.loadBalancer.map((p) => p.subnet)).toEqual(["subnet-2", "subnet-3"]);
    expect(plan.instances.map((p) => p.subnet)).toEqual(["subnet-1", "subnet-2", "subnet-3"]);
    expect(plan.problems).toEqual([]);
  });

  it("an internal ALB takes any subnet per zone", () => {
    const subnets = [s("subnet-1", "z-a"), s("subnet-4", "z-b")];
    const plan = planNetwork(subnets, [privateMain], { scheme: "internal", named: false });
    expect(plan.loadBalancer.map((p) => p.subnet)).toEqual(["subnet-1", "subnet-4"]);
    expect(plan.problems).toEqual([]);
  });

  it("fewer than two zones with a public subnet is a problem naming the zones found and the private ones", () => {
    const subnets = [s("subnet-1", "z-a"), s("subnet-2", "z-b"), s("subnet-3", "z-c")];
    const plan = planNetwork(subnets, [privateMain, publicTable("subnet-1")], internet);
    expect(plan.problems).toEqual([
      "an internet-facing load balancer needs a public subnet (route 0.0.0.0/0 to an internet gateway) in at least two " +
        "availability zones; found one in z-a; zones with only private subnets: z-b, z-c",
    ]);
    expect(planNetwork([], [publicMain], internet).problems[0]).toMatch(/found none$/);
    expect(planNetwork([s("subnet-1", "z-a"), s("subnet-2", "z-a")], [publicMain], internet).problems[0]).toMatch(/found one in z-a$/);
  });

  it("named subnets: instances use exactly those; one in a zone the ALB cannot reach is a problem", () => {
    const subnets = [s("subnet-1", "z-a"), s("subnet-2", "z-b"), s("subnet-3", "z-c")];
    const ok = planNetwork(subnets.slice(0, 2), [publicMain], { scheme: "internet-facing", named: true });
    expect(ok.instances.map((p) => p.subnet)).toEqual(["subnet-1", "subnet-2"]);
    const stranded = planNetwork(subnets, [publicMain, privateTable("subnet-3")], { scheme: "internet-facing", named: true });
    expect(stranded.problems).toEqual([
      "subnets subnet-3 (z-c) are in zones where the load balancer has no public subnet, so instances there would get no traffic",
    ]);
  });
});

describe("singleInstanceSubnet", () => {
  it("takes a public subnet (lowest zone, then id) over a private one that sorts first", () => {
    const subnets = [s("subnet-1", "z-a"), s("subnet-7", "z-b"), s("subnet-4", "z-b")];
    const choice = singleInstanceSubnet(subnets, [privateMain, publicTable("subnet-7", "subnet-4")]);
    expect(choice).toEqual({ placement: { subnet: "subnet-4", zone: "z-b" } });
  });

  it("no public subnet: a problem that names the private ones and what to change", () => {
    const choice = singleInstanceSubnet([s("subnet-1", "z-a"), s("subnet-2", "z-b")], [privateMain]);
    expect(choice.placement).toBeUndefined();
    expect(choice.problem).toMatch(/public subnet.*internet gateway/);
    expect(choice.problem).toContain("subnet-1 (z-a), subnet-2 (z-b)");
  });
});
