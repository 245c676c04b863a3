/**
 * Environments (dev, test, prod, …) from kiln.yml's `environments:`: where an app runs and how
 * it is released there. Parsed once, every problem reported with its path.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { InputError, SpecError } from "../errors.js";
import { schemaProblems } from "./schema.js";
import { parseKilnYaml } from "./yaml.js";

export interface HealthSettings {
  readonly path: string;
  /** Seconds between two checks of one instance. */
  readonly intervalSeconds: number;
  /** Seconds one check may wait for its answer (the ALB's HealthCheckTimeoutSeconds). */
  readonly checkTimeoutSeconds: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
  /** Seconds a new release has to become healthy (the health gate). */
  readonly timeoutSeconds: number;
}

/**
 * What CreateTargetGroup accepts (API reference: interval 5–300, timeout 2–120, thresholds
 * 2–10, interval greater than timeout). kiln sends every value, so AWS's protocol defaults
 * (HTTP: interval 30, timeout 6) never stand in for one it left out.
 */
const ALB_HEALTH_RANGES: readonly [key: string, field: keyof HealthSettings, min: number, max: number][] = [
  ["interval", "intervalSeconds", 5, 300],
  ["checkTimeout", "checkTimeoutSeconds", 2, 120],
  ["healthyThreshold", "healthyThreshold", 2, 10],
  ["unhealthyThreshold", "unhealthyThreshold", 2, 10],
];

/** The load balancer's health check settings an environment must meet, as problems with their paths. */
export function albHealthProblems(health: HealthSettings, at: string): string[] {
  const problems: string[] = [];
  for (const [key, field, min, max] of ALB_HEALTH_RANGES) {
    const value = health[field] as number;
    if (value < min || value > max)
      problems.push(`${at}.healthcheck.${key}: ${value} is outside what an AWS load balancer accepts (${min} to ${max})`);
  }
  if (health.intervalSeconds <= health.checkTimeoutSeconds)
    problems.push(
      `${at}.healthcheck: interval (${health.intervalSeconds}s) must be greater than checkTimeout (${health.checkTimeoutSeconds}s); ` +
        "raise interval or lower checkTimeout",
    );
  return problems;
}

interface EnvironmentBase {
  readonly name: string;
  readonly app: string;
  readonly instances: number;
  readonly health: HealthSettings;
  readonly deregistrationDelaySeconds: number;
  readonly env: Readonly<Record<string, string>>;
  /** Environments that must have run a digest healthily before this one may (promotion gate). */
  readonly after: readonly string[];
}

export interface LocalEnvironment extends EnvironmentBase {
  readonly target: "local";
  /** Port the local load balancer listens on (127.0.0.1). */
  readonly port: number;
}

export interface AwsEnvironment extends EnvironmentBase {
  readonly target: "aws";
  readonly region: string;
  readonly vpc: string | undefined;
  readonly subnets: readonly string[];
  readonly instanceType: string;
  readonly min: number;
  readonly max: number;
  readonly mode: "load-balanced" | "single-instance";
  readonly certificateArn: string | undefined;
  /** The HTTPS listener's security policy: set exactly when certificateArn is (DEFAULT_SSL_POLICY unless kiln.yml names one). */
  readonly sslPolicy?: string | undefined;
  /** KMS key of the encrypted root volumes; the account's default EBS key when unset. */
  readonly kmsKeyId?: string | undefined;
  /** Launch templates of this many replaced releases are kept, so a rollback relaunches exactly them. */
  readonly keepReleases: number;
  /** destroy refuses while on, and the ALB carries deletion_protection.enabled (default: on for an environment named prod). */
  readonly deletionProtection: boolean;
  /** Shipping to the CloudWatch Logs group /kiln/<app>/<env> (default on), kept `retentionDays` (default 30). */
  readonly logs: LogSettings;
}

export interface LogSettings {
  readonly cloudwatch: boolean;
  readonly retentionDays: number;
}

/**
 * The retentions CloudWatch Logs accepts (PutRetentionPolicy, CloudWatch Logs API Reference:
 * retentionInDays "Valid Values"); any other number is refused by AWS.
 */
export const CLOUDWATCH_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** The allowed retentions closest to `days`, below and above it. */
function nearestRetentions(days: number): number[] {
  const below = CLOUDWATCH_RETENTION_DAYS.filter((d) => d < days).at(-1);
  const above = CLOUDWATCH_RETENTION_DAYS.find((d) => d > days);
  return [below, above].filter((d): d is (typeof CLOUDWATCH_RETENTION_DAYS)[number] => d !== undefined);
}

/** logs: as the environment runs with it, and what is wrong with it (the schema checked its types and range). */
function logSettings(raw: unknown, at: string, problems: string[]): LogSettings {
  const v = (typeof raw === "object" && raw !== null ? raw : {}) as { cloudwatch?: unknown; retentionDays?: unknown };
  const retentionDays = whole(v.retentionDays) ?? 30;
  if (!(CLOUDWATCH_RETENTION_DAYS as readonly number[]).includes(retentionDays) && retentionDays >= 1 && retentionDays <= 3653)
    problems.push(
      `${at}.logs.retentionDays: CloudWatch Logs does not keep logs ${retentionDays} days; ` +
        `the nearest it accepts: ${nearestRetentions(retentionDays).join(" or ")} (all: ${CLOUDWATCH_RETENTION_DAYS.join(", ")})`,
    );
  return { cloudwatch: typeof v.cloudwatch === "boolean" ? v.cloudwatch : true, retentionDays };
}

export type Environment = LocalEnvironment | AwsEnvironment;

const DEFAULT_ORDER = ["dev", "test", "prod"];

/** Without any environments in kiln.yml, `dev` is two local instances behind a load balancer on 8000. */
function defaultDev(app: string, healthPath: string, healthTimeoutSeconds: number): LocalEnvironment {
  return {
    name: "dev",
    app,
    target: "local",
    port: 8000,
    instances: 2,
    deregistrationDelaySeconds: 3,
    env: {},
    after: [],
    health: {
      path: healthPath,
      intervalSeconds: 1,
      checkTimeoutSeconds: 4,
      healthyThreshold: 2,
      unhealthyThreshold: 2,
      timeoutSeconds: healthTimeoutSeconds,
    },
  };
}

/**
 * The environments of a kiln.yml. The schema checks every value (characters, ranges, known
 * keys); what relates several settings or environments is checked here. All problems of the
 * section are reported in one SpecError.
 */
export function parseEnvironments(
  raw: unknown,
  app: string,
  healthPath: string,
  where: string,
  /** kiln.yml's top-level healthcheck.timeout: an environment's health gate when it sets none. */
  healthTimeoutSeconds = 300,
): Map<string, Environment> {
  const envs = new Map<string, Environment>();
  if (raw === undefined || raw === null) {
    envs.set("dev", defaultDev(app, healthPath, healthTimeoutSeconds));
    return envs;
  }
  const problems = schemaProblems("/properties/environments", raw, "environments");
  // The checks across settings run on what has the right type, so one pass reports everything.
  const all = (typeof raw === "object" && !Array.isArray(raw) ? raw : {}) as Record<string, Record<string, unknown>>;
  const names = Object.keys(all);
  for (const [name, v] of Object.entries(all)) {
    if (typeof v !== "object" || v === null || Array.isArray(v)) continue;
    const at = `environments.${name}`;
    const health = (v.healthcheck ?? {}) as Record<string, number | string | undefined>;
    const order = DEFAULT_ORDER.filter((n) => names.includes(n));
    const previous = order.includes(name) ? order.slice(0, order.indexOf(name)).slice(-1) : [];
    const after = Array.isArray(v.after) ? v.after.filter((a): a is string => typeof a === "string") : previous;
    for (const a of after) if (!names.includes(a)) problems.push(`${at}.after: '${a}' is not an environment in this file`);
    const instances = whole(v.instances) ?? (v.target === "aws" && v.mode === "single-instance" ? 1 : 2);
    const base = {
      name,
      app,
      after,
      instances,
      env: textValues(v.env),
      deregistrationDelaySeconds: (v.deregistrationDelay as number | undefined) ?? 5,
      health: {
        path: (health.path as string | undefined) ?? healthPath,
        intervalSeconds: (health.interval as number | undefined) ?? 5,
        // Below the shortest interval an ALB takes (5 s), so the defaults always pass interval > checkTimeout.
        checkTimeoutSeconds: (health.checkTimeout as number | undefined) ?? 4,
        healthyThreshold: (health.healthyThreshold as number | undefined) ?? 2,
        unhealthyThreshold: (health.unhealthyThreshold as number | undefined) ?? 2,
        timeoutSeconds: (health.timeout as number | undefined) ?? healthTimeoutSeconds,
      },
    };
    if (v.target !== "aws") {
      // Refused rather than ignored: a local environment's logs are its VMs' consoles (kiln logs --env),
      // and a `cloudwatch: true` that silently ships nothing would mislead.
      if (v.logs !== undefined)
        problems.push(
          `${at}.logs: only an aws environment ships logs to CloudWatch; a local one keeps its VMs' consoles (kiln logs --env)`,
        );
      envs.set(name, { ...base, target: "local", port: (v.port as number | undefined) ?? 8000 });
      continue;
    }
    const subnets = Array.isArray(v.subnets) ? v.subnets.filter((x): x is string => typeof x === "string") : [];
    const mode = (v.mode as AwsEnvironment["mode"] | undefined) ?? "load-balanced";
    if (mode === "load-balanced" && v.subnets !== undefined && subnets.length < 2) {
      problems.push(`${at}.subnets: a load-balanced environment needs subnets in at least two availability zones (got ${subnets.length})`);
    }
    // Only a load balancer's target group takes these settings; a single instance is checked by kiln itself.
    if (mode === "load-balanced") problems.push(...albHealthProblems(base.health, at));
    const min = whole(v.min) ?? instances;
    const max = whole(v.max) ?? Math.max(instances, 1);
    if (!(min <= instances && instances <= max)) problems.push(`${at}: needs min ≤ instances ≤ max (got ${min} ≤ ${instances} ≤ ${max})`);
    // One instance behind one Elastic IP: more needs a load balancer in front.
    if (mode === "single-instance" && instances !== 1) {
      problems.push(
        `${at}.instances: a single-instance environment runs exactly 1 instance (got ${instances}); use mode: load-balanced to run more`,
      );
    } else if (mode === "single-instance" && (min !== 1 || max !== 1)) {
      problems.push(
        `${at}: a single-instance environment has min: 1 and max: 1 (got min ${min}, max ${max}); use mode: load-balanced to scale`,
      );
    }
    envs.set(name, {
      ...base,
      target: "aws",
      region: v.region as string,
      vpc: v.vpc as string | undefined,
      subnets,
      instanceType: (v.instanceType as string | undefined) ?? "t3.micro",
      min,
      max,
      mode,
      ...httpsSettings(v.https),
      kmsKeyId: v.kmsKeyId as string | undefined,
      keepReleases: (v.keepReleases as number | undefined) ?? 3,
      deletionProtection: (v.deletionProtection as boolean | undefined) ?? name === "prod",
      logs: logSettings(v.logs, at, problems),
    });
  }
  if (problems.length > 0) throw new SpecError(where, problems, "fix the environments: section of kiln.yml");
  return envs;
}

/**
 * AWS's current recommendation and the console's default for HTTPS listeners ("Security policies
 * for your Application Load Balancer", Elastic Load Balancing User Guide): TLS 1.3 and 1.2 only,
 * with hybrid post-quantum key exchange. The API's own default (ELBSecurityPolicy-2016-08) still
 * allows TLS 1.0, which AWS Security Hub's ELB.17 control flags.
 */
export const DEFAULT_SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09";

function httpsSettings(https: unknown): { certificateArn: string | undefined; sslPolicy: string | undefined } {
  const settings = (typeof https === "object" && https !== null ? https : {}) as { certificateArn?: string; sslPolicy?: string };
  const certificateArn = settings.certificateArn;
  return { certificateArn, sslPolicy: certificateArn ? (settings.sslPolicy ?? DEFAULT_SSL_POLICY) : undefined };
}

/** An env: mapping as text; only scalars (what the schema accepts) are turned into text, since String() of a mapping can throw. */
function textValues(env: unknown): Record<string, string> {
  const entries = Object.entries(typeof env === "object" && env !== null ? env : {});
  return Object.fromEntries(entries.filter(([, x]) => ["string", "number", "boolean"].includes(typeof x)).map(([k, x]) => [k, String(x)]));
}

function whole(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) ? value : undefined;
}

/** The kiln.yml a --config flag names: the file itself, or kiln.yml in that directory. */
export function configFile(configPath: string): string {
  return configPath.endsWith(".yml") || configPath.endsWith(".yaml") ? configPath : path.join(configPath, "kiln.yml");
}

/**
 * Reads kiln.yml from a directory (or a file path) for its environments; `edited`: a kiln.yml
 * text to use instead of the file (kiln config --dry-run plans with the edit it did not write).
 */
export async function loadEnvironment(
  configPath: string,
  app: string,
  healthPath: string,
  name: string,
  edited?: string,
): Promise<Environment> {
  const file = configFile(configPath);
  const text = edited ?? (await readFile(file, "utf8").catch(() => ""));
  const doc = (text ? parseKilnYaml(text, file) : {}) as Record<string, unknown> | null;
  // The top-level health check timeout ("from VM start to healthy") is the deploy's health gate
  // too, unless the environment sets its own; only a valid one counts (loadSpec reports the rest).
  const top = (doc?.healthcheck as { timeout?: unknown } | undefined)?.timeout;
  const timeout = Number.isInteger(top) && (top as number) >= 1 && (top as number) <= 3600 ? (top as number) : undefined;
  const envs = parseEnvironments(doc?.environments, app, healthPath, file, timeout);
  const env = envs.get(name);
  if (!env)
    throw new InputError(`environment '${name}' is not defined in ${file}`, {
      hint: `defined: ${[...envs.keys()].join(", ")}; add it under environments:`,
    });
  return env;
}
