/** The kiln command line: thin commander wiring; each command calls one function and prints. */
import { Command, Option } from "commander";
import { KilnError } from "../errors.js";
import { fsInputError } from "../fs-errors.js";
import { setDebug } from "../exec.js";
import { openKilnHome } from "../home.js";
import { registerBakeCommands } from "./bake-commands.js";
import { registerRunCommands } from "./run-commands.js";
import { registerExportCommands } from "./export-commands.js";
import { registerAwsCommands } from "./aws-commands.js";
import { registerDeployCommands } from "./deploy-commands.js";
import { registerConfigCommands } from "./config-commands.js";
import { registerMaintenanceCommands } from "./maintenance-commands.js";
import { registerInitCommands } from "./init-commands.js";
import { registerKernelCommands } from "./kernel-commands.js";

export function buildProgram(): Command {
  const program = new Command("kiln")
    .description("Bake an app into a minimal bootable machine image, boot it locally, ship it.")
    .version("0.1.0")
    .addOption(new Option("--debug", "print commands as they run and stack traces on errors"))
    .hook("preAction", (cmd) => setDebug(Boolean(cmd.opts().debug)))
    .enablePositionalOptions()
    // Subcommands copy these two settings when they are created: a usage error in any of them
    // prints that command's help and reaches reportError (exit 2) instead of exiting with 1.
    .showHelpAfterError()
    .exitOverride();
  registerInitCommands(program);
  registerBakeCommands(program, () => openKilnHome());
  registerRunCommands(program, () => openKilnHome());
  registerExportCommands(program, () => openKilnHome());
  registerAwsCommands(program, () => openKilnHome());
  registerDeployCommands(program, () => openKilnHome());
  registerConfigCommands(program, () => openKilnHome());
  registerMaintenanceCommands(program, () => openKilnHome());
  registerKernelCommands(program, () => openKilnHome());
  // A mistyped command (kiln promot) gets commander's "Did you mean promote?" and a pointer,
  // not the whole list of commands.
  program.showHelpAfterError("(kiln --help lists the commands)");
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (error) {
    return reportError(error, argv.includes("--debug"));
  }
}

function reportError(thrown: unknown, debug: boolean): number {
  const e = thrown as { code?: string; exitCode?: number };
  if (typeof e.code === "string" && e.code.startsWith("commander.")) {
    return e.code === "commander.helpDisplayed" || e.code === "commander.version" ? 0 : 2;
  }
  // A file kiln could not read (permissions, a path too long) is the user's to fix, wherever it was met.
  const error = fsInputError(thrown) ?? thrown;
  if (error instanceof KilnError) {
    process.stderr.write(`\nkiln: error: ${error.message}\n`);
    if (error.hint) process.stderr.write(`  hint: ${error.hint}\n`);
    if (debug && error.stack) process.stderr.write(`${error.stack}\n`);
    return error.exitCode;
  }
  process.stderr.write(`\nkiln: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
  return 70;
}
