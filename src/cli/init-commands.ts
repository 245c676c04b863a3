/** init: a commented starter kiln.yml for the app in a directory (its modules load when it runs). */
import type { Command } from "commander";

export function registerInitCommands(program: Command): void {
  program
    .command("init")
    .description(
      "write a commented starter kiln.yml for the app in a directory (detected baker, port, health check, a local dev environment)",
    )
    .argument("[dir]", "the app's directory", ".")
    .option("--force", "replace an existing kiln.yml")
    .option("--json", "print one JSON object with what was written")
    .action(async (dir: string, flags: { force?: boolean; json?: boolean }) => {
      const [{ loadBakers }, { initConfig }] = await Promise.all([import("../bake/bakers.js"), import("../config/init.js")]);
      const result = await initConfig(dir, { force: Boolean(flags.force) }, await loadBakers());
      if (flags.json) return void process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      process.stderr.write(
        `Wrote ${result.file}: ${result.baker} app ${result.name}, port ${result.port}, health check GET ${result.healthPath}, environment dev (local, port 8000)\n`,
      );
      if (result.problems.length > 0) {
        process.stderr.write(`Before kiln bake, fix in kiln.yml:\n${result.problems.map((p) => `  - ${p}`).join("\n")}\n`);
        return;
      }
      process.stdout.write(`Next: kiln bake${dir === "." ? "" : ` ${dir}`} && kiln run ${result.name}:${result.version}\n`);
    });
}
