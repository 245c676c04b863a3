/**
 * kiln config [set|unset] --env E: an environment's variables in kiln.yml, released like a promote of the live image.
 * The deploy code loads when one of these commands runs.
 */
import type { Command } from "commander";
import type { ConfigEditResult } from "../deploy/config-release.js";
import { InputError } from "../errors.js";
import type { KilnHome } from "../home.js";
import { stderrProgress } from "../progress.js";
import { appName, envOptions, printPlan, type EnvFlags } from "./deploy-commands.js";

type EditFlags = EnvFlags & { release: boolean };

async function printEdit(result: ConfigEditResult, flags: EditFlags): Promise<void> {
  if (flags.json) return void process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  const what = result.changes.length ? result.changes.join(", ") : "nothing changed";
  process.stdout.write(
    `${flags.dryRun ? "would edit" : result.written ? "edited" : "left"} ${result.file}: environments.${flags.env}.env: ${what}\n`,
  );
  if (result.release) return printPlan(result.release, false);
  if (result.nothingServes) process.stdout.write(`nothing serves in ${flags.env} yet: the next kiln promote uses the new values\n`);
  else if (!flags.release && result.changes.length)
    process.stdout.write(`not released (--no-release): kiln restart --env ${flags.env} or the next promote uses the new values\n`);
}

function editCommand(parent: Command, name: "set" | "unset", home: () => KilnHome): void {
  const cmd = parent
    .command(name)
    .description(
      name === "set" ? "set environment variables, then release the live image with them" : "remove environment variables, then release",
    )
    .argument(name === "set" ? "<KEY=VALUE...>" : "<KEY...>", name === "set" ? "variables to set" : "variables to remove");
  envOptions(cmd)
    .option("--no-release", "only edit kiln.yml")
    .option("--dry-run", "print the edit and the plan; write nothing")
    .action(async (words: string[], flags: EditFlags) => {
      if (name === "unset")
        for (const w of words) if (w.includes("=")) throw new InputError(`'${w}': kiln config unset takes names, not KEY=VALUE`);
      const [{ editConfig }, { parseAssignments }] = await Promise.all([
        import("../deploy/config-release.js"),
        import("../config/env-edit.js"),
      ]);
      const result = await editConfig({
        home: home(),
        config: flags.config,
        envName: flags.env,
        progress: stderrProgress(),
        app: await appName(flags),
        set: name === "set" ? parseAssignments(words) : {},
        unset: name === "unset" ? words : [],
        release: flags.release,
        dryRun: Boolean(flags.dryRun),
      });
      await printEdit(result, flags);
    });
}

export function registerConfigCommands(program: Command, home: () => KilnHome): void {
  // --env is required by each subcommand; here only by the listing (a required option would block `config set`).
  const config = program
    .command("config")
    .description("an environment's variables (environments.E.env in kiln.yml): list, set, unset")
    .option("--env <name>", "environment (dev, test, prod, …)")
    .option("--config <path>", "kiln.yml (or its directory) that defines the environments", ".")
    .option("--app <name>", "app name (default: from the config's directory)")
    .option("--json", "print JSON")
    .action(async (flags: Omit<EnvFlags, "env"> & { env?: string }) => {
      if (!flags.env) throw new InputError("kiln config needs --env NAME", { hint: "kiln config --env dev lists dev's variables" });
      const { listConfig } = await import("../deploy/config-release.js");
      const values = await listConfig({ config: flags.config, envName: flags.env, app: await appName({ ...flags, env: flags.env }) });
      if (flags.json) return void process.stdout.write(`${JSON.stringify(values, null, 2)}\n`);
      const keys = Object.keys(values).sort();
      if (keys.length === 0) process.stdout.write(`no variables set for ${flags.env} (kiln config set KEY=VALUE --env ${flags.env})\n`);
      for (const k of keys) process.stdout.write(`${k}=${values[k]}\n`);
    });
  editCommand(config, "set", home);
  editCommand(config, "unset", home);
}
