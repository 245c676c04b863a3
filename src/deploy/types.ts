/**
 * The blue/green model shared by every deploy target: what exists (LiveState), what to do
 * (DeployPlan: data, computed by pure planners), and what a target must be able to do
 * (DeployProvider). The local target (QEMU + HAProxy) and AWS (ASG + ALB) implement the same
 * provider, so the orchestration proven locally under load is the one that runs in AWS.
 */
import type { Environment } from "../config/environments.js";
import type { RecordedConfig } from "./launch-config.js";

export interface ImageRef {
  readonly ref: string;
  readonly digest: string;
}

export interface InstanceState {
  readonly id: string;
  readonly zone: string;
  readonly healthy: boolean;
  /** What the target says about it, for `status` (HAProxy's server status; AWS: lifecycle and target health). */
  readonly health?: string;
}

export interface ReleaseState {
  readonly id: string;
  readonly image: ImageRef;
  readonly desired: number;
  readonly instances: readonly InstanceState[];
  /** Receives new traffic from the load balancer. */
  readonly serving: boolean;
}

export interface HistoryEntry {
  readonly release: string;
  readonly image: ImageRef;
  /** `destroyed`: kiln destroy removed the environment; `release` and `image` are what ran last. */
  readonly result: "live" | "failed" | "rolled-back" | "replaced" | "destroyed";
  readonly at: string;
  readonly detail?: string;
  /** The launch configuration the release ran with (absent in entries written before kiln recorded it). */
  readonly config?: RecordedConfig;
}

/** A subnet something is placed in, with its zone (AWS). */
export interface SubnetPlacement {
  readonly subnet: string;
  readonly zone: string;
}

export interface LiveState {
  readonly infrastructure: boolean;
  /** Settings of the shared resources that differ from what the environment asks for (e.g. a TLS policy changed by hand). */
  readonly drift?: readonly string[];
  readonly releases: readonly ReleaseState[];
  readonly history: readonly HistoryEntry[];
  /**
   * Environment-level resources that still exist, found by the environment's tags (AWS: load
   * balancer, security groups): a destroy interrupted after the load balancer went still has these to delete.
   */
  readonly leftovers?: readonly string[];
  /** The environment's log group, when it has one (AWS: CloudWatch Logs /kiln/<app>/<env>), which destroy deletes or keeps. */
  readonly logGroup?: string;
  /** Where the environment's network puts things, once the target checked it (AWS: the plan names the subnets). */
  readonly network?: {
    readonly loadBalancer: readonly SubnetPlacement[];
    readonly instances: readonly SubnetPlacement[];
  };
}

export type DeployStep =
  /**
   * `resources`: what the environment shares between releases, for people reading the plan;
   * `fixes`: drifted settings an existing environment gets back; `subnets`: where the load balancer
   * goes; `deletionProtection`: set on the load balancer; `logGroup`: the log group the instances ship to, with its retention.
   */
  | {
      readonly kind: "ensure-infrastructure";
      readonly resources: string;
      readonly fixes?: readonly string[];
      readonly subnets?: readonly SubnetPlacement[];
      readonly deletionProtection?: boolean;
      readonly logGroup?: { readonly name: string; readonly retentionDays: number };
    }
  | {
      readonly kind: "launch";
      readonly release: string;
      readonly image: ImageRef;
      readonly instances: number;
      readonly zones: readonly string[];
      /** How the instances' root volumes are protected (AWS), for people reading the plan. */
      readonly rootVolume?: string;
    }
  /**
   * Makes the load balancer health-check the new release without sending it requests (AWS:
   * weight 0 next to `from`, or a header-matched rule when nothing serves yet).
   */
  | { readonly kind: "attach"; readonly release: string; readonly from: readonly string[] }
  | { readonly kind: "wait-healthy"; readonly release: string; readonly timeoutSeconds: number }
  | {
      readonly kind: "canary";
      readonly release: string;
      readonly from: readonly string[];
      readonly percent: number;
      readonly seconds: number;
    }
  | { readonly kind: "switch-traffic"; readonly to: string; readonly from: readonly string[] }
  | { readonly kind: "drain"; readonly release: string; readonly delaySeconds: number }
  /** `keepForRollback`: the release goes, but what relaunching it needs (AWS: its launch template) stays. */
  | { readonly kind: "delete-release"; readonly release: string; readonly keepForRollback?: boolean }
  | { readonly kind: "scale"; readonly release: string; readonly instances: number }
  | { readonly kind: "record"; readonly entry: HistoryEntry }
  /** `logGroup`: the environment's log group, deleted or (`keep`, destroy --keep-logs) left with its logs. */
  | {
      readonly kind: "delete-infrastructure";
      readonly resources: string;
      readonly logGroup?: { readonly name: string; readonly keep: boolean };
    };

export interface DeployPlan {
  readonly environment: string;
  readonly target: Environment["target"];
  readonly steps: readonly DeployStep[];
  /** Steps that undo a failed green release (run when a step of the plan fails). */
  readonly onFailure: readonly DeployStep[];
  readonly summary: string;
}

export interface HealthResult {
  readonly healthy: boolean;
  readonly detail: string;
}

export interface DeployProvider {
  /** Checks the environment against the target (network, instance type, …) before planning. */
  validate?(): Promise<void>;
  observe(): Promise<LiveState>;
  /** Prevents two promotes on one environment at once; returns a release function. */
  /** `holdSeconds`: how long the lock may stay before others take it as stale (targets whose lock can expire). */
  lock(owner: string, holdSeconds?: number): Promise<() => Promise<void>>;
  ensureInfrastructure(): Promise<void>;
  launch(release: string, image: ImageRef, instances: number, zones: readonly string[]): Promise<void>;
  /** Targets whose load balancer checks only the groups it forwards to (AWS ALB): attach before waitHealthy. */
  attach?(release: string, from: readonly string[]): Promise<void>;
  waitHealthy(release: string, timeoutSeconds: number): Promise<HealthResult>;
  switchTraffic(to: string, from: readonly string[]): Promise<void>;
  /** Canary: sends `percent` % of new requests to `to`, the rest to `from` (targets with a weighted LB only). */
  splitTraffic?(to: string, from: readonly string[], percent: number): Promise<void>;
  /** During a canary: is the release still healthy, and is it not answering errors? */
  canaryCheck?(release: string): Promise<HealthResult>;
  drain(release: string, delaySeconds: number): Promise<void>;
  deleteRelease(release: string, keepForRollback?: boolean): Promise<void>;
  scale(release: string, instances: number): Promise<void>;
  record(entry: HistoryEntry): Promise<void>;
  /** `keepLogs`: the environment's log group stays (destroy --keep-logs). */
  deleteInfrastructure(options?: { readonly keepLogs?: boolean }): Promise<void>;
  /** The last console lines of a failing instance of a release, for error messages. */
  consoleTail(release: string): Promise<string>;
  /** Where the environment answers (LB URL). */
  endpoint(): Promise<string | undefined>;
}
