/**
 * outdated, rebake, pipeline run|show, schedule install|show|remove|run-now: keeping images patched.
 * Their modules (package sources, deploys, the AWS SDK) load when one of these commands runs.
 */
import type { Command } from "commander";
import type { KilnHome } from "../home.js";
import type { PackageUpdate } from "../packages/outdated.js";
import type { PipelineReport } from "../pipeline/run.js";
import { stderrProgress } from "../progress.js";
import { UP_TO_DATE_EXIT_CODE } from "../rebake/exit-codes.js";
import { describeMove } from "./image-commands.js";

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function describeUpdate(u: PackageUpdate): string {
  const to = u.to.name === u.name ? u.to.version : `${u.to.name} ${u.to.version}`;
  return `${u.name.padEnd(34)} ${u.from.version} → ${to}  (${u.to.source})${u.security ? "  SECURITY" : ""}${u.cves.length ? `  ${u.cves.join(" ")}` : ""}`;
}

function printPipeline(report: PipelineReport): void {
  process.stdout.write(
    `pipeline ${report.run} for ${report.app}: ${report.status}${report.stoppedAt ? ` at ${report.stoppedAt}` : ""}${report.image ? `  image ${report.image.ref} (${report.image.digest.slice(0, 19)})` : ""}\n`,
  );
  for (const s of report.steps)
    process.stdout.write(
      `  ${s.status.padEnd(8)} ${(s.kind + (s.stage ? ` ${s.stage}` : "")).padEnd(18)} ${s.seconds.toFixed(1).padStart(7)}s  ${s.detail.split("\n")[0]}\n`,
    );
  process.stdout.write(`  log: ${report.log}\n`);
}

async function setPipelineExit(report: PipelineReport): Promise<void> {
  const { WAITING_FOR_APPROVAL_EXIT_CODE } = await import("../pipeline/run.js");
  if (report.status === "failed") process.exitCode = 7;
  else if (report.status === "waiting-approval") process.exitCode = WAITING_FOR_APPROVAL_EXIT_CODE;
}

export function registerMaintenanceCommands(program: Command, home: () => KilnHome): void {
  program
    .command("outdated")
    .description(
      `refresh the package indexes and list newer base packages per image (exit 0: a rebake is needed; ${UP_TO_DATE_EXIT_CODE}: everything is current)`,
    )
    .option("--config <path>", "the app's directory (or kiln.yml): its newest image and the images live in its environments", ".")
    .option("--all", "check every image in the local store")
    .option("--security-only", "only security updates make the exit code say 'rebake'")
    .option("--no-refresh", "do not run apt-get update first")
    .option("--no-cves", "do not download newer packages to read the CVEs they fix")
    .option("--no-envs", "do not look at what runs in the environments")
    .option("--json", "print JSON")
    .action(
      async (flags: {
        config: string;
        all?: boolean;
        securityOnly?: boolean;
        refresh: boolean;
        cves: boolean;
        envs: boolean;
        json?: boolean;
      }) => {
        const { outdated } = await import("../rebake/outdated-images.js");
        const report = await outdated({
          home: home(),
          config: flags.config,
          progress: stderrProgress(),
          all: Boolean(flags.all),
          securityOnly: Boolean(flags.securityOnly),
          refresh: flags.refresh,
          cves: flags.cves,
          environments: flags.envs,
        });
        process.exitCode = report.rebakeNeeded ? 0 : UP_TO_DATE_EXIT_CODE;
        if (flags.json) return printJson(report);
        for (const note of report.notes) process.stderr.write(`note: ${note}\n`);
        for (const image of report.images) {
          process.stdout.write(`${image.ref}  ${image.digest.slice(0, 19)}  [${image.where.join(", ")}]\n`);
          if (image.updates.length === 0) process.stdout.write("  up to date\n");
          for (const u of image.updates) process.stdout.write(`  ${describeUpdate(u)}\n`);
        }
        if (report.images.length === 0) process.stdout.write("no images to check\n");
        process.stdout.write(
          report.rebakeNeeded
            ? `${report.updates} update(s), ${report.securityUpdates} security: rebake needed (kiln rebake REF)\n`
            : "nothing to rebake\n",
        );
      },
    );

  program
    .command("rebake")
    .description("same app bytes on updated base packages: new version label, new digest, kiln.lock updated")
    .argument("<ref>", "name:version or sha256:… of the image whose app layer is reused")
    .option("--config <path>", "the app's directory (kiln.yml, kiln.lock)", ".")
    .option("--version <label>", 'version label (default: pipeline.rebakeVersion, "{version}-r{n}")')
    .option("--force", "rebake even if no base package has a newer version")
    .option("--dry-run", "only list the newer base packages")
    .option("--json", "print JSON")
    .action(async (ref: string, flags: { config: string; version?: string; force?: boolean; dryRun?: boolean; json?: boolean }) => {
      const progress = stderrProgress();
      const [{ loadSpec }, { loadBakers }, { loadPipeline }, { appDirOf, rebake }, { describeChange }] = await Promise.all([
        import("../config/load.js"),
        import("../bake/bakers.js"),
        import("../pipeline/config.js"),
        import("../rebake/rebake.js"),
        import("../packages/outdated.js"),
      ]);
      const app = (await loadSpec(appDirOf(flags.config), {}, await loadBakers()).catch(() => undefined))?.name;
      const versionFormat = app
        ? await loadPipeline(flags.config, app).then(
            (p) => p.rebakeVersion,
            () => undefined,
          )
        : undefined;
      const r = await rebake({
        home: home(),
        ref,
        config: flags.config,
        progress,
        force: Boolean(flags.force),
        dryRun: Boolean(flags.dryRun),
        ...(flags.version ? { version: flags.version } : {}),
        ...(versionFormat ? { versionFormat } : {}),
      });
      const moved = r.image ? describeMove(r.image) : undefined;
      if (moved) process.stderr.write(`${moved}\n`);
      if (flags.json) {
        return printJson({
          rebaked: r.rebaked,
          from: { ref: r.from.ref, digest: r.from.digest },
          image: r.image ? { ref: r.image.ref, digest: r.image.digest, disk: r.image.disk } : undefined,
          updates: r.updates,
          changes: r.changes,
          appLayerIdentical: r.appLayerIdentical,
          lockChanged: r.lockChanged,
          seconds: Number(r.seconds.toFixed(3)),
        });
      }
      if (!r.rebaked) {
        if (r.updates.length === 0)
          process.stdout.write(`${r.from.ref}: every base package is current; nothing to rebake (--force to rebake anyway)\n`);
        for (const u of r.updates) process.stdout.write(`  ${describeUpdate(u)}\n`);
        return;
      }
      process.stdout.write(
        `${r.from.ref} → ${r.image!.ref}  ${r.image!.digest}  (${r.seconds.toFixed(2)}s, app layer ${r.appLayerIdentical ? "byte-identical" : "CHANGED"})\n`,
      );
      for (const c of r.changes) process.stdout.write(`  ${describeChange(c)}\n`);
      if (r.lockChanged) process.stdout.write("  kiln.lock updated\n");
    });

  const pipeline = program.command("pipeline").description("the declared promotion pipeline (kiln.yml pipeline:)");
  pipeline
    .command("run")
    .description("rebake the newest image (or take --image) and promote it through each stage, stopping at the first failed gate")
    .option("--config <path>", "the app's directory (or kiln.yml)", ".")
    .option("--image <ref>", "promote this image instead of rebaking")
    .option("--approve <env...>", "approve these stages (manual approval)")
    .option("--json", "print the run report as JSON")
    .action(async (flags: { config: string; image?: string; approve?: string[]; json?: boolean }) => {
      const { runPipeline } = await import("../pipeline/run.js");
      const report = await runPipeline({
        home: home(),
        config: flags.config,
        progress: stderrProgress(),
        ...(flags.image ? { image: flags.image } : {}),
        approve: flags.approve ?? [],
      });
      await setPipelineExit(report);
      if (flags.json) return printJson(report);
      printPipeline(report);
    });
  pipeline
    .command("show")
    .description("the stages and the latest runs")
    .option("--config <path>", "the app's directory (or kiln.yml)", ".")
    .option("--json", "print JSON")
    .action(async (flags: { config: string; json?: boolean }) => {
      const [{ loadSpec }, { loadBakers }, { loadPipeline }, { appDirOf }, { pipelineRuns }] = await Promise.all([
        import("../config/load.js"),
        import("../bake/bakers.js"),
        import("../pipeline/config.js"),
        import("../rebake/rebake.js"),
        import("../pipeline/run.js"),
      ]);
      const app = (await loadSpec(appDirOf(flags.config), {}, await loadBakers())).name;
      const config = await loadPipeline(flags.config, app);
      const runs = await pipelineRuns(home(), app);
      if (flags.json)
        return printJson({ app, stages: config.stages, rebakeVersion: config.rebakeVersion, schedule: config.schedule, runs });
      process.stdout.write(
        `${app}: ${config.stages.map((s) => `${s.env}${s.soakSeconds ? ` (soak ${s.soakSeconds}s)` : ""}${s.approval ? " [approval]" : ""}${s.canary ? ` [canary ${s.canary.percent}% for ${s.canary.seconds}s]` : ""}`).join(" → ")}\n`,
      );
      for (const r of runs)
        process.stdout.write(
          `  ${r.startedAt}  ${r.status.padEnd(16)} ${r.image?.ref ?? "-"}${r.stoppedAt ? `  stopped at ${r.stoppedAt}` : ""}\n`,
        );
      if (runs.length === 0) process.stdout.write("  no runs yet\n");
    });

  const schedule = program
    .command("schedule")
    .description("run `kiln outdated && kiln pipeline run` on a schedule (systemd timer or cron)");
  schedule
    .command("install")
    .description("write (and, in systemd's own directory, enable) a timer + service, or a crontab line where systemd is absent")
    .option("--config <path>", "the app's directory (or kiln.yml); pipeline.schedule sets the calendar", ".")
    .option("--unit-dir <dir>", "write the unit files here and do not activate them")
    .option("--cron <file>", "add a crontab line to this file instead of systemd units")
    .option("--cron-user <user>", "user column for a system crontab (/etc/cron.d)")
    .option("--ci <path>", "also write a CI workflow (GitHub Actions) to this path")
    .option("--json", "print JSON")
    .action(async (flags: { config: string; unitDir?: string; cron?: string; cronUser?: string; ci?: string; json?: boolean }) => {
      const { installSchedule } = await import("../schedule/schedule.js");
      const record = await installSchedule({
        home: home(),
        config: flags.config,
        log: (m) => process.stderr.write(`${m}\n`),
        ...(flags.unitDir ? { unitDir: flags.unitDir } : {}),
        ...(flags.cron ? { cronFile: flags.cron } : {}),
        ...(flags.cronUser ? { cronUser: flags.cronUser } : {}),
        ...(flags.ci ? { ci: flags.ci } : {}),
      });
      if (flags.json) return printJson(record);
      process.stdout.write(
        `scheduled ${record.app} (${record.kind}, ${record.kind === "cron" ? record.cronExpression : record.onCalendar}):\n${record.createdFiles.map((f) => `  ${f}\n`).join("")}${record.cron ? `  line in ${record.cron.file}\n` : ""}`,
      );
    });
  schedule
    .command("show")
    .description("the installed units or crontab line, the next run, and the last lines of the scheduled runs' log")
    .option("--config <path>", "the app's directory (or kiln.yml)", ".")
    .option("--lines <n>", "log lines to show", "20")
    .option("--json", "print JSON")
    .action(async (flags: { config: string; lines: string; json?: boolean }) => {
      const { showSchedule } = await import("../schedule/schedule.js");
      const show = await showSchedule({ home: home(), config: flags.config, lines: Number(flags.lines) || 20 });
      if (flags.json) return printJson(show);
      const i = show.installed;
      process.stdout.write(
        i
          ? `${show.app}: ${i.kind} schedule installed ${i.installedAt}\n${i.createdFiles.map((f) => `  ${f}\n`).join("")}${i.cron ? `  ${i.cron.file}: ${i.cron.line}\n` : ""}`
          : `${show.app}: no schedule installed (kiln schedule install)\n`,
      );
      if (show.nextRun) process.stdout.write(`next run: ${show.nextRun}\n`);
      process.stdout.write(`log: ${show.log}\n${show.lastLines.map((l) => `  ${l}\n`).join("") || "  (no scheduled runs yet)\n"}`);
    });
  schedule
    .command("remove")
    .description("remove exactly what kiln schedule install added")
    .option("--config <path>", "the app's directory (or kiln.yml)", ".")
    .option("--json", "print JSON")
    .action(async (flags: { config: string; json?: boolean }) => {
      const { removeSchedule } = await import("../schedule/schedule.js");
      const record = await removeSchedule({ home: home(), config: flags.config, log: (m) => process.stderr.write(`${m}\n`) });
      if (flags.json) return printJson({ removed: record });
      process.stdout.write(`removed the ${record.kind} schedule of ${record.app}\n`);
    });
  schedule
    .command("run-now")
    .description("what the timer runs: kiln outdated && kiln pipeline run, logged to $KILN_HOME/schedule/<app>.log")
    .option("--config <path>", "the app's directory (or kiln.yml)", ".")
    .option("--security-only", "only security updates trigger the pipeline")
    .option("--json", "print JSON")
    .action(async (flags: { config: string; securityOnly?: boolean; json?: boolean }) => {
      const { runScheduled } = await import("../schedule/run-now.js");
      const result = await runScheduled({
        home: home(),
        config: flags.config,
        progress: stderrProgress(),
        ...(flags.securityOnly ? { securityOnly: true } : {}),
      });
      if (result.pipeline) await setPipelineExit(result.pipeline);
      if (flags.json) return printJson(result);
      if (result.outcome === "up-to-date") process.stdout.write("up to date: nothing to rebake\n");
      if (result.pipeline) printPipeline(result.pipeline);
    });
}
