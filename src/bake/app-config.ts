/**
 * The three files the init reads from the app layer: `kiln/cmd` (one argument per line),
 * `kiln/env` (NAME=value lines, the format of user-data) and `kiln/launch.conf` (sourced by
 * the init's shell as NAME='value'). The spec was validated at the edge; each writer still
 * refuses a value that could add a line (or, in launch.conf, leave its quotes).
 */
import { describeControl } from "../config/schema-messages.js";
import { KilnError } from "../errors.js";
import { assertUserDataLine } from "../run/seed.js";

export function renderCmdFile(argv: readonly string[]): string {
  return argv
    .map((arg, i) => {
      const control = describeControl(arg);
      if (control) throw new KilnError(`argument ${i} of the command ${control}: ${JSON.stringify(arg)}`, { hint: "fix cmd in kiln.yml" });
      return `${arg}\n`;
    })
    .join("");
}

export function renderEnvFile(env: Readonly<Record<string, string>>): string {
  return Object.entries(env)
    .map(([k, v]) => `${assertUserDataLine(k, v)}\n`)
    .join("");
}

export function renderLaunchConf(settings: Readonly<Record<string, string>>): string {
  return Object.entries(settings)
    .map(([k, v]) => {
      if (!/^KILN_[A-Z_]+$/.test(k) || describeControl(v) || v.includes("'")) {
        throw new KilnError(`launch setting ${k}=${JSON.stringify(v)} cannot be written as one shell assignment`);
      }
      return `${k}='${v}'\n`;
    })
    .join("");
}
