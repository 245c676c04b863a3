/**
 * Where a load-balanced environment's ALB and instances go: pure functions over the subnets
 * and route tables AWS described (no I/O), so every case is a unit test.
 *
 * AWS rules this follows (Elastic Load Balancing API Reference, CreateLoadBalancer): an
 * Application Load Balancer takes one subnet per Availability Zone, in at least two zones; an
 * internet-facing one needs public subnets (a route to an internet gateway), or it is reachable
 * from nowhere. Targets in a zone the ALB is not enabled in get no traffic (Target.NotInUse).
 */

export interface SubnetFacts {
  readonly id: string;
  readonly zone: string;
}

export interface RouteTableFacts {
  readonly id: string;
  /** The VPC's main table: it routes every subnet that has no table of its own. */
  readonly main: boolean;
  /** Subnets explicitly associated with this table. */
  readonly subnets: readonly string[];
  /** Has an active 0.0.0.0/0 route to an internet gateway (igw-…). */
  readonly internetRoute: boolean;
}

export interface Placement {
  readonly subnet: string;
  readonly zone: string;
}

export type Scheme = "internet-facing" | "internal";

export interface NetworkPlan {
  /** One subnet per zone, ordered by zone. */
  readonly loadBalancer: readonly Placement[];
  /** Where the Auto Scaling group launches instances, ordered by zone then id. */
  readonly instances: readonly Placement[];
  readonly problems: readonly string[];
}

/** A subnet is public when the table that routes it (its own, else the main one) sends 0.0.0.0/0 to an internet gateway. */
export function isPublicSubnet(subnet: string, tables: readonly RouteTableFacts[]): boolean {
  const table = tables.find((t) => t.subnets.includes(subnet)) ?? tables.find((t) => t.main);
  return table?.internetRoute ?? false;
}

const byZoneThenId = (a: Placement, b: Placement) => a.zone.localeCompare(b.zone) || a.subnet.localeCompare(b.subnet);

/**
 * The ALB's subnets and the instances' subnets.
 * - `candidates`: the subnets the environment names, or every subnet of its VPC;
 * - `named`: whether the environment named them (then the instances use exactly those).
 * Per zone, the ALB takes the usable subnet with the lowest id (the same choice on every run);
 * usable means public for an internet-facing ALB, any subnet for an internal one. Without
 * named subnets, instances go to every subnet in the ALB's zones.
 */
export function planNetwork(
  candidates: readonly SubnetFacts[],
  tables: readonly RouteTableFacts[],
  options: { readonly scheme: Scheme; readonly named: boolean },
): NetworkPlan {
  const all = candidates.map((s) => ({ subnet: s.id, zone: s.zone })).sort(byZoneThenId);
  const usable = options.scheme === "internal" ? all : all.filter((p) => isPublicSubnet(p.subnet, tables));
  const loadBalancer: Placement[] = [];
  for (const p of usable) if (!loadBalancer.some((q) => q.zone === p.zone)) loadBalancer.push(p);
  const zones = new Set(loadBalancer.map((p) => p.zone));
  const problems: string[] = [];
  if (zones.size < 2) {
    const kind = options.scheme === "internal" ? "a subnet" : "a public subnet (route 0.0.0.0/0 to an internet gateway)";
    const others = [...new Set(all.map((p) => p.zone))].filter((z) => !zones.has(z));
    problems.push(
      `an ${options.scheme} load balancer needs ${kind} in at least two availability zones; found ${
        zones.size ? `one in ${[...zones].join(", ")}` : "none"
      }${others.length ? `; zones with only private subnets: ${others.join(", ")}` : ""}`,
    );
  }
  const instances = options.named ? all : all.filter((p) => zones.has(p.zone));
  const stranded = options.named ? all.filter((p) => !zones.has(p.zone)) : [];
  if (zones.size >= 2 && stranded.length)
    problems.push(
      `subnets ${stranded.map((p) => `${p.subnet} (${p.zone})`).join(", ")} are in zones where the load balancer has no ${
        options.scheme === "internal" ? "" : "public "
      }subnet, so instances there would get no traffic`,
    );
  return { loadBalancer, instances, problems };
}

/** "subnet-1 (eu-west-1a), subnet-2 (eu-west-1b)": how plans and messages name placements. */
export function describePlacements(placements: readonly Placement[]): string {
  return placements.map((p) => `${p.subnet} (${p.zone})`).join(", ");
}

/**
 * A single instance answers at its Elastic IP, which reaches it only through an internet
 * gateway: it goes into a public subnet (lowest zone, then id: the same one every run).
 */
export function singleInstanceSubnet(
  candidates: readonly SubnetFacts[],
  tables: readonly RouteTableFacts[],
): { readonly placement?: Placement; readonly problem?: string } {
  const all = candidates.map((s) => ({ subnet: s.id, zone: s.zone })).sort(byZoneThenId);
  const placement = all.find((p) => isPublicSubnet(p.subnet, tables));
  if (placement) return { placement };
  return {
    problem: `a single instance needs a public subnet (route 0.0.0.0/0 to an internet gateway) to be reachable at its Elastic IP; ${
      all.length ? `these are private: ${describePlacements(all)}` : "found no subnet"
    }`,
  };
}
