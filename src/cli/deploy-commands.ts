/**
 * promote (deploy), rollback, scale, destroy, status, history: environments. The deploy code
 * (and through it the AWS SDK) loads when one of these commands runs, not when the CLI starts.
 */
import path from "node:path";
import type { Command } from "commander";
import type { EnvStatus, PromoteResult } from "../deploy/promote.js";
import { DEGRADED_EXIT_CODE, statusExitCode } from "../deploy/status.js";
import { InputError, SpecError } from "../errors.js";
import type { KilnHome } from "../home.js";
import { stderrProgress } from "../progress.js";

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
  const [{ loadSpec }, { loadBakers }] = await Promise.all([import("../config/load.js"), import("../bake/bakers.js")]);
  try {
    return (await loadSpec(dir, {}, await loadBakers())).name;
  } catch (error) {
    // A kiln.yml with problems (a typo in environments:) says what they are, not "cannot tell which app".
    if (error instanceof SpecError) {
      const hint = "fix these and run the command again (README.md lists every setting); --app NAME names the app without reading it";
      throw new SpecError(error.source, error.problems, hint);
    }
    throw new InputError(`cannot tell which app's ${flags.env} environment you mean`, {
      hint: "pass --app NAME, or --config pointing at the app's directory",
    });
  }
}

export async function printPlan(result: PromoteResult, json: boolean | undefined): Promise<void> {
  if (json)
    return void process.stdout.write(
      `${JSON.stringify(
        { ...result.plan, executed: result.executed, endpoint: result.endpoint, ...(result.removed ? { removed: result.removed } : {}) },
        null,
        2,
      )}\n`,
    );
  process.stdout.write(`${result.plan.summary}\n`);
  const { describeStep } = await import("../deploy/plan.js");
  if (!result.executed) result.plan.steps.forEach((s, i) => process.stdout.write(`  ${i + 1}. ${describeStep(s)}\n`));
  else if (result.removed) printRemoved(result);
  else if (result.endpoint) process.stdout.write(`serving at ${result.endpoint}\n`);
}

function printRemoved(result: PromoteResult): void {
  const removed = result.removed!;
  for (const r of removed.releases)
    process.stdout.write(`removed release ${r.id} (${r.ref}, ${r.instances} instance${r.instances === 1 ? "" : "s"})\n`);
  if (removed.shared) process.stdout.write(`removed the environment's ${removed.shared}\n`);
  if (removed.logGroup)
    process.stdout.write(
      removed.logGroup.keep
        ? `kept log group ${removed.logGroup.name} and its logs\n`
        : `removed log group ${removed.logGroup.name} and its logs\n`,
    );
  if (removed.releases.length === 0 && !removed.shared)
    process.stdout.write(`nothing to remove: ${result.plan.environment} did not exist\n`);
  else if (result.plan.target === "aws") process.stdout.write("its release history went with the load balancer's tags\n");
  else process.stdout.write(`kiln history --env ${result.plan.environment} keeps its releases; kiln promote creates it again\n`);
}

/**
 * Runs a promote (or rollback) that Ctrl-C/SIGTERM stops at a safe point. The interruption is
 * reported like any error (and as JSON with --json); then kiln exits at once, because the wait
 * it left behind may still hold a timer.
 */
async function interruptible(json: boolean | undefined, work: (signal: AbortSignal) => Promise<PromoteResult>): Promise<PromoteResult> {
  const { catchStopSignals, PromoteInterrupted } = await import("../deploy/interrupt.js");
  const stop = catchStopSignals((message) => process.stderr.write(`${message}\n`));
  try {
    return await work(stop.signal);
  } catch (error) {
    if (error instanceof PromoteInterrupted) {
      if (json) process.stdout.write(`${JSON.stringify(error.toJSON(), null, 2)}\n`);
      // After main() has printed the error and returned the exit code (microtasks come first).
      setImmediate(() => process.exit(error.exitCode));
    }
    throw error;
  } finally {
    stop.dispose();
  }
}

export function envOptions(cmd: Command): Command {
  return cmd
    .requiredOption("--env <name>", "environment (dev, test, prod, …)")
    .option("--config <path>", "kiln.yml (or its directory) that defines the environments", ".")
    .option(
      "--app <name>",
      "app name (default: name: in the --config directory's kiln.yml, else its package.json name, else the directory's name)",
    )
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
        const { parseCanary } = await import("../deploy/canary.js");
        const canary = flags.canary ? parseCanary(flags.canary, flags.canaryFor) : undefined;
        const { promote } = await import("../deploy/promote.js");
        // Test hook: die (SIGKILL, no cleanup) right before a step kind, to prove re-runs converge.
        const dieAt = process.env.KILN_TEST_DIE_BEFORE_STEP;
        const beforeStep = dieAt
          ? async (step: { kind: string }) => {
              if (step.kind === dieAt) process.kill(process.pid, "SIGKILL");
            }
          : undefined;
        const result = await interruptible(flags.json, (signal) =>
          promote({
            home: home(),
            config: flags.config,
            envName: flags.env,
            progress: stderrProgress(),
            ref,
            force: Boolean(flags.force),
            dryRun: Boolean(flags.dryRun),
            signal,
            ...(canary ? { canary } : {}),
            ...(beforeStep ? { beforeStep } : {}),
          }),
        );
        await printPlan(result, flags.json);
      });
  }
  envOptions(program.command("rollback").description("blue/green back to the previous healthy release, or to any kept one (no rebuild)"))
    .option("--to <release>", "a kept release: its id, version, name:version or digest (kiln history --env lists them)")
    .option("--dry-run", "print the plan and exit")
    .action(async (flags: EnvFlags & { to?: string }) => {
      const app = await appName(flags);
      const { rollback } = await import("../deploy/promote.js");
      const result = await interruptible(flags.json, (signal) =>
        rollback({
          home: home(),
          config: flags.config,
          envName: flags.env,
          progress: stderrProgress(),
          app,
          dryRun: Boolean(flags.dryRun),
          signal,
          ...(flags.to !== undefined ? { to: flags.to } : {}),
        }),
      );
      await printPlan(result, flags.json);
    });
  envOptions(
    program.command("restart").description("replace the live release's instances with new ones (same image and configuration, blue/green)"),
  )
    .option("--dry-run", "print the plan and exit")
    .action(async (flags: EnvFlags) => {
      const app = await appName(flags);
      const { restartEnv } = await import("../deploy/promote.js");
      const result = await interruptible(flags.json, (signal) =>
        restartEnv({
          home: home(),
          config: flags.config,
          envName: flags.env,
          progress: stderrProgress(),
          app,
          dryRun: Boolean(flags.dryRun),
          signal,
        }),
      );
      await printPlan(result, flags.json);
    });
  envOptions(
    program.command("scale").description("change the number of instances of the live release").argument("<instances>", "instance count"),
  ).action(async (count: string, flags: EnvFlags) => {
    const instances = Number(count);
    if (!Number.isInteger(instances) || instances < 1) throw new InputError(`instances: '${count}' must be a whole number ≥ 1`);
    const { scaleEnv } = await import("../deploy/promote.js");
    await printPlan(
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
    .option("--keep-logs", "keep the environment's CloudWatch Logs group and its logs (AWS)")
    .action(async (flags: EnvFlags & { yes?: boolean; keepLogs?: boolean }) => {
      if (!flags.yes)
        throw new InputError(`destroy removes every instance and the load balancer of ${flags.env}`, {
          hint: "run again with --yes to confirm",
        });
      const { destroyEnv } = await import("../deploy/promote.js");
      await printPlan(
        await destroyEnv({
          home: home(),
          config: flags.config,
          envName: flags.env,
          progress: stderrProgress(),
          app: await appName(flags),
          keepLogs: flags.keepLogs === true,
        }),
        flags.json,
      );
    });
  envOptions(
    program
      .command("status")
      .description(
        `what runs in an environment: release, image digest, instances per zone and health; exits ${DEGRADED_EXIT_CODE} when degraded or not serving`,
      ),
  ).action(async (flags: EnvFlags) => {
    const { envStatus } = await import("../deploy/promote.js");
    const status = await envStatus({
      home: home(),
      config: flags.config,
      envName: flags.env,
      progress: stderrProgress(),
      app: await appName(flags),
    });
    if (flags.json) process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    else printStatus(status);
    process.exitCode = statusExitCode(status.state);
  });
  envOptions(program.command("history").description("releases of an environment with time, digest and result")).action(
    async (flags: EnvFlags) => {
      const { envStatus } = await import("../deploy/promote.js");
      const status = await envStatus({
        home: home(),
        config: flags.config,
        envName: flags.env,
        progress: stderrProgress(),
        app: await appName(flags),
      });
      if (flags.json) return void process.stdout.write(`${JSON.stringify(status.live.history, null, 2)}\n`);
      for (const h of status.live.history)
        process.stdout.write(
          `${h.at}  ${h.result.padEnd(11)} ${h.image.ref.padEnd(28)} ${h.image.digest.slice(0, 19)}  ` +
            `${h.result === "destroyed" ? `environment destroyed (last release ${h.release})` : h.release}\n`,
        );
    },
  );
}

const STATE_WORDS = {
  live: "serving",
  degraded: "DEGRADED",
  "not-serving": "NOT SERVING",
  "not-deployed": "nothing deployed",
  destroyed: "destroyed",
} as const;

function printStatus(status: EnvStatus): void {
  const where = status.endpoint && (status.state === "live" || status.state === "degraded") ? ` at ${status.endpoint}` : "";
  process.stdout.write(`${status.environment} (${status.target})  ${STATE_WORDS[status.state]}${where}\n`);
  for (const p of status.problems) process.stdout.write(`  ! ${p}\n`);
  // The URL above is what kiln.yml says; until a promote fixes drift, the load balancer may answer elsewhere.
  for (const d of status.live.drift ?? []) process.stdout.write(`  drift: ${d} (kiln promote or kiln restart fixes it)\n`);
  for (const r of status.releases) {
    const label = r.state === "live" ? "LIVE " : r.state === "degraded" ? "DEGR " : "     ";
    process.stdout.write(
      `  ${label} ${r.id}  ${r.image.ref}  ${r.image.digest.slice(0, 19)}  ${r.instances.length} of ${r.desired} instances running\n`,
    );
    for (const i of r.instances)
      process.stdout.write(`         ${i.id}  ${i.zone}  ${i.healthy ? "healthy" : "unhealthy"}${i.health ? `  (${i.health})` : ""}\n`);
  }
  if (status.state === "degraded" || status.state === "not-serving") {
    const serving = status.releases.find((r) => r.serving) ?? status.releases.at(-1);
    if (serving)
      process.stdout.write(
        `  hint: kiln promote ${serving.image.ref} --env ${status.environment} starts replacements for missing instances\n`,
      );
  }
  if (status.state === "destroyed")
    process.stdout.write(`  kiln destroy removed it; kiln history --env ${status.environment} lists its releases\n`);
}
