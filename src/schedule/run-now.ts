/**
 * What the timer (or cron line) runs: `kiln outdated && kiln pipeline run`, in one process,
 * with every step also appended to $KILN_HOME/schedule/<app>.log so `kiln schedule show`
 * can tell what the last scheduled runs did.
 */
import type { ProviderFactory } from "../deploy/promote.js";
import type { KilnHome } from "../home.js";
import { runPipeline, type PipelineReport } from "../pipeline/run.js";
import { formatSeconds, type Progress } from "../progress.js";
import { outdated, type OutdatedReport } from "../rebake/outdated-images.js";
import { scheduledApp, scheduleLogger } from "./schedule.js";

export interface ScheduledRunResult {
  readonly outcome: "up-to-date" | PipelineReport["status"] | "error";
  readonly outdated: OutdatedReport | undefined;
  readonly pipeline: PipelineReport | undefined;
}

export async function runScheduled(opts: {
  home: KilnHome;
  config: string;
  securityOnly?: boolean;
  progress: Progress;
  providers?: ProviderFactory;
}): Promise<ScheduledRunResult> {
  const { app, schedule } = await scheduledApp(opts.config);
  const logger = scheduleLogger(opts.home, app);
  let pending = Promise.resolve();
  const log = (message: string) => {
    pending = pending.then(() => logger.line(message)).catch(() => undefined);
  };
  const progress: Progress = {
    async step(label, work, describe) {
      const started = performance.now();
      try {
        const result = await opts.progress.step(label, work, describe);
        const detail = describe ? describe(result) : "";
        log(`  ${label} ${formatSeconds(performance.now() - started)}${detail ? `  ${detail}` : ""}`);
        return result;
      } catch (error) {
        log(`  ${label} failed: ${(error as Error).message.split("\n")[0]}`);
        throw error;
      }
    },
    info(message) {
      opts.progress.info(message);
      log(message);
    },
  };
  const securityOnly = opts.securityOnly ?? schedule.securityOnly;
  log(`scheduled run for ${app}: kiln outdated${securityOnly ? " --security-only" : ""} && kiln pipeline run`);
  try {
    const report = await outdated({
      home: opts.home,
      config: opts.config,
      progress,
      securityOnly,
      ...(opts.providers ? { providers: opts.providers } : {}),
    });
    for (const note of report.notes) log(`note: ${note}`);
    for (const image of report.images) {
      for (const u of image.updates)
        log(
          `outdated: ${image.ref} ${u.name} ${u.from.version} → ${u.to.name === u.name ? "" : `${u.to.name} `}${u.to.version}${u.security ? " [security]" : ""}${u.cves.length ? ` ${u.cves.join(" ")}` : ""}`,
        );
    }
    if (!report.rebakeNeeded) {
      log(`up to date: no ${securityOnly ? "security " : ""}updates for the base packages; nothing to rebake`);
      await pending;
      return { outcome: "up-to-date", outdated: report, pipeline: undefined };
    }
    const pipeline = await runPipeline({
      home: opts.home,
      config: opts.config,
      progress,
      ...(opts.providers ? { providers: opts.providers } : {}),
    });
    log(
      `pipeline ${pipeline.run}: ${pipeline.status}${pipeline.stoppedAt ? ` at ${pipeline.stoppedAt}` : ""}${pipeline.image ? ` (${pipeline.image.ref})` : ""}; log ${pipeline.log}`,
    );
    await pending;
    return { outcome: pipeline.status, outdated: report, pipeline };
  } catch (error) {
    log(`error: ${(error as Error).message}`);
    await pending;
    throw error;
  }
}
