/**
 * The network an AWS environment deploys into, checked before anything is created: both AWS
 * modes (load-balanced and single-instance) share these checks and add their own.
 */
import { InputError } from "../../errors.js";
import type { AwsClients } from "../../aws/clients.js";
import { defaultVpc, describeRouteTables, describeSubnets, instanceTypeOffered } from "../../aws/ec2-deploy.js";
import type { AwsEnvironment } from "../../config/environments.js";
import { type NetworkPlan, planNetwork, type SubnetFacts } from "./subnet-choice.js";

export interface Network {
  readonly vpc: string;
  /** The usable subnets (in the VPC), sorted by id so every run picks the same first one. */
  readonly subnets: readonly string[];
}

export interface NetworkCheck {
  readonly network: Network;
  /** Availability zones of the subnets named (or found). */
  readonly zones: readonly string[];
  /** The usable subnets with their zones. */
  readonly found: readonly SubnetFacts[];
  readonly problems: string[];
}

/**
 * VPC and subnets as configured, else the default VPC and its subnets; problems listed rather
 * than thrown, so the caller reports them together with its own. Only Describe* calls.
 */
export async function checkNetwork(clients: AwsClients, env: AwsEnvironment): Promise<NetworkCheck> {
  const problems: string[] = [];
  const vpc = env.vpc ?? (await defaultVpc(clients));
  if (!vpc)
    throw new InputError(`environment ${env.name}: ${clients.region} has no default VPC`, {
      hint: `set environments.${env.name}.vpc and subnets in kiln.yml`,
    });
  const subnets = await describeSubnets(clients, env.subnets, env.subnets.length ? undefined : vpc);
  const foreign = subnets.filter((s) => s.VpcId !== vpc).map((s) => `${s.SubnetId} (in ${s.VpcId})`);
  if (foreign.length) problems.push(`subnets ${foreign.join(", ")} are not in VPC ${vpc}`);
  const usable = subnets
    .filter((s) => s.VpcId === vpc)
    .map((s) => s.SubnetId!)
    .sort();
  if (!usable.length && !foreign.length)
    problems.push(`VPC ${vpc} has no subnets: create one, or name subnets in environments.${env.name}.subnets`);
  if (!(await instanceTypeOffered(clients, env.instanceType)))
    problems.push(`instance type ${env.instanceType} is not offered in ${clients.region}`);
  const found = subnets.filter((s) => s.VpcId === vpc).map((s) => ({ id: s.SubnetId!, zone: s.AvailabilityZone ?? "" }));
  return { network: { vpc, subnets: usable }, zones: [...new Set(subnets.map((s) => s.AvailabilityZone ?? ""))], found, problems };
}

/**
 * A load-balanced environment's placement: the ALB in one public subnet per zone (CreateLoadBalancer
 * refuses two in one zone), the instances in the environment's subnets, or in every subnet of
 * the VPC in the ALB's zones (subnet-choice.ts). Reads the VPC's route tables to tell public subnets.
 */
export async function planLoadBalancedNetwork(clients: AwsClients, env: AwsEnvironment, check: NetworkCheck): Promise<NetworkPlan> {
  const tables = await describeRouteTables(clients, check.network.vpc);
  return planNetwork(check.found, tables, { scheme: "internet-facing", named: env.subnets.length > 0 });
}

/** Throws every problem at once, as one InputError that names the environment to fix. */
export function refuseProblems(env: AwsEnvironment, problems: readonly string[]): void {
  if (problems.length)
    throw new InputError(`environment ${env.name} cannot be deployed:\n${problems.map((p) => `  - ${p}`).join("\n")}`, {
      hint: `fix environments.${env.name} in kiln.yml`,
    });
}
