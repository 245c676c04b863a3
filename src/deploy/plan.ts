/**
 * Pure planners: (environment, image, live state, now) → DeployPlan. No I/O and no clock
 * reads, so the same inputs always give the same plan (golden tests pin them), and a re-run
 * after an interruption plans only what is still missing.
 */
import type { Environment } from "../config/environments.js";
import { InputError } from "../errors.js";
import { logGroupName } from "../providers/aws/names.js";
import { configChanges, launchConfig } from "./launch-config.js";
import type { DeployPlan, DeployStep, HistoryEntry, ImageRef, LiveState, ReleaseState } from "./types.js";

/**
 * A release is an image plus the environment's launch configuration: app, environment, version,
 * the digest's first 7 hex digits and the configuration's hash (launch-config.ts). AWS names its
 * resources after it (names.ts hashes what exceeds a limit).
 */
export function releaseId(env: Environment, image: ImageRef, version: string): string {
  const safe = version.replace(/[^A-Za-z0-9-]/g, "-");
  return `${env.app}-${env.name}-${safe}-${image.digest.slice(7, 14)}-${launchConfig(env).hash}`;
}

/** A restart runs a copy of a release under `<id>-r<n>`: same image, same configuration, new instances. */
const RESTART_SUFFIX = /-r(\d+)$/;

function baseRelease(id: string): string {
  return id.replace(RESTART_SUFFIX, "");
}

/** The copy a restart launches: one left by an interrupted restart, else the next number. */
function restartCopy(base: string, live: LiveState): string {
  const waiting = live.releases.find((r) => !r.serving && r.id !== base && baseRelease(r.id) === base);
  if (waiting) return waiting.id;
  const ids = [...live.releases.map((r) => r.id), ...live.history.map((h) => h.release)].filter((id) => baseRelease(id) === base);
  const highest = Math.max(0, ...ids.map((id) => Number(RESTART_SUFFIX.exec(id)?.[1] ?? 0)));
  return `${base}-r${highest + 1}`;
}

/** The release `green` stands for among the live ones: itself, or a restarted copy of it (the serving one first). */
function sameRelease(live: LiveState, green: string): ReleaseState | undefined {
  const matches = live.releases.filter((r) => baseRelease(r.id) === green);
  return matches.find((r) => r.serving) ?? matches.find((r) => r.id === green) ?? matches[0];
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
  const logs = env.target === "aws" && env.logs.cloudwatch;
  return {
    kind: "ensure-infrastructure",
    resources: sharedResources(env),
    ...(lb.length ? { subnets: lb } : {}),
    ...(protect ? { deletionProtection: true } : {}),
    ...(logs ? { logGroup: { name: logGroupName(env.app, env.name), retentionDays: env.logs.retentionDays } } : {}),
  };
}

/** Where a release's instances go: the subnets the target chose (with zones), else what the environment names. */
function zonesOf(env: Environment, live: LiveState): string[] {
  const placed = live.network?.instances ?? [];
  return placed.length ? placed.map((p) => `${p.subnet} (${p.zone})`) : zonesFor(env);
}

/** What the serving release's launch configuration was, next to the new one, for the plan's summary. */
function configSummary(env: Environment, image: ImageRef, live: LiveState): string {
  const serving = live.releases.find((r) => r.serving);
  if (!serving) return "";
  const recorded = [...live.history].reverse().find((h) => h.release === serving.id && h.config)?.config;
  const same = serving.image.digest === image.digest ? "same image, " : "";
  if (!recorded) return `; ${same}launch configuration not recorded for the live release`;
  const changes = configChanges(recorded, launchConfig(env));
  if (changes.length === 0) return same ? "; same image and launch configuration" : "";
  return `; ${same}launch configuration changed: ${changes.join(", ")}`;
}

export interface BlueGreenOptions {
  /** New instances of the live release (kiln restart), even when it is already live. */
  readonly restart?: boolean;
}

export function planBlueGreen(
  env: Environment,
  image: ImageRef,
  version: string,
  live: LiveState,
  now: Date,
  canary?: CanarySettings,
  options: BlueGreenOptions = {},
): DeployPlan {
  const base = releaseId(env, image, version);
  const current = sameRelease(live, base);
  const restartOf = options.restart && current?.serving ? current.id : undefined;
  const green = restartOf ? restartCopy(base, live) : (current?.id ?? base);
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
      // Locally instance i goes to zone i mod n: name only the zones the instances use.
      const zones = zonesOf(env, live);
      steps.push({
        kind: "launch",
        release: green,
        image,
        instances: env.instances,
        zones: env.target === "local" ? zones.slice(0, Math.max(1, env.instances)) : zones,
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
  const config = launchConfig(env);
  const undo: DeployStep[] = [
    { kind: "delete-release", release: green },
    { kind: "record", entry: { release: green, image, result: "failed", at, config } },
  ];
  // A failed canary already sent some traffic to green: give it all back before green goes.
  if (withCanary) undo.unshift({ kind: "switch-traffic", to: blue[0]!, from: [green] });
  if (!alreadyLive) {
    steps.push({ kind: "record", entry: { release: green, image, result: "live", at, config } });
    for (const old of others.filter((o) => o.serving))
      steps.push({ kind: "record", entry: { release: old.id, image: old.image, result: "replaced", at, ...recordedConfig(live, old.id) } });
  }
  const canaryNote = withCanary
    ? `, canary ${canary.percent}% for ${canary.seconds}s first`
    : canary && !alreadyLive
      ? " (no release serves yet: no canary)"
      : "";
  const how = `blue/green${canaryNote}`;
  let summary = `${image.ref} → ${env.name} (${green}), ${how}${configSummary(env, image, live)}`;
  if (alreadyLive && others.length === 0)
    summary = `${image.ref} is already live in ${env.name}; ${steps.length ? "only the shared resources change" : "nothing to do"}`;
  else if (restartOf) summary = `restart ${restartOf} in ${env.name}: new instances of the same image and configuration (${green}), ${how}`;
  return { environment: env.name, target: env.target, steps, onFailure: undo, summary };
}

/** The configuration a release was recorded live with, carried into its later entries (replaced). */
function recordedConfig(live: LiveState, release: string): Pick<HistoryEntry, "config"> {
  const config = [...live.history].reverse().find((h) => h.release === release && h.config)?.config;
  return config ? { config } : {};
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
  // Local instances launch with kiln.yml's values as they are now (AWS: the release's launch
  // template): more instances of a release after its configuration changed would mix two configurations.
  const ranWith = serving ? /-([0-9a-f]{6})(-r\d+)?$/.exec(serving.id)?.[1] : undefined;
  if (env.target === "local" && ranWith && ranWith !== launchConfig(env).hash && instances > (serving?.instances.length ?? 0))
    throw new InputError(`the configuration of ${env.name} in kiln.yml changed since ${serving!.id} was released`, {
      hint: `release it first (kiln restart --env ${env.name}), then scale`,
    });
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

export interface DestroyOptions {
  /** The environment's log group stays, with its logs (destroy --keep-logs). */
  readonly keepLogs?: boolean;
}

export function planDestroy(env: Environment, live: LiveState, now: Date, options: DestroyOptions = {}): DeployPlan {
  const steps: DeployStep[] = live.releases.map((r) => ({ kind: "delete-release", release: r.id }));
  const keepLogs = options.keepLogs === true;
  // Leftovers found by tag count too: a destroy interrupted after the load balancer went must still remove its security groups.
  // So does a log group alone (kept by an earlier --keep-logs, or left by an interrupted destroy), unless it is kept again.
  if (live.infrastructure || (live.leftovers ?? []).length > 0 || (live.logGroup !== undefined && !keepLogs))
    steps.push({
      kind: "delete-infrastructure",
      resources: sharedResources(env),
      ...(live.logGroup !== undefined ? { logGroup: { name: live.logGroup, keep: keepLogs } } : {}),
    });
  // The history says the environment is gone, naming what ran last (else its last release stays `live`).
  // AWS keeps history in the load balancer's tags, which go with it: there the record finds nothing to write to.
  const last = live.releases.find((r) => r.serving) ?? live.releases.at(-1) ?? live.history.at(-1);
  const lastId = last && ("id" in last ? last.id : last.release);
  if (steps.length > 0 && last && lastId && live.history.at(-1)?.result !== "destroyed")
    steps.push({ kind: "record", entry: { release: lastId, image: last.image, result: "destroyed", at: now.toISOString() } });
  const logs =
    live.logGroup === undefined ? "" : keepLogs ? `, keeping log group ${live.logGroup}` : `, log group ${live.logGroup} included`;
  return {
    environment: env.name,
    target: env.target,
    steps,
    onFailure: [],
    summary: `destroy everything of ${env.app} in ${env.name}${logs}`,
  };
}

/**
 * The release `rollback --to` names: a release id, a version, name:version, or a digest (prefix,
 * with or without sha256:), among the releases history kept (live or replaced, newest first),
 * the serving one excluded.
 */
export function findRollbackTarget(live: LiveState, to: string, envName: string): ImageRef {
  const serving = live.releases.find((r) => r.serving);
  const kept: HistoryEntry[] = [];
  for (const h of [...live.history].reverse()) {
    if ((h.result !== "live" && h.result !== "replaced") || h.release === serving?.id) continue;
    if (serving && baseRelease(h.release) === baseRelease(serving.id)) continue;
    if (!kept.some((k) => k.release === h.release)) kept.push(h);
  }
  const hex = to.replace(/^sha256:/, "");
  const matches = (h: HistoryEntry) =>
    h.release === to ||
    h.image.ref === to ||
    h.image.ref.slice(h.image.ref.lastIndexOf(":") + 1) === to ||
    (/^[0-9a-f]{7,64}$/.test(hex) && h.image.digest.startsWith(`sha256:${hex}`));
  const found = kept.find(matches);
  if (found) return found.image;
  const candidates = kept.map((h) => `${h.image.ref} (${h.release})`);
  throw new InputError(`no kept release of ${envName} matches '${to}'`, {
    hint: candidates.length
      ? `releases you can roll back to, newest first: ${candidates.join(", ")}`
      : "history keeps no earlier live release (kiln history --env shows what there is)",
  });
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
      const logs = step.logGroup ? `; log group ${step.logGroup.name} keeping logs ${step.logGroup.retentionDays} days` : "";
      return `create the environment's ${step.resources}${where}${step.deletionProtection ? "; deletion protection on" : ""}${logs}`;
    }
    case "launch": {
      const where =
        step.zones.length === 1
          ? `in ${step.zones[0]}`
          : step.instances === 1
            ? `in one of ${step.zones.join(", ")}`
            : `across ${step.zones.join(", ")}`;
      return `launch ${step.release}: ${step.instances} × ${step.image.ref} ${where}${step.rootVolume ? `, ${step.rootVolume}` : ""}`;
    }
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
    case "delete-infrastructure": {
      if (!step.logGroup) return `delete the environment's ${step.resources}`;
      const { name, keep } = step.logGroup;
      return `delete the environment's ${step.resources}${keep ? `; keep log group ${name} and its logs` : ` and log group ${name} with its logs`}`;
    }
  }
}
