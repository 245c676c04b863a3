/**
 * kiln.yml's `pipeline:`: the ordered stages an image (usually a scheduled rebake) goes
 * through, each an environment with a health gate, a soak time and an optional manual
 * approval; the rebake version format; and the schedule that runs it.
 *
 *   pipeline:
 *     stages:
 *       - { env: dev }
 *       - { env: test, soak: 300 }
 *       - { env: prod, soak: 600, approval: true, canary: 10%, canaryFor: 5m }
 *     rebakeVersion: "{version}-r{n}"
 *     schedule: { onCalendar: "Mon *-*-* 03:00", securityOnly: false }
 */
import { parseCanary } from "../deploy/canary.js";
import type { CanarySettings } from "../deploy/plan.js";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseKilnYaml } from "../config/yaml.js";
import { InputError, SpecError } from "../errors.js";
import { DEFAULT_VERSION_FORMAT } from "../rebake/rebake.js";
import { parseEnvironments } from "../config/environments.js";
import { schemaProblems } from "../config/schema.js";

export interface PipelineStage {
  readonly env: string;
  /** Seconds the stage must stay healthy after the promote before the next stage starts. */
  readonly soakSeconds: number;
  /** Seconds between health checks during the soak. */
  readonly checkIntervalSeconds: number;
  /** The stage waits for `kiln pipeline run --approve ENV`. */
  readonly approval: boolean;
  /** Promote with a canary step first (a share of requests for a while, then the switch). */
  readonly canary?: CanarySettings;
}

export interface ScheduleSettings {
  /** systemd OnCalendar expression. */
  readonly onCalendar: string;
  /** Cron expression for hosts without systemd (default: derived from onCalendar when it can be). */
  readonly cron: string | undefined;
  /** Only security updates trigger a rebake. */
  readonly securityOnly: boolean;
}

export interface PipelineConfig {
  readonly file: string;
  readonly stages: readonly PipelineStage[];
  readonly rebakeVersion: string;
  readonly schedule: ScheduleSettings | undefined;
}

export const DEFAULT_ON_CALENDAR = "Mon *-*-* 03:00";

/**
 * The pipeline of a kiln.yml. The schema checks every value; what needs the environments or
 * several stages (names that must exist, appear once; canary share and duration) is checked here.
 */
export function parsePipeline(raw: unknown, environments: readonly string[], file: string): PipelineConfig | undefined {
  if (raw === undefined || raw === null) return undefined;
  const problems = schemaProblems("/properties/pipeline", raw, "pipeline");
  const p = (typeof raw === "object" && !Array.isArray(raw) ? raw : {}) as Record<string, unknown>;
  const stages: PipelineStage[] = [];
  for (const [i, value] of (Array.isArray(p.stages) ? p.stages : []).entries()) {
    const at = `pipeline.stages[${i}]`;
    const s = (typeof value === "string" ? { env: value } : value) as Record<string, unknown> | null;
    if (typeof s !== "object" || s === null || Array.isArray(s) || typeof s.env !== "string") continue;
    const env = s.env;
    const defined = environments.join(", ") || "none";
    if (!environments.includes(env)) problems.push(`${at}.env: '${env}' is not an environment in this file (defined: ${defined})`);
    else if (stages.some((x) => x.env === env)) problems.push(`${at}.env: '${env}' appears twice`);
    let canary: CanarySettings | undefined;
    // Only text the schema could accept is parsed; a wrongly typed value has its problem already.
    const percent = typeof s.canary === "string" || typeof s.canary === "number" ? String(s.canary) : undefined;
    const duration = typeof s.canaryFor === "string" || typeof s.canaryFor === "number" ? String(s.canaryFor) : undefined;
    const reported = (key: string) => problems.some((line) => line.startsWith(`${at}.${key}:`));
    if (percent !== undefined && !reported("canary") && !reported("canaryFor")) {
      try {
        canary = parseCanary(percent, duration, { percent: `${at}.canary`, duration: `${at}.canaryFor` });
      } catch (error) {
        problems.push((error as Error).message);
      }
    } else if (s.canary === undefined && s.canaryFor !== undefined)
      problems.push(`${at}.canaryFor: needs canary: PERCENT in the same stage`);
    const seconds = (x: unknown, fallback: number) => (typeof x === "number" ? x : fallback);
    stages.push({
      env,
      soakSeconds: seconds(s.soak, 0),
      checkIntervalSeconds: seconds(s.checkInterval, 5),
      approval: s.approval === true,
      ...(canary ? { canary } : {}),
    });
  }
  const rebakeVersion = typeof p.rebakeVersion === "string" ? p.rebakeVersion : DEFAULT_VERSION_FORMAT;
  const s = p.schedule as Record<string, unknown> | undefined;
  const schedule =
    typeof s === "object" && s !== null && !Array.isArray(s)
      ? {
          onCalendar: typeof s.onCalendar === "string" ? s.onCalendar : DEFAULT_ON_CALENDAR,
          cron: typeof s.cron === "string" ? s.cron : undefined,
          securityOnly: s.securityOnly === true,
        }
      : undefined;
  if (problems.length > 0) throw new SpecError(file, problems, "fix the pipeline: section of kiln.yml");
  return { file, stages, rebakeVersion, schedule };
}

export function configFile(config: string): string {
  return /\.ya?ml$/.test(config) ? path.resolve(config) : path.join(path.resolve(config), "kiln.yml");
}

/** Reads the pipeline of the app whose kiln.yml is at (or in) `config`. */
export async function loadPipeline(config: string, app: string): Promise<PipelineConfig> {
  const file = configFile(config);
  const text = await readFile(file, "utf8").catch(() => "");
  const doc = (text ? parseKilnYaml(text, file) : {}) as Record<string, unknown> | null;
  const envs = [...parseEnvironments(doc?.environments, app, "/", file).keys()];
  const pipeline = parsePipeline(doc?.pipeline, envs, file);
  if (!pipeline)
    throw new InputError(`${file} defines no pipeline`, {
      hint: "add pipeline: { stages: [{ env: dev }, { env: test, soak: 300 }, { env: prod, approval: true }] } to kiln.yml",
    });
  return pipeline;
}

/**
 * A cron line's schedule from simple OnCalendar forms ("Mon *-*-* 03:00", "*-*-* 04:30",
 * "daily", "weekly", "hourly"); anything richer needs pipeline.schedule.cron.
 */
export function cronFromOnCalendar(onCalendar: string): string | undefined {
  const words: Record<string, string> = { hourly: "0 * * * *", daily: "0 0 * * *", weekly: "0 0 * * 1", monthly: "0 0 1 * *" };
  if (words[onCalendar.trim()]) return words[onCalendar.trim()];
  const m = /^(?:([A-Za-z]{3}(?:[,.]+[A-Za-z]{3})*)\s+)?\*-\*-\*\s+(\d{1,2}):(\d{2})(?::00)?$/.exec(onCalendar.trim());
  if (!m) return undefined;
  const days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
  let dow = "*";
  if (m[1]) {
    const range = /^([A-Za-z]{3})\.\.([A-Za-z]{3})$/.exec(m[1]);
    const list = range ? [range[1]!, range[2]!] : m[1].split(",");
    const nums = list.map((d) => days.indexOf(d.toLowerCase()));
    if (nums.some((n) => n < 0)) return undefined;
    dow = range ? `${nums[0]}-${nums[1]}` : nums.join(",");
  }
  return `${Number(m[3])} ${Number(m[2])} * * ${dow}`;
}
