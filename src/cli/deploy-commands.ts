/** promote (deploy), rollback, scale, destroy, status, history: environments. */
import path from "node:path";
import type { Command } from "commander";
import { loadBakers } from "../bake/bakers.js";
import { parseCanary } from "../deploy/canary.js";
import { describeStep } from "../deploy/plan.js";
import { destroyEnv, envStatus, promote, restartEnv, rollback, scaleEnv, type PromoteResult } from "../deploy/promote.js";
import { InputError } from "../errors.js";
import type { KilnHome } from "../home.js";
import { stderrProgress } from "../progress.js";
import { loadSpec } from "../config/load.js";

export interface EnvFlags {
  env: string;
  config: string;
  app?: string;
  json?: boolean;
  dryRun?: boolean;
}

export async function appName(flags: EnvFlags): Promise<string> {
  if (flags.app) return flags.app;
  const dir = flags.config.endsWith(".yml") ? path.dirname(flags.config) : flags.config;
  try {
    return (await loadSpec(dir, {}, await loadBakers())).name;
  } catch {
    throw new InputError(`cannot tell which app's ${flags.env} environment you mean`, {
      hint: "pass --app NAME, or --config pointing at the app's directory",
    });
  }
}

export function printPlan(result: PromoteResult, json: boolean | undefined): void {
  if (json)
    return void process.stdout.write(
      `${JSON.stringify({ ...result.plan, executed: result.executed, endpoint: result.endpoint }, null, 2)}\n`,
    );
  process.stdout.write(`${result.plan.summary}\n`);
  if (!result.executed) result.plan.steps.forEach((s, i) => process.stdout.write(`  ${i + 1}. ${describeStep(s)}\n`));
  else if (result.endpoint) process.stdout.write(`serving at ${result.endpoint}\n`);
}

export function envOptions(cmd: Command): Command {
  return cmd
    .requiredOption("--env <name>", "environment (dev, test, prod, …)")
    .option("--config <path>", "kiln.yml (or its directory) that defines the environments", ".")
    .option("--app <name>", "app name (default: from the config's directory)")
    .option("--json", "print JSON");
}

export function registerDeployCommands(program: Command, home: () => KilnHome): void {
  for (const name of ["promote", "deploy"]) {
    envOptions(
      program
        .command(name)
        .description(name === "deploy" ? "alias of promote" : "release an image to an environment with a blue/green swap")
        .argument("<ref>", "name:version or sha256:…"),
    )
      .option("--dry-run", "print the plan and exit")
      .option("--force", "skip the promotion gate (logged)")
      .option("--canary <percent>", "first send this share of requests (1–50%) to the new release, watch it, then switch")
      .option("--canary-for <duration>", "how long the canary runs (90s, 5m, 1h; default 5m)")
      .action(async (ref: string, flags: EnvFlags & { force?: boolean; canary?: string; canaryFor?: string }) => {
        if (!flags.canary && flags.canaryFor !== undefined)
          throw new InputError("--canary-for needs --canary PERCENT", { hint: "for example --canary 10% --canary-for 5m" });
        const canary = flags.canary ? parseCanary(flags.canary, flags.canaryFor) : undefined;
        // Test hook: die (SIGKILL, no cleanup) right before a step kind, to prove re-runs converge.
        const dieAt = process.env.KILN_TEST_DIE_BEFORE_STEP;
        const beforeStep = dieAt
          ? async (step: { kind: string }) => {
              if (step.kind === dieAt) process.kill(process.pid, "SIGKILL");
            }
          : undefined;
        const result = await promote({
          home: home(),
          config: flags.config,
          envName: flags.env,
          progress: stderrProgress(),
          ref,
          force: Boolean(flags.force),
          dryRun: Boolean(flags.dryRun),
          ...(canary ? { canary } : {}),
          ...(beforeStep ? { beforeStep } : {}),
        });
        printPlan(result, flags.json);
      });
  }
  envOptions(program.command("rollback").description("blue/green back to the previous healthy release, or to any kept one (no rebuild)"))
    .option("--to <release>", "a kept release: its id, version, name:version or digest (kiln history --env lists them)")
    .option("--dry-run", "print the plan and exit")
    .action(async (flags: EnvFlags & { to?: string }) =>
      printPlan(
        await rollback({
          home: home(),
          config: flags.config,
          envName: flags.env,
          progress: stderrProgress(),
          app: await appName(flags),
          dryRun: Boolean(flags.dryRun),
          ...(flags.to !== undefined ? { to: flags.to } : {}),
        }),
        flags.json,
      ),
    );
  envOptions(
    program.command("restart").description("replace the live release's instances with new ones (same image and configuration, blue/green)"),
  )
    .option("--dry-run", "print the plan and exit")
    .action(async (flags: EnvFlags) =>
      printPlan(
        await restartEnv({
          home: home(),
          config: flags.config,
          envName: flags.env,
          progress: stderrProgress(),
          app: await appName(flags),
          dryRun: Boolean(flags.dryRun),
        }),
        flags.json,
      ),
    );
  envOptions(
    program.command("scale").description("change the number of instances of the live release").argument("<instances>", "instance count"),
  ).action(async (count: string, flags: EnvFlags) => {
    const instances = Number(count);
    if (!Number.isInteger(instances) || instances < 1) throw new InputError(`instances: '${count}' must be a whole number ≥ 1`);
    printPlan(
      await scaleEnv({
        home: home(),
        config: flags.config,
        envName: flags.env,
        progress: stderrProgress(),
        app: await appName(flags),
        instances,
      }),
      flags.json,
    );
  });
  envOptions(program.command("destroy").description("delete everything kiln made for the environment"))
    .option("--yes", "do not ask for confirmation")
    .action(async (flags: EnvFlags & { yes?: boolean }) => {
      if (!flags.yes)
        throw new InputError(`destroy removes every instance and the load balancer of ${flags.env}`, {
          hint: "run again with --yes to confirm",
        });
      printPlan(
        await destroyEnv({ home: home(), config: flags.config, envName: flags.env, progress: stderrProgress(), app: await appName(flags) }),
        flags.json,
      );
    });
  envOptions(
    program.command("status").description("what runs in an environment: release, image digest, instances per zone and health"),
  ).action(async (flags: EnvFlags) => {
    const status = await envStatus({
      home: home(),
      config: flags.config,
      envName: flags.env,
      progress: stderrProgress(),
      app: await appName(flags),
    });
    if (flags.json) return void process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    const where = !status.live.infrastructure
      ? "not created yet"
      : status.endpoint
        ? `serving at ${status.endpoint}`
        : "nothing serving yet";
    process.stdout.write(`${status.environment} (${status.target})  ${where}\n`);
    for (const r of status.live.releases) {
      process.stdout.write(`  ${r.serving ? "LIVE " : "     "} ${r.id}  ${r.image.ref}  ${r.image.digest.slice(0, 19)}\n`);
      for (const i of r.instances) process.stdout.write(`         ${i.id}  ${i.zone}  ${i.healthy ? "healthy" : "unhealthy"}\n`);
    }
    if (status.live.releases.length === 0) process.stdout.write("  nothing deployed\n");
    // The URL above is what kiln.yml says; until a promote fixes drift, the load balancer may answer elsewhere.
    for (const d of status.live.drift ?? []) process.stdout.write(`  drift: ${d} (kiln promote or kiln restart fixes it)\n`);
  });
  envOptions(program.command("history").description("releases of an environment with time, digest and result")).action(
    async (flags: EnvFlags) => {
      const status = await envStatus({
        home: home(),
        config: flags.config,
        envName: flags.env,
        progress: stderrProgress(),
        app: await appName(flags),
      });
      if (flags.json) return void process.stdout.write(`${JSON.stringify(status.live.history, null, 2)}\n`);
      for (const h of status.live.history)
        process.stdout.write(`${h.at}  ${h.result.padEnd(11)} ${h.image.ref.padEnd(28)} ${h.image.digest.slice(0, 19)}  ${h.release}\n`);
    },
  );
}
