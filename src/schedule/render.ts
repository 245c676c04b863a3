/**
 * The files `kiln schedule install` writes, rendered from templates/schedule and templates/ci:
 * a systemd service + timer pair, a crontab line where systemd is absent, a CI workflow.
 * Pure: (templates, settings) → text, so unit tests pin the output and systemd-analyze
 * verifies it in the integration test.
 */

export interface ScheduleInputs {
  readonly app: string;
  readonly appDir: string;
  /** argv of the scheduled command: node, kiln's bin, "schedule", "run-now", … */
  readonly command: readonly string[];
  readonly environment: Readonly<Record<string, string>>;
  readonly onCalendar: string;
  readonly cron: string | undefined;
}

export function unitName(app: string): string {
  return `kiln-rebake-${app}`;
}

export function fill(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in values)) throw new Error(`template placeholder {{${key}}} has no value`);
    return values[key]!;
  });
}

/** systemd's quoting for one word of ExecStart= or an Environment= assignment; % is a specifier. */
export function systemdQuote(word: string): string {
  const escaped = word.replaceAll("%", "%%");
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/** POSIX shell quoting for the cron command line; cron itself treats % as a newline. */
export function shellQuote(word: string): string {
  const quoted = /^[A-Za-z0-9_@+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
  return quoted.replaceAll("%", "\\%");
}

export function renderService(template: string, inputs: ScheduleInputs): string {
  const environment = Object.entries(inputs.environment).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `Environment=${systemdQuote(`${k}=${v}`)}`).join("\n");
  return fill(template, { app: inputs.app, appDir: inputs.appDir.replaceAll("%", "%%"), environment, execStart: inputs.command.map(systemdQuote).join(" ") });
}

export function renderTimer(template: string, inputs: ScheduleInputs): string {
  return fill(template, { app: inputs.app, onCalendar: inputs.onCalendar, unitName: unitName(inputs.app) });
}

/** One crontab line; `user` for system crontabs (/etc/cron.d), empty for a user's crontab. */
export function renderCronLine(template: string, inputs: ScheduleInputs, cron: string, user: string | undefined): string {
  const env = Object.entries(inputs.environment).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${shellQuote(v)}`);
  const command = `cd ${shellQuote(inputs.appDir)} && ${[...env, ...inputs.command.map(shellQuote)].join(" ")} >/dev/null 2>&1`;
  return fill(template, { cron, user: user ? `${user} ` : "", command, app: inputs.app }).trimEnd();
}

export function renderCiWorkflow(template: string, values: { app: string; cron: string; appPath: string; securityOnly: boolean }): string {
  return fill(template, { app: values.app, cron: values.cron, appPath: values.appPath, securityOnly: values.securityOnly ? " --security-only" : "" });
}
