/** Shared planner fixtures: a local two-instance environment, two images, their releases and live states. */
import { releaseId } from "../../../src/deploy/plan.js";
import type { ImageRef, LiveState, ReleaseState } from "../../../src/deploy/types.js";
import type { AwsEnvironment, LocalEnvironment } from "../../../src/config/environments.js";

export const env: LocalEnvironment = {
  name: "dev",
  app: "shop",
  target: "local",
  port: 8000,
  instances: 2,
  deregistrationDelaySeconds: 5,
  env: {},
  after: [],
  health: { path: "/healthz", intervalSeconds: 1, checkTimeoutSeconds: 4, healthyThreshold: 2, unhealthyThreshold: 2, timeoutSeconds: 120 },
};
/** The same environment on AWS, load-balanced in the default VPC. */
export const awsEnv: AwsEnvironment = {
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
  logs: { cloudwatch: true, retentionDays: 30 },
};
export const now = new Date("2026-11-22T10:00:00Z");
export const v1: ImageRef = { ref: "shop:1.0.0", digest: `sha256:${"1".repeat(64)}` };
export const v2: ImageRef = { ref: "shop:2.0.0", digest: `sha256:${"2".repeat(64)}` };
export const r1 = releaseId(env, v1, "1.0.0");
export const r2 = releaseId(env, v2, "2.0.0");

/** A release with `healthy` healthy instances spread over two zones. */
export function release(id: string, image: ImageRef, serving: boolean, healthy = 2): ReleaseState {
  return {
    id,
    image,
    desired: 2,
    serving,
    instances: Array.from({ length: healthy }, (_, i) => ({ id: `${id}-${i}`, zone: i % 2 ? "zone-b" : "zone-a", healthy: true })),
  };
}

export const state = (infrastructure: boolean, releases: ReleaseState[] = []): LiveState => ({ infrastructure, releases, history: [] });
