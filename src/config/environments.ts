/**
 * Environments (dev, test, prod, …) from kiln.yml's `environments:`: where an app runs and how
 * it is released there. Parsed once, every problem reported with its path.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { InputError, SpecError } from "../errors.js";

export interface HealthSettings {
  readonly path: string;
  readonly intervalSeconds: number;
  readonly healthyThreshold: number;
  readonly timeoutSeconds: number;
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
  /** Launch templates of this many replaced releases are kept, so a rollback relaunches exactly them. */
  readonly keepReleases: number;
}

export type Environment = LocalEnvironment | AwsEnvironment;

const DEFAULT_ORDER = ["dev", "test", "prod"];

/** Without any environments in kiln.yml, `dev` is two local instances behind a load balancer on 8000. */
function defaultDev(app: string, healthPath: string): LocalEnvironment {
  return {
    name: "dev", app, target: "local", port: 8000, instances: 2, deregistrationDelaySeconds: 3, env: {}, after: [],
    health: { path: healthPath, intervalSeconds: 1, healthyThreshold: 2, timeoutSeconds: 300 },
  };
}

export function parseEnvironments(raw: unknown, app: string, healthPath: string, where: string): Map<string, Environment> {
  const envs = new Map<string, Environment>();
  if (raw === undefined || raw === null) {
    envs.set("dev", defaultDev(app, healthPath));
    return envs;
  }
  const problems: string[] = [];
  if (typeof raw !== "object" || Array.isArray(raw)) throw new SpecError(where, ["environments: must be a mapping of environment name to settings"]);
  const names = Object.keys(raw as object);
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    const at = `environments.${name}`;
    if (!/^[a-z][a-z0-9-]{0,20}$/.test(name)) problems.push(`${at}: environment names are lowercase letters, digits and '-' (max 21)`);
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      problems.push(`${at}: must be a mapping`);
      continue;
    }
    const v = value as Record<string, unknown>;
    const num = (key: string, fallback: number, min = 0): number => {
      const x = v[key];
      if (x === undefined) return fallback;
      if (typeof x !== "number" || !Number.isInteger(x) || x < min) {
        problems.push(`${at}.${key}: must be a whole number ≥ ${min}`);
        return fallback;
      }
      return x;
    };
    const health = (typeof v.healthcheck === "object" && v.healthcheck !== null ? v.healthcheck : {}) as Record<string, unknown>;
    const hPath = typeof health.path === "string" ? health.path : healthPath;
    if (!hPath.startsWith("/")) problems.push(`${at}.healthcheck.path: must start with /`);
    const envVars: Record<string, string> = {};
    if (v.env !== undefined) {
      if (typeof v.env !== "object" || v.env === null || Array.isArray(v.env)) problems.push(`${at}.env: must be a mapping of NAME: value`);
      else for (const [k, x] of Object.entries(v.env as Record<string, unknown>)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) problems.push(`${at}.env.${k}: not a valid variable name`);
        else envVars[k] = String(x);
      }
    }
    const order = DEFAULT_ORDER.filter((n) => names.includes(n));
    const after = Array.isArray(v.after) ? v.after.map(String) : order.includes(name) ? order.slice(0, order.indexOf(name)).slice(-1) : [];
    for (const a of after) if (!names.includes(a)) problems.push(`${at}.after: '${a}' is not an environment in this file`);
    const base = {
      name, app, env: envVars, after,
      instances: num("instances", v.target === "aws" && v.mode === "single-instance" ? 1 : 2, 1),
      deregistrationDelaySeconds: num("deregistrationDelay", 5, 0),
      health: {
        path: hPath,
        intervalSeconds: typeof health.interval === "number" ? health.interval : 5,
        healthyThreshold: typeof health.healthyThreshold === "number" ? health.healthyThreshold : 2,
        timeoutSeconds: typeof health.timeout === "number" ? health.timeout : 300,
      },
    };
    const target = v.target ?? "local";
    if (target === "local") {
      const port = num("port", 8000, 1);
      if (port > 65535) problems.push(`${at}.port: must be a TCP port`);
      envs.set(name, { ...base, target: "local", port });
    } else if (target === "aws") {
      const subnets = Array.isArray(v.subnets) ? v.subnets.map(String) : [];
      const mode = v.mode === "single-instance" ? "single-instance" : "load-balanced";
      if (v.mode !== undefined && v.mode !== "single-instance" && v.mode !== "load-balanced") problems.push(`${at}.mode: must be load-balanced or single-instance`);
      if (typeof v.region !== "string") problems.push(`${at}.region: required for an aws environment (e.g. eu-west-1)`);
      if (mode === "load-balanced" && v.subnets !== undefined && subnets.length < 2) problems.push(`${at}.subnets: a load-balanced environment needs subnets in at least two availability zones (got ${subnets.length})`);
      const https = (typeof v.https === "object" && v.https !== null ? v.https : {}) as Record<string, unknown>;
      if (v.https !== undefined && typeof https.certificateArn !== "string") problems.push(`${at}.https.certificateArn: required for HTTPS (an ACM certificate ARN)`);
      const min = num("min", base.instances, 0);
      const max = num("max", Math.max(base.instances, 1), 1);
      if (!(min <= base.instances && base.instances <= max)) problems.push(`${at}: needs min ≤ instances ≤ max (got ${min} ≤ ${base.instances} ≤ ${max})`);
      // One instance behind one Elastic IP: more needs a load balancer in front.
      if (mode === "single-instance" && base.instances !== 1) problems.push(`${at}.instances: a single-instance environment runs exactly 1 instance (got ${base.instances}); use mode: load-balanced to run more`);
      else if (mode === "single-instance" && (min !== 1 || max !== 1)) problems.push(`${at}: a single-instance environment has min: 1 and max: 1 (got min ${min}, max ${max}); use mode: load-balanced to scale`);
      envs.set(name, {
        ...base, target: "aws", region: String(v.region ?? ""), vpc: typeof v.vpc === "string" ? v.vpc : undefined, subnets,
        instanceType: typeof v.instanceType === "string" ? v.instanceType : "t3.micro", min, max, mode,
        certificateArn: typeof https.certificateArn === "string" ? https.certificateArn : undefined,
        keepReleases: num("keepReleases", 3, 0),
      });
    } else problems.push(`${at}.target: must be local or aws`);
  }
  if (problems.length > 0) throw new SpecError(where, problems, "fix the environments: section of kiln.yml");
  return envs;
}

/** Reads kiln.yml from a directory (or a file path) for its environments. */
export async function loadEnvironment(configPath: string, app: string, healthPath: string, name: string): Promise<Environment> {
  const file = configPath.endsWith(".yml") || configPath.endsWith(".yaml") ? configPath : path.join(configPath, "kiln.yml");
  const text = await readFile(file, "utf8").catch(() => "");
  const doc = (text ? parseYaml(text) : {}) as Record<string, unknown> | null;
  const envs = parseEnvironments(doc?.environments, app, healthPath, file);
  const env = envs.get(name);
  if (!env) throw new InputError(`environment '${name}' is not defined in ${file}`, { hint: `defined: ${[...envs.keys()].join(", ")}; add it under environments:` });
  return env;
}
