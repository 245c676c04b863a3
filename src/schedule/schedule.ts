/**
 * kiln schedule install | show | remove | run-now. install writes a systemd service + timer
 * (or, where systemd is absent, a crontab line) that runs `kiln schedule run-now`, which is
 * `kiln outdated && kiln pipeline run` with its output appended to
 * $KILN_HOME/schedule/<app>.log; optionally a CI workflow for teams that schedule in CI.
 * Everything install adds is recorded in $KILN_HOME/schedule/<app>.json, and remove takes
 * away exactly that: the files it created, the line it added.
 */
import { appendFile, mkdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { loadBakers } from "../bake/bakers.js";
import { InputError, KilnError } from "../errors.js";
import { run } from "../exec.js";
import { exists, writeFileAtomic } from "../fsutil.js";
import { installRoot, type KilnHome } from "../home.js";
import { cronFromOnCalendar, DEFAULT_ON_CALENDAR, loadPipeline, type ScheduleSettings } from "../pipeline/config.js";
import { appDirOf } from "../rebake/rebake.js";
import { loadSpec } from "../config/load.js";
import { renderCiWorkflow, renderCronLine, renderService, renderTimer, unitName, type ScheduleInputs } from "./render.js";

export interface InstallRecord {
  readonly app: string;
  readonly installedAt: string;
  readonly kind: "systemd" | "cron";
  /** Files install created (unit files, a crontab file it made, the CI workflow). */
  readonly createdFiles: readonly string[];
  readonly cron?: { readonly file: string; readonly line: string };
  readonly systemd?: { readonly unitDir: string; readonly user: boolean; readonly activated: boolean };
  readonly onCalendar: string;
  readonly cronExpression: string | undefined;
}

export interface ScheduleOptions {
  readonly home: KilnHome;
  readonly config: string;
}

export interface InstallOptions extends ScheduleOptions {
  /** Where the unit files go (tests, packaging); kiln does not activate units it did not put in systemd's own directory. */
  readonly unitDir?: string;
  /** Write a crontab line into this file instead of systemd units. */
  readonly cronFile?: string;
  /** The user column, for system crontabs such as /etc/cron.d files. */
  readonly cronUser?: string;
  /** Also write a CI workflow here. */
  readonly ci?: string;
  readonly log?: (message: string) => void;
}

export function scheduleDir(home: KilnHome): string {
  return path.join(home.root, "schedule");
}

export function scheduleLog(home: KilnHome, app: string): string {
  return path.join(scheduleDir(home), `${app}.log`);
}

function recordFile(home: KilnHome, app: string): string {
  return path.join(scheduleDir(home), `${app}.json`);
}

async function appOf(config: string): Promise<{ app: string; appDir: string; schedule: ScheduleSettings }> {
  const appDir = appDirOf(config);
  const spec = await loadSpec(appDir, {}, await loadBakers());
  const pipeline = await loadPipeline(config, spec.name);
  return {
    app: spec.name,
    appDir,
    schedule: pipeline.schedule ?? { onCalendar: DEFAULT_ON_CALENDAR, cron: undefined, securityOnly: false },
  };
}

/** What the scheduled job runs and with which environment (no secrets: only names of profiles and paths). */
function scheduleInputs(home: KilnHome, app: string, appDir: string, schedule: ScheduleSettings): ScheduleInputs {
  const environment: Record<string, string> = {
    KILN_HOME: home.root,
    HOME: os.homedir(),
    PATH: [path.dirname(process.execPath), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
      .filter((d, i, all) => all.indexOf(d) === i)
      .join(":"),
  };
  for (const name of [
    "KILN_APT_CONFIG",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL",
    "npm_config_registry",
  ]) {
    const value = process.env[name];
    if (value) environment[name] = value;
  }
  const command = [
    process.execPath,
    path.join(installRoot(), "bin", "kiln.js"),
    "schedule",
    "run-now",
    "--config",
    appDir,
    ...(schedule.securityOnly ? ["--security-only"] : []),
  ];
  return { app, appDir, command, environment, onCalendar: schedule.onCalendar, cron: schedule.cron };
}

async function template(rel: string): Promise<string> {
  return readFile(path.join(installRoot(), "templates", rel), "utf8");
}

function systemdRunning(): Promise<boolean> {
  return exists("/run/systemd/system");
}

function defaultUnitDir(): { dir: string; user: boolean } {
  if (process.getuid?.() === 0) return { dir: "/etc/systemd/system", user: false };
  return { dir: path.join(process.env.XDG_CONFIG_HOME || path.join(os.homedir(), ".config"), "systemd", "user"), user: true };
}

export async function installSchedule(opts: InstallOptions): Promise<InstallRecord> {
  const log = opts.log ?? (() => undefined);
  const { app, appDir, schedule } = await appOf(opts.config);
  const record = recordFile(opts.home, app);
  if (await exists(record))
    throw new InputError(`a schedule for ${app} is already installed`, {
      hint: "kiln schedule show lists it; kiln schedule remove takes it away first",
    });
  const inputs = scheduleInputs(opts.home, app, appDir, schedule);
  const cronExpression = schedule.cron ?? cronFromOnCalendar(schedule.onCalendar);
  const created: string[] = [];
  let result: InstallRecord;
  const useCron = opts.cronFile !== undefined || (opts.unitDir === undefined && !(await systemdRunning()));
  if (useCron) {
    if (!cronExpression)
      throw new InputError(`pipeline.schedule.onCalendar '${schedule.onCalendar}' has no simple cron equivalent`, {
        hint: 'set pipeline.schedule.cron: "0 3 * * 1" in kiln.yml',
      });
    const file = opts.cronFile ?? (process.getuid?.() === 0 ? `/etc/cron.d/${unitName(app)}` : undefined);
    if (!file)
      throw new InputError("systemd is not running here, and only root can write /etc/cron.d", {
        hint: "pass --cron FILE (then install it with: crontab FILE), or run as root",
      });
    const user = opts.cronUser ?? (file.startsWith("/etc/cron.d/") ? "root" : undefined);
    const line = renderCronLine(await template("schedule/crontab.line"), inputs, cronExpression, user);
    const before = await readFile(file, "utf8").catch(() => undefined);
    if (before === undefined) created.push(file);
    if (before?.split("\n").includes(line)) throw new InputError(`${file} already has kiln's line for ${app}`);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFileAtomic(file, `${before ?? ""}${before && !before.endsWith("\n") ? "\n" : ""}${line}\n`);
    log(`cron: added to ${file}: ${line}`);
    result = {
      app,
      installedAt: new Date().toISOString(),
      kind: "cron",
      createdFiles: created,
      cron: { file, line },
      onCalendar: schedule.onCalendar,
      cronExpression,
    };
  } else {
    const target = opts.unitDir ? { dir: path.resolve(opts.unitDir), user: process.getuid?.() !== 0 } : defaultUnitDir();
    const files = {
      service: path.join(target.dir, `${unitName(app)}.service`),
      timer: path.join(target.dir, `${unitName(app)}.timer`),
    };
    for (const f of Object.values(files))
      if (await exists(f)) throw new InputError(`${f} already exists`, { hint: "kiln schedule remove (or delete it by hand) first" });
    await mkdir(target.dir, { recursive: true });
    await writeFileAtomic(files.service, renderService(await template("schedule/kiln.service"), inputs));
    created.push(files.service);
    await writeFileAtomic(files.timer, renderTimer(await template("schedule/kiln.timer"), inputs));
    created.push(files.timer);
    log(`systemd: wrote ${files.service} and ${files.timer}`);
    // Activate only units in systemd's own directory on a host where systemd runs.
    const activate = opts.unitDir === undefined && (await systemdRunning());
    if (activate) {
      const scope = target.user ? ["--user"] : [];
      await run(["systemctl", ...scope, "daemon-reload"]);
      await run(["systemctl", ...scope, "enable", "--now", `${unitName(app)}.timer`]);
      log(`systemd: enabled and started ${unitName(app)}.timer`);
    } else {
      const scope = target.user ? " --user" : "";
      log(
        `systemd: not activated; to activate: systemctl${scope} link ${files.service} ${files.timer} && systemctl${scope} enable --now ${unitName(app)}.timer`,
      );
    }
    result = {
      app,
      installedAt: new Date().toISOString(),
      kind: "systemd",
      createdFiles: created,
      systemd: { unitDir: target.dir, user: target.user, activated: activate },
      onCalendar: schedule.onCalendar,
      cronExpression,
    };
  }
  if (opts.ci) {
    const ci = path.resolve(opts.ci);
    if (await exists(ci)) throw new InputError(`${ci} already exists`, { hint: "choose another --ci path or delete the file" });
    if (!cronExpression)
      throw new InputError(`pipeline.schedule.onCalendar '${schedule.onCalendar}' has no simple cron equivalent for the CI workflow`, {
        hint: "set pipeline.schedule.cron in kiln.yml",
      });
    const repoRoot = await gitRoot(appDir);
    const appPath = repoRoot ? path.relative(repoRoot, appDir) || "." : ".";
    await writeFileAtomic(
      ci,
      renderCiWorkflow(await template("ci/github-actions.yml"), {
        app,
        cron: cronExpression,
        appPath,
        securityOnly: schedule.securityOnly,
      }),
    );
    result = { ...result, createdFiles: [...result.createdFiles, ci] };
    log(`ci: wrote ${ci}`);
  }
  await writeFileAtomic(record, `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

async function gitRoot(dir: string): Promise<string | undefined> {
  for (let d = dir; ; d = path.dirname(d)) {
    if (await exists(path.join(d, ".git"))) return d;
    if (path.dirname(d) === d) return undefined;
  }
}

export async function readInstallRecord(home: KilnHome, app: string): Promise<InstallRecord | undefined> {
  const text = await readFile(recordFile(home, app), "utf8").catch(() => undefined);
  return text ? (JSON.parse(text) as InstallRecord) : undefined;
}

export async function removeSchedule(opts: ScheduleOptions & { log?: (m: string) => void }): Promise<InstallRecord> {
  const log = opts.log ?? (() => undefined);
  const { app } = await appOf(opts.config);
  const record = await readInstallRecord(opts.home, app);
  if (!record) throw new InputError(`no schedule is installed for ${app}`, { hint: "kiln schedule install adds one" });
  if (record.systemd?.activated) {
    const scope = record.systemd.user ? ["--user"] : [];
    await run(["systemctl", ...scope, "disable", "--now", `${unitName(app)}.timer`]).catch((e: Error) =>
      log(`systemd: ${e.message.split("\n")[0]}`),
    );
  }
  if (record.cron) {
    const text = await readFile(record.cron.file, "utf8").catch(() => undefined);
    if (text !== undefined) {
      const lines = text.split("\n");
      const index = lines.indexOf(record.cron.line);
      if (index >= 0) lines.splice(index, 1);
      const rest = lines.join("\n");
      if (record.createdFiles.includes(record.cron.file) && rest.trim() === "") await rm(record.cron.file, { force: true });
      else await writeFileAtomic(record.cron.file, rest);
      log(`cron: removed kiln's line from ${record.cron.file}`);
    }
  }
  for (const file of record.createdFiles) {
    if (record.cron && file === record.cron.file) continue;
    await rm(file, { force: true });
    log(`removed ${file}`);
  }
  if (record.systemd?.activated)
    await run(["systemctl", ...(record.systemd.user ? ["--user"] : []), "daemon-reload"]).catch(() => undefined);
  await rm(recordFile(opts.home, app), { force: true });
  return record;
}

export interface ScheduleShow {
  readonly app: string;
  readonly installed: InstallRecord | undefined;
  readonly nextRun: string | undefined;
  readonly log: string;
  readonly lastLines: readonly string[];
}

export async function showSchedule(opts: ScheduleOptions & { lines?: number }): Promise<ScheduleShow> {
  const { app, schedule } = await appOf(opts.config);
  const installed = await readInstallRecord(opts.home, app);
  const onCalendar = installed?.onCalendar ?? schedule.onCalendar;
  let nextRun: string | undefined;
  try {
    nextRun = /Next elapse:\s*(.+)/.exec((await run(["systemd-analyze", "calendar", onCalendar])).stdout)?.[1]?.trim();
  } catch {
    nextRun = undefined;
  }
  const file = scheduleLog(opts.home, app);
  const text = await readFile(file, "utf8").catch(() => "");
  return {
    app,
    installed,
    nextRun,
    log: file,
    lastLines: text
      .trimEnd()
      .split("\n")
      .filter(Boolean)
      .slice(-(opts.lines ?? 20)),
  };
}

/** A log that the scheduled job's steps go to, with a timestamp per line. */
export function scheduleLogger(home: KilnHome, app: string): { line(message: string): Promise<void> } {
  const file = scheduleLog(home, app);
  return {
    async line(message) {
      await mkdir(path.dirname(file), { recursive: true });
      const stamp = new Date().toISOString();
      await appendFile(
        file,
        message
          .split("\n")
          .map((l) => `${stamp} ${l}\n`)
          .join(""),
      );
    },
  };
}

export class ScheduledRunFailedError extends KilnError {}

export { appOf as scheduledApp };
