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
import { parse as parseYaml } from "yaml";
import { InputError, SpecError } from "../errors.js";
import { DEFAULT_VERSION_FORMAT } from "../rebake/rebake.js";
import { parseEnvironments } from "../config/environments.js";

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

export function parsePipeline(raw: unknown, environments: readonly string[], file: string): PipelineConfig | undefined {
  if (raw === undefined || raw === null) return undefined;
  const problems: string[] = [];
  if (typeof raw !== "object" || Array.isArray(raw)) throw new SpecError(file, ["pipeline: must be a mapping with stages:"]);
  const p = raw as Record<string, unknown>;
  for (const key of Object.keys(p)) if (!["stages", "rebakeVersion", "schedule"].includes(key)) problems.push(`pipeline.${key}: unknown setting (known: stages, rebakeVersion, schedule)`);
  const stages: PipelineStage[] = [];
  if (!Array.isArray(p.stages) || p.stages.length === 0) problems.push("pipeline.stages: a list of stages is required, e.g. [{ env: dev }, { env: test, soak: 300 }]");
  else {
    for (const [i, value] of p.stages.entries()) {
      const at = `pipeline.stages[${i}]`;
      const s = (typeof value === "string" ? { env: value } : value) as Record<string, unknown> | null;
      if (typeof s !== "object" || s === null || Array.isArray(s)) {
        problems.push(`${at}: must be a mapping like { env: dev, soak: 60 }`);
        continue;
      }
      for (const key of Object.keys(s)) if (!["env", "soak", "approval", "checkInterval", "canary", "canaryFor"].includes(key)) problems.push(`${at}.${key}: unknown setting (known: env, soak, approval, checkInterval, canary, canaryFor)`);
      const env = typeof s.env === "string" ? s.env : "";
      if (!env) problems.push(`${at}.env: required (an environment name from environments:)`);
      else if (!environments.includes(env)) problems.push(`${at}.env: '${env}' is not an environment in this file (defined: ${environments.join(", ") || "none"})`);
      else if (stages.some((x) => x.env === env)) problems.push(`${at}.env: '${env}' appears twice`);
      const whole = (key: string, fallback: number, min: number): number => {
        const x = s[key];
        if (x === undefined) return fallback;
        if (typeof x !== "number" || !Number.isInteger(x) || x < min) {
          problems.push(`${at}.${key}: must be a whole number of seconds ≥ ${min}`);
          return fallback;
        }
        return x;
      };
      if (s.approval !== undefined && typeof s.approval !== "boolean") problems.push(`${at}.approval: must be true or false`);
      let canary: CanarySettings | undefined;
      if (s.canary !== undefined) {
        try {
          canary = parseCanary(String(s.canary), s.canaryFor === undefined ? undefined : String(s.canaryFor), { percent: `${at}.canary`, duration: `${at}.canaryFor` });
        } catch (error) {
          problems.push((error as Error).message);
        }
      } else if (s.canaryFor !== undefined) problems.push(`${at}.canaryFor: needs canary: PERCENT in the same stage`);
      stages.push({ env, soakSeconds: whole("soak", 0, 0), checkIntervalSeconds: whole("checkInterval", 5, 1), approval: s.approval === true, ...(canary ? { canary } : {}) });
    }
  }
  const rebakeVersion = typeof p.rebakeVersion === "string" ? p.rebakeVersion : DEFAULT_VERSION_FORMAT;
  if (!rebakeVersion.includes("{version}") || !rebakeVersion.includes("{n}")) problems.push(`pipeline.rebakeVersion: '${rebakeVersion}' needs {version} and {n}, e.g. "{version}-r{n}"`);
  let schedule: ScheduleSettings | undefined;
  if (p.schedule !== undefined) {
    const s = (p.schedule ?? {}) as Record<string, unknown>;
    if (typeof s !== "object" || Array.isArray(s)) problems.push("pipeline.schedule: must be a mapping like { onCalendar: \"Mon *-*-* 03:00\" }");
    else {
      const onCalendar = typeof s.onCalendar === "string" ? s.onCalendar : DEFAULT_ON_CALENDAR;
      if (/[\n\r]/.test(onCalendar)) problems.push("pipeline.schedule.onCalendar: must be one line");
      const cron = typeof s.cron === "string" ? s.cron : undefined;
      if (cron !== undefined && cron.trim().split(/\s+/).length !== 5) problems.push(`pipeline.schedule.cron: '${cron}' must have five fields (minute hour day month weekday)`);
      schedule = { onCalendar, cron, securityOnly: s.securityOnly === true };
    }
  }
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
  const doc = (text ? parseYaml(text) : {}) as Record<string, unknown> | null;
  const envs = [...parseEnvironments(doc?.environments, app, "/", file).keys()];
  const pipeline = parsePipeline(doc?.pipeline, envs, file);
  if (!pipeline) throw new InputError(`${file} defines no pipeline`, { hint: "add pipeline: { stages: [{ env: dev }, { env: test, soak: 300 }, { env: prod, approval: true }] } to kiln.yml" });
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
