/**
 * Pure planners: (environment, image, live state, now) → DeployPlan. No I/O and no clock
 * reads, so the same inputs always give the same plan (golden tests pin them), and a re-run
 * after an interruption plans only what is still missing.
 */
import type { Environment } from "../config/environments.js";
import type { DeployPlan, DeployStep, ImageRef, LiveState } from "./types.js";

export function releaseId(env: Environment, image: ImageRef, version: string): string {
  const safe = version.replace(/[^A-Za-z0-9-]/g, "-");
  return `${env.app}-${env.name}-${safe}-${image.digest.slice(7, 14)}`;
}

export function zonesFor(env: Environment): string[] {
  if (env.target === "aws") return env.subnets.length > 0 ? [...env.subnets] : ["a", "b"];
  return ["zone-a", "zone-b"];
}

/** A weighted first step: `percent` % of requests go to the new release for `seconds` before the full switch. */
export interface CanarySettings {
  readonly percent: number;
  readonly seconds: number;
}

/** The resources an environment shares between its releases, as the plan names them. */
export function sharedResources(env: Environment): string {
  if (env.target === "local") return "HAProxy load balancer";
  if (env.mode === "single-instance") return "Elastic IP and security group";
  const listeners = env.certificateArn
    ? `HTTPS listener on 443 with TLS policy ${env.sslPolicy}, HTTP listener on 80 redirecting to HTTPS (301)`
    : "HTTP listener on 80";
  return `load balancer (drops invalid HTTP header fields), ${listeners} and security groups`;
}

/** AWS instances' root volumes are always encrypted (an AWS Security Hub expectation, EC2.3/EC2.7). */
export function rootVolumeEncryption(env: Environment): string | undefined {
  if (env.target !== "aws") return undefined;
  return `root volume encrypted with ${env.kmsKeyId ? `KMS key ${env.kmsKeyId}` : "the account's default EBS key"}`;
}

/**
 * An ALB health-checks only target groups a listener forwards to (on real AWS the targets of
 * any other group stay `unused`), so on AWS a new release is attached before its health gate.
 * HAProxy checks every server it has, and a single instance is checked by kiln itself.
 */
function attachesBeforeHealthGate(env: Environment): boolean {
  return env.target === "aws" && env.mode === "load-balanced";
}

/** The shared resources step, with the load balancer's subnets and deletion protection when the environment has them. */
function ensureStep(env: Environment, live: LiveState): Extract<DeployStep, { kind: "ensure-infrastructure" }> {
  const lb = live.network?.loadBalancer ?? [];
  const protect = env.target === "aws" && env.mode === "load-balanced" && env.deletionProtection;
  return {
    kind: "ensure-infrastructure",
    resources: sharedResources(env),
    ...(lb.length ? { subnets: lb } : {}),
    ...(protect ? { deletionProtection: true } : {}),
  };
}

/** Where a release's instances go: the subnets the target chose (with zones), else what the environment names. */
function zonesOf(env: Environment, live: LiveState): string[] {
  const placed = live.network?.instances ?? [];
  return placed.length ? placed.map((p) => `${p.subnet} (${p.zone})`) : zonesFor(env);
}

export function planBlueGreen(
  env: Environment,
  image: ImageRef,
  version: string,
  live: LiveState,
  now: Date,
  canary?: CanarySettings,
): DeployPlan {
  const green = releaseId(env, image, version);
  const existing = live.releases.find((r) => r.id === green);
  const others = live.releases.filter((r) => r.id !== green);
  const blue = others.filter((o) => o.serving).map((o) => o.id);
  const steps: DeployStep[] = [];
  if (!live.infrastructure) steps.push(ensureStep(env, live));
  else if (live.drift?.length) steps.push({ ...ensureStep(env, live), fixes: live.drift });
  const alreadyLive = existing?.serving === true && others.every((o) => !o.serving) && existing.instances.length >= env.instances;
  // A canary needs a release to compare against; on a first deploy there is none.
  const withCanary = canary !== undefined && !alreadyLive && blue.length > 0;
  if (!alreadyLive) {
    if (!existing || existing.instances.length < env.instances) {
      const rootVolume = rootVolumeEncryption(env);
      steps.push({
        kind: "launch",
        release: green,
        image,
        instances: env.instances,
        zones: zonesOf(env, live),
        ...(rootVolume ? { rootVolume } : {}),
      });
    }
    // Always (also after an interruption): attaching again is harmless, and resets a half-done canary to weight 0.
    if (attachesBeforeHealthGate(env)) steps.push({ kind: "attach", release: green, from: blue });
    steps.push({ kind: "wait-healthy", release: green, timeoutSeconds: env.health.timeoutSeconds });
    if (withCanary) steps.push({ kind: "canary", release: green, from: blue, percent: canary.percent, seconds: canary.seconds });
    steps.push({ kind: "switch-traffic", to: green, from: blue });
  }
  for (const old of others) {
    // Always drain before deleting: after an interruption right after the switch, the old
    // release may still be finishing requests.
    steps.push({ kind: "drain", release: old.id, delaySeconds: env.deregistrationDelaySeconds });
    // A replaced release is the rollback target: on AWS its launch template outlives it.
    const wasLive = old.serving || live.history.some((h) => h.release === old.id && h.result === "live");
    const keep = env.target === "aws" && env.mode === "load-balanced" && wasLive ? { keepForRollback: true } : {};
    steps.push({ kind: "delete-release", release: old.id, ...keep });
  }
  const at = now.toISOString();
  const undo: DeployStep[] = [
    { kind: "delete-release", release: green },
    { kind: "record", entry: { release: green, image, result: "failed", at } },
  ];
  // A failed canary already sent some traffic to green: give it all back before green goes.
  if (withCanary) undo.unshift({ kind: "switch-traffic", to: blue[0]!, from: [green] });
  if (!alreadyLive) {
    steps.push({ kind: "record", entry: { release: green, image, result: "live", at } });
    for (const old of others.filter((o) => o.serving))
      steps.push({ kind: "record", entry: { release: old.id, image: old.image, result: "replaced", at } });
  }
  return {
    environment: env.name,
    target: env.target,
    steps,
    onFailure: undo,
    summary:
      alreadyLive && others.length === 0
        ? `${image.ref} is already live in ${env.name}; nothing to do`
        : `${image.ref} → ${env.name} (${green}), blue/green${withCanary ? `, canary ${canary.percent}% for ${canary.seconds}s first` : canary && !alreadyLive ? " (no release serves yet: no canary)" : ""}`,
  };
}

/**
 * How long a promote may hold its environment's lock before another promote may take it as
 * stale: an hour of margin (AMI push, launches) on top of the steps that wait on purpose.
 */
export function lockHoldSeconds(env: Environment, canary?: CanarySettings): number {
  return 3600 + env.health.timeoutSeconds + (canary?.seconds ?? 0) + 2 * env.deregistrationDelaySeconds;
}

export function planScale(env: Environment, live: LiveState, instances: number): DeployPlan {
  const serving = live.releases.find((r) => r.serving);
  return {
    environment: env.name,
    target: env.target,
    onFailure: [],
    steps: serving
      ? [
          { kind: "scale", release: serving.id, instances },
          { kind: "wait-healthy", release: serving.id, timeoutSeconds: env.health.timeoutSeconds },
        ]
      : [],
    summary: serving ? `scale ${serving.id} to ${instances}` : `nothing runs in ${env.name}`,
  };
}

export function planDestroy(env: Environment, live: LiveState, now: Date): DeployPlan {
  const steps: DeployStep[] = live.releases.map((r) => ({ kind: "delete-release", release: r.id }));
  // Leftovers found by tag count too: a destroy interrupted after the load balancer went must still remove its security groups.
  if (live.infrastructure || (live.leftovers ?? []).length > 0)
    steps.push({ kind: "delete-infrastructure", resources: sharedResources(env) });
  // The history says the environment is gone, naming what ran last (else its last release stays `live`).
  // AWS keeps history in the load balancer's tags, which go with it: there the record finds nothing to write to.
  const last = live.releases.find((r) => r.serving) ?? live.releases.at(-1) ?? live.history.at(-1);
  const lastId = last && ("id" in last ? last.id : last.release);
  if (steps.length > 0 && last && lastId && live.history.at(-1)?.result !== "destroyed")
    steps.push({ kind: "record", entry: { release: lastId, image: last.image, result: "destroyed", at: now.toISOString() } });
  return { environment: env.name, target: env.target, steps, onFailure: [], summary: `destroy everything of ${env.app} in ${env.name}` };
}

/** The release to go back to: the newest history entry that was live before the current one. */
export function previousRelease(live: LiveState): ImageRef | undefined {
  const current = live.releases.find((r) => r.serving)?.image.digest;
  const lived = live.history.filter((h) => h.result === "live" || h.result === "replaced");
  for (let i = lived.length - 1; i >= 0; i--) if (lived[i]!.image.digest !== current) return lived[i]!.image;
  return undefined;
}

export function describeStep(step: DeployStep): string {
  switch (step.kind) {
    case "ensure-infrastructure": {
      if (step.fixes?.length) return `bring the environment's ${step.resources} back in line: ${step.fixes.join("; ")}`;
      const where = step.subnets?.length ? `; load balancer in ${step.subnets.map((p) => `${p.subnet} (${p.zone})`).join(", ")}` : "";
      return `create the environment's ${step.resources}${where}${step.deletionProtection ? "; deletion protection on" : ""}`;
    }
    case "launch":
      return `launch ${step.release}: ${step.instances} × ${step.image.ref} across ${step.zones.join(", ")}${step.rootVolume ? `, ${step.rootVolume}` : ""}`;
    case "attach":
      return step.from.length
        ? `attach the target group of ${step.release} to the listener with weight 0 (all requests stay on ${step.from.join(", ")})`
        : `attach the target group of ${step.release} to the listener through a rule for its own header only (no release serves yet)`;
    case "wait-healthy":
      return `wait until every instance of ${step.release} is healthy (≤ ${step.timeoutSeconds}s)`;
    case "canary":
      return `canary: ${step.percent}% of requests to ${step.release} for ${step.seconds}s, watching its health`;
    case "switch-traffic":
      return `switch traffic to ${step.to}${step.from.length ? ` from ${step.from.join(", ")}` : ""}`;
    case "drain":
      return `drain ${step.release} (${step.delaySeconds}s)`;
    case "delete-release":
      return `delete ${step.release}${step.keepForRollback ? " (its launch template is kept for rollback)" : ""}`;
    case "scale":
      return `scale ${step.release} to ${step.instances}`;
    case "record":
      return `record ${step.entry.release} as ${step.entry.result}`;
    case "delete-infrastructure":
      return `delete the environment's ${step.resources}`;
  }
}
