/**
 * kiln pipeline run: one image (a fresh rebake, or the one given) through the declared stages
 * in order — promote (the environment's own health gate), then soak with periodic health
 * checks, then the next stage; a stage marked `approval` waits for --approve. The first
 * failure stops the run. Every step is appended to a run log under
 * $KILN_HOME/pipelines/<app>/<run>.json as it happens; each environment keeps its own history.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { loadBakers } from "../bake/bakers.js";
import { defaultProviders, envStatus, promote, rollback, type ProviderFactory } from "../deploy/promote.js";
import { KilnError } from "../errors.js";
import { writePrivateFileAtomic } from "../private-fs.js";
import type { KilnHome } from "../home.js";
import { ImageStore, type StoredImage } from "../image/store.js";
import type { Progress } from "../progress.js";
import { rebake, appDirOf, type RebakeResult } from "../rebake/rebake.js";
import { probeHttp } from "../run/health.js";
import { loadEnvironment } from "../config/environments.js";
import { loadSpec } from "../config/load.js";
import { loadPipeline, type PipelineConfig, type PipelineStage } from "./config.js";

export type PipelineStepKind = "rebake" | "image" | "approval" | "promote" | "soak" | "rollback";

export interface PipelineStep {
  readonly kind: PipelineStepKind;
  readonly stage?: string;
  readonly status: "ok" | "failed" | "waiting" | "skipped";
  readonly startedAt: string;
  readonly seconds: number;
  readonly detail: string;
}

export interface PipelineReport {
  readonly app: string;
  readonly run: string;
  readonly startedAt: string;
  finishedAt: string | undefined;
  image: { readonly ref: string; readonly digest: string } | undefined;
  status: "running" | "succeeded" | "failed" | "waiting-approval";
  /** The stage where the run stopped (failed or waiting). */
  stoppedAt: string | undefined;
  readonly stages: readonly string[];
  readonly steps: PipelineStep[];
  readonly log: string;
}

export interface PipelineRunOptions {
  readonly home: KilnHome;
  readonly config: string;
  readonly progress: Progress;
  /** Promote this image instead of rebaking. */
  readonly image?: string;
  /** Stages (environment names) approved for this run. */
  readonly approve?: readonly string[];
  readonly providers?: ProviderFactory;
  /** Injectable for tests; default: kiln rebake of the app's newest image. */
  readonly rebake?: (ref: string, pipeline: PipelineConfig) => Promise<RebakeResult>;
  readonly sleep?: (ms: number) => Promise<void>;
}

export class PipelineFailedError extends KilnError {
  override readonly exitCode = 7;
}

/** A run that stopped at a stage waiting for approval. */
export const WAITING_FOR_APPROVAL_EXIT_CODE = 12;

export function pipelinesDir(home: KilnHome, app: string): string {
  return path.join(home.root, "pipelines", app);
}

export async function runPipeline(opts: PipelineRunOptions): Promise<PipelineReport> {
  const appDir = appDirOf(opts.config);
  const spec = await loadSpec(appDir, {}, await loadBakers());
  const pipeline = await loadPipeline(opts.config, spec.name);
  const startedAt = new Date();
  const run = startedAt.toISOString().replace(/[:.]/g, "-");
  const report: PipelineReport = {
    app: spec.name,
    run,
    startedAt: startedAt.toISOString(),
    finishedAt: undefined,
    image: undefined,
    status: "running",
    stoppedAt: undefined,
    stages: pipeline.stages.map((s) => s.env),
    steps: [],
    log: path.join(pipelinesDir(opts.home, spec.name), `${run}.json`),
  };
  const save = () => writePrivateFileAtomic(report.log, `${JSON.stringify(report, null, 2)}\n`);
  const record = async (step: Omit<PipelineStep, "seconds" | "startedAt">, began: number, at: Date) => {
    report.steps.push({ ...step, startedAt: at.toISOString(), seconds: Number(((performance.now() - began) / 1000).toFixed(3)) });
    opts.progress.info(
      `pipeline: ${step.kind}${step.stage ? ` ${step.stage}` : ""}: ${step.status}${step.detail ? ` — ${step.detail}` : ""}`,
    );
    await save();
  };
  const stop = async (status: PipelineReport["status"], stage: string | undefined) => {
    report.status = status;
    report.stoppedAt = stage;
    report.finishedAt = new Date().toISOString();
    await save();
    return report;
  };
  await save();

  const image = await sourceImage(opts, pipeline, spec.name, record);
  if (!image) return stop("failed", undefined);
  report.image = { ref: image.ref, digest: image.digest };
  await save();

  for (const stage of pipeline.stages) {
    if (stage.approval && !(opts.approve ?? []).includes(stage.env)) {
      await record(
        {
          kind: "approval",
          stage: stage.env,
          status: "waiting",
          detail: `waiting for approval: kiln pipeline run --image ${image.ref} --approve ${stage.env}`,
        },
        performance.now(),
        new Date(),
      );
      return stop("waiting-approval", stage.env);
    }
    if (stage.approval)
      await record({ kind: "approval", stage: stage.env, status: "ok", detail: "approved with --approve" }, performance.now(), new Date());
    const ok = await runStage(opts, stage, image, appDir, record);
    if (!ok) return stop("failed", stage.env);
  }
  return stop("succeeded", undefined);
}

type Recorder = (step: Omit<PipelineStep, "seconds" | "startedAt">, began: number, at: Date) => Promise<void>;

async function sourceImage(
  opts: PipelineRunOptions,
  pipeline: PipelineConfig,
  app: string,
  record: Recorder,
): Promise<StoredImage | undefined> {
  const store = new ImageStore(opts.home);
  const began = performance.now();
  const at = new Date();
  if (opts.image) {
    const image = await store.resolve(opts.image);
    await record({ kind: "image", status: "ok", detail: `${image.ref} (${image.digest.slice(0, 19)}) as given` }, began, at);
    return image;
  }
  const newest = (await store.list())
    .filter((i) => i.manifest.name === app)
    .sort((a, b) => a.manifest.bakedAt.localeCompare(b.manifest.bakedAt))
    .at(-1);
  if (!newest) {
    await record(
      { kind: "rebake", status: "failed", detail: `no image of ${app} in the store to rebake: kiln bake first, or pass --image` },
      began,
      at,
    );
    return undefined;
  }
  try {
    const result = opts.rebake
      ? await opts.rebake(newest.ref, pipeline)
      : await rebake({
          home: opts.home,
          ref: newest.ref,
          config: opts.config,
          progress: opts.progress,
          versionFormat: pipeline.rebakeVersion,
        });
    const image = result.image ?? result.from;
    const detail = result.rebaked
      ? `${result.from.ref} → ${image.ref} (${image.digest.slice(0, 19)}): ${result.changes.map((c) => `${c.name} ${c.from ?? "-"} → ${c.to ?? "-"}`).join(", ")}`
      : `no newer base packages; promoting ${image.ref} (${image.digest.slice(0, 19)})`;
    await record({ kind: "rebake", status: "ok", detail }, began, at);
    return image;
  } catch (error) {
    await record({ kind: "rebake", status: "failed", detail: (error as Error).message }, began, at);
    return undefined;
  }
}

async function runStage(
  opts: PipelineRunOptions,
  stage: PipelineStage,
  image: StoredImage,
  appDir: string,
  record: Recorder,
): Promise<boolean> {
  const envOpts = {
    home: opts.home,
    config: appDir,
    envName: stage.env,
    progress: opts.progress,
    ...(opts.providers ? { providers: opts.providers } : {}),
  };
  let began = performance.now();
  let at = new Date();
  let alreadyLive = false;
  try {
    const before = await envStatus({ ...envOpts, app: image.manifest.name });
    alreadyLive = before.live.releases.some((r) => r.serving && r.image.digest === image.digest);
    const result = await promote({ ...envOpts, ref: image.digest, ...(stage.canary ? { canary: stage.canary } : {}) });
    await record(
      {
        kind: "promote",
        stage: stage.env,
        status: "ok",
        detail: alreadyLive
          ? `${image.ref} was already live`
          : `${result.plan.summary}${result.endpoint ? `; serving at ${result.endpoint}` : ""}`,
      },
      began,
      at,
    );
  } catch (error) {
    await record({ kind: "promote", stage: stage.env, status: "failed", detail: (error as Error).message }, began, at);
    return false;
  }
  if (stage.soakSeconds === 0 || alreadyLive) return true;
  began = performance.now();
  at = new Date();
  const problem = await soak(opts, stage, image, envOpts);
  if (!problem) {
    await record(
      {
        kind: "soak",
        stage: stage.env,
        status: "ok",
        detail: `healthy for ${stage.soakSeconds}s (checked every ${stage.checkIntervalSeconds}s)`,
      },
      began,
      at,
    );
    return true;
  }
  await record({ kind: "soak", stage: stage.env, status: "failed", detail: problem }, began, at);
  began = performance.now();
  at = new Date();
  try {
    await rollback({ ...envOpts, app: image.manifest.name });
    await record({ kind: "rollback", stage: stage.env, status: "ok", detail: "back to the previous release" }, began, at);
  } catch (error) {
    await record({ kind: "rollback", stage: stage.env, status: "failed", detail: (error as Error).message }, began, at);
  }
  return false;
}

/** Consecutive failed checks that fail a soak: one lost probe under load is not an outage. */
export const SOAK_FAILURE_THRESHOLD = 3;

/**
 * Health checks during the soak: the load balancer's view of every instance and, for local
 * targets, an HTTP probe through the load balancer. The soak fails after
 * SOAK_FAILURE_THRESHOLD failed checks in a row, or at once when the environment stops serving
 * the image; it passes when the soak time is over and the last check passed.
 */
async function soak(
  opts: PipelineRunOptions,
  stage: PipelineStage,
  image: StoredImage,
  envOpts: { config: string },
): Promise<string | undefined> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const env = await loadEnvironment(envOpts.config, image.manifest.name, image.manifest.healthcheck.path, stage.env);
  const provider = (opts.providers ?? defaultProviders)(env, opts.home);
  const deadline = performance.now() + stage.soakSeconds * 1000;
  let failures = 0;
  for (;;) {
    const live = await provider.observe();
    const serving = live.releases.find((r) => r.serving);
    if (!serving || serving.image.digest !== image.digest)
      return `${stage.env} no longer serves ${image.ref} (now: ${serving?.image.ref ?? "nothing"})`;
    let problem: string | undefined;
    const sick = serving.instances.filter((i) => !i.healthy);
    if (sick.length > 0 || serving.instances.length === 0)
      problem = `${sick.length || "no"} instance(s) of ${serving.id} unhealthy: ${sick.map((i) => i.id).join(", ")}`;
    else if (env.target === "local") {
      const url = `${await provider.endpoint()}${env.health.path}`.replace(/([^:]\/)\/+/g, "$1");
      const status = await probeHttp(url, 3000);
      if (status === undefined || status >= 400) problem = `health check ${url} answered ${status ?? "nothing"}`;
    }
    failures = problem ? failures + 1 : 0;
    if (problem && failures >= SOAK_FAILURE_THRESHOLD) return `${problem} (${failures} checks in a row during the soak)`;
    if (!problem && performance.now() >= deadline) return undefined;
    await sleep(Math.min(stage.checkIntervalSeconds * 1000, Math.max(problem ? 1000 : 0, deadline - performance.now())));
  }
}

/** The newest pipeline run logs of an app, newest first. */
export async function pipelineRuns(home: KilnHome, app: string, limit = 10): Promise<PipelineReport[]> {
  const dir = pipelinesDir(home, app);
  const files = (await readdir(dir).catch(() => [] as string[]))
    .filter((f) => f.endsWith(".json"))
    .sort()
    .reverse()
    .slice(0, limit);
  const out: PipelineReport[] = [];
  for (const f of files) {
    try {
      out.push(JSON.parse(await readFile(path.join(dir, f), "utf8")) as PipelineReport);
    } catch {
      // a log being written right now: skip it
    }
  }
  return out;
}
