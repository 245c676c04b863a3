/**
 * The files `kiln schedule install` writes, rendered from templates/schedule and templates/ci:
 * a systemd service + timer pair, a crontab line where systemd is absent, a CI workflow.
 * Pure: (templates, settings) → text, so unit tests pin the output and systemd-analyze
 * verifies it in the integration test.
 */
import { describeControl } from "../config/schema-messages.js";
import { InputError } from "../errors.js";

export interface ScheduleInputs {
  readonly app: string;
  readonly appDir: string;
  /** argv of the scheduled command: node, kiln's bin, "schedule", "run-now", … */
  readonly command: readonly string[];
  readonly environment: Readonly<Record<string, string>>;
  readonly onCalendar: string;
  readonly cron: string | undefined;
}

/**
 * Unit files and crontab lines hold one setting per line and no quoting carries a newline
 * (systemd's C escapes aside, which kiln does not need): a value with a control character
 * could add a directive or a cron job, so every writer here refuses it.
 */
export function assertOneLine(value: string, what: string): string {
  const control = describeControl(value);
  if (control)
    throw new InputError(`the schedule's ${what} ${control}: ${JSON.stringify(value)}`, { hint: "fix pipeline.schedule in kiln.yml" });
  return value;
}

/** A crontab schedule: five fields of the characters cron reads (no %, which cron turns into a newline). */
function assertCronFields(cron: string): string {
  if (!/^[0-9A-Za-z*,/-]+( [0-9A-Za-z*,/-]+){4}$/.test(assertOneLine(cron, "cron expression"))) {
    const what = `the cron expression '${cron}' must be five fields (minute hour day month weekday)`;
    throw new InputError(what, { hint: "fix pipeline.schedule.cron in kiln.yml" });
  }
  return cron;
}

export function unitName(app: string): string {
  return `kiln-rebake-${assertOneLine(app, "app name")}`;
}

export function fill(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in values)) throw new Error(`template placeholder {{${key}}} has no value`);
    return values[key]!;
  });
}

/** systemd's quoting for one word of ExecStart= or an Environment= assignment; % is a specifier. */
export function systemdQuote(word: string): string {
  const escaped = assertOneLine(word, "command or environment value").replaceAll("%", "%%");
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/** POSIX shell quoting for the cron command line; cron itself treats % as a newline. */
export function shellQuote(word: string): string {
  assertOneLine(word, "command or environment value");
  const quoted = /^[A-Za-z0-9_@+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
  return quoted.replaceAll("%", "\\%");
}

export function renderService(template: string, inputs: ScheduleInputs): string {
  const environment = Object.entries(inputs.environment)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `Environment=${systemdQuote(`${k}=${v}`)}`)
    .join("\n");
  const appDir = assertOneLine(inputs.appDir, "app directory").replaceAll("%", "%%");
  return fill(template, {
    app: assertOneLine(inputs.app, "app name"),
    appDir,
    environment,
    execStart: inputs.command.map(systemdQuote).join(" "),
  });
}

export function renderTimer(template: string, inputs: ScheduleInputs): string {
  // % starts a systemd specifier in Description= and OnCalendar=; the schema keeps it out of onCalendar.
  const onCalendar = assertOneLine(inputs.onCalendar, "OnCalendar expression").replaceAll("%", "%%");
  return fill(template, { app: assertOneLine(inputs.app, "app name"), onCalendar, unitName: unitName(inputs.app) });
}

/** One crontab line; `user` for system crontabs (/etc/cron.d), empty for a user's crontab. */
export function renderCronLine(template: string, inputs: ScheduleInputs, cron: string, user: string | undefined): string {
  const env = Object.entries(inputs.environment)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${shellQuote(v)}`);
  const command = `cd ${shellQuote(inputs.appDir)} && ${[...env, ...inputs.command.map(shellQuote)].join(" ")} >/dev/null 2>&1`;
  const owner = user ? `${assertOneLine(user, "crontab user")} ` : "";
  return fill(template, { cron: assertCronFields(cron), user: owner, command, app: assertOneLine(inputs.app, "app name") }).trimEnd();
}

export function renderCiWorkflow(template: string, values: { app: string; cron: string; appPath: string; securityOnly: boolean }): string {
  // The workflow is YAML: one line per value, and a path with YAML syntax in it (": ", "#") double-quoted.
  const appPath = assertOneLine(values.appPath, "app path");
  return fill(template, {
    app: assertOneLine(values.app, "app name"),
    cron: assertCronFields(values.cron),
    securityOnly: values.securityOnly ? " --security-only" : "",
    appPath: /^[A-Za-z0-9._/-]+$/.test(appPath) ? appPath : JSON.stringify(appPath),
  });
}
