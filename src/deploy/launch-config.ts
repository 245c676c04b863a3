/**
 * What a release's instances are launched with, besides the image: derived by a pure function
 * from the environment, so a changed kiln.yml makes a new release (issue 18, item 1).
 *
 * The fields, per target:
 * - every target: the environment variables (`env:`; KILN_ENV is the environment's name, fixed);
 * - AWS (both modes): `instanceType`, `kmsKeyId` (root volume), `vpc`, `subnets`, and `logs.cloudwatch`
 *   (on: the user-data names the log group and the role may write to it; the group's retention
 *   is the group's, not the instances', so it is drift of the shared resources instead);
 * - AWS load-balanced: the target group's health check (`healthcheck.path`, `interval`,
 *   `checkTimeout`, `healthyThreshold`, `unhealthyThreshold`) and `deregistrationDelay`, since
 *   each release has its own target group.
 * What the environment shares between releases is not here: the local load balancer's port and
 * health check, the ALB's listeners and TLS. Those are observed and fixed as drift of the shared
 * resources (ensure-infrastructure), and `instances` is a scale of the same release.
 */
import { createHash } from "node:crypto";
import type { Environment } from "../config/environments.js";

export interface LaunchConfig {
  /** Short hash of every launch setting (values included): part of the release id. */
  readonly hash: string;
  /**
   * The settings as the plan shows them: values of plain settings, and for `env.NAME` only a
   * short hash of the value (environment values may be secrets; history is readable by more people).
   */
  readonly settings: Readonly<Record<string, string>>;
}

/** A configuration as history kept it: AWS history tags hold the settings only when they fit (256 characters). */
export interface RecordedConfig {
  readonly hash: string;
  readonly settings?: Readonly<Record<string, string>>;
}

const HASH_LENGTH = 6;

function shortHash(text: string, length: number): string {
  return createHash("sha256").update(text).digest("hex").slice(0, length);
}

/** Every launch setting with its full value, in a fixed order. */
function launchValues(env: Environment): [string, string][] {
  const values: [string, string][] = Object.keys(env.env)
    .sort()
    .map((k) => [`env.${k}`, env.env[k]!]);
  if (env.target !== "aws") return values;
  values.push(["instanceType", env.instanceType], ["kmsKeyId", env.kmsKeyId ?? "-"], ["vpc", env.vpc ?? "-"]);
  values.push(["subnets", env.subnets.length ? env.subnets.join("/") : "-"]);
  values.push(["logs.cloudwatch", env.logs.cloudwatch ? "on" : "off"]);
  if (env.mode === "load-balanced") {
    const h = env.health;
    values.push(
      ["healthcheck.path", h.path],
      ["healthcheck.interval", String(h.intervalSeconds)],
      ["healthcheck.checkTimeout", String(h.checkTimeoutSeconds)],
      ["healthcheck.healthyThreshold", String(h.healthyThreshold)],
      ["healthcheck.unhealthyThreshold", String(h.unhealthyThreshold)],
      ["deregistrationDelay", String(env.deregistrationDelaySeconds)],
    );
  }
  return values;
}

export function launchConfig(env: Environment): LaunchConfig {
  const values = launchValues(env);
  return {
    hash: shortHash(JSON.stringify(values), HASH_LENGTH),
    settings: Object.fromEntries(values.map(([k, v]) => [k, k.startsWith("env.") ? shortHash(`${k}=${v}`, 8) : v])),
  };
}

/** What changed between two configurations, one phrase per setting, sorted by name. */
export function configChanges(before: RecordedConfig, after: LaunchConfig): string[] {
  const recorded = before.settings;
  if (!recorded)
    return before.hash === after.hash ? [] : [`${before.hash} → ${after.hash} (the live release's settings were too long to record)`];
  const keys = [...new Set([...Object.keys(before.settings), ...Object.keys(after.settings)])].sort();
  return keys.flatMap((k) => {
    const [was, now] = [recorded[k], after.settings[k]];
    if (was === now) return [];
    if (was === undefined) return [`${k} added`];
    if (now === undefined) return [`${k} removed`];
    return k.startsWith("env.") ? [`${k} changed`] : [`${k} ${was} → ${now}`];
  });
}
