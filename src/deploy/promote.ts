/**
 * kiln promote / rollback / scale / destroy / status / history: load the environment, lock it,
 * observe what exists, plan (pure), print or execute the plan. Shared by every target.
 */
import os from "node:os";
import { InputError } from "../errors.js";
import type { KilnHome } from "../home.js";
import { ImageStore } from "../image/store.js";
import type { Progress } from "../progress.js";
import { LocalProvider } from "../providers/local/provider.js";
import { AwsProvider } from "../providers/aws/provider.js";
import { SingleInstanceProvider } from "../providers/aws/single-instance.js";
import { createAwsClients } from "../aws/clients.js";
import { loadEnvironment, type Environment } from "../config/environments.js";
import { executePlan } from "./execute.js";
import {
  findRollbackTarget,
  lockHoldSeconds,
  planBlueGreen,
  planDestroy,
  planScale,
  previousRelease,
  type CanarySettings,
} from "./plan.js";
import { judgeEnvironment, type EnvironmentHealth } from "./status.js";
import type { DeployPlan, DeployProvider, DeployStep, LiveState } from "./types.js";

export type ProviderFactory = (env: Environment, home: KilnHome) => DeployProvider;

export const defaultProviders: ProviderFactory = (env, home) => {
  if (env.target === "local") return new LocalProvider(env, home);
  // Credentials from the standard chain; AWS_ENDPOINT_URL (an emulator) is read by the SDK.
  const clients = createAwsClients({ region: env.region });
  return env.mode === "single-instance" ? new SingleInstanceProvider(env, clients, home) : new AwsProvider(env, clients, home);
};

export interface EnvCommandOptions {
  readonly home: KilnHome;
  readonly config: string;
  readonly envName: string;
  readonly progress: Progress;
  readonly providers?: ProviderFactory;
  readonly dryRun?: boolean;
  /** A kiln.yml text to plan with instead of the file (kiln config --dry-run). */
  readonly edited?: string;
  /** Test hook: runs before each step (the interruption tests kill kiln there). */
  readonly beforeStep?: (step: DeployStep, index: number) => Promise<void>;
  /** Aborted on Ctrl-C/SIGTERM (reason: the signal's name): the promote stops at a safe point (interrupt.ts). */
  readonly signal?: AbortSignal;
}

export interface PromoteResult {
  readonly plan: DeployPlan;
  readonly executed: boolean;
  readonly endpoint: string | undefined;
  /** destroy: what it removed (releases with their image and instance count, the shared resources). */
  readonly removed?: DestroyedResources;
}

export interface DestroyedResources {
  readonly releases: readonly { readonly id: string; readonly ref: string; readonly instances: number }[];
  readonly shared?: string;
  /** The environment's log group: deleted, or kept with its logs (--keep-logs). */
  readonly logGroup?: { readonly name: string; readonly keep: boolean };
}

async function environmentFor(
  opts: EnvCommandOptions,
  app: string,
  healthPath: string,
): Promise<{ env: Environment; provider: DeployProvider }> {
  const env = await loadEnvironment(opts.config, app, healthPath, opts.envName, opts.edited);
  return { env, provider: (opts.providers ?? defaultProviders)(env, opts.home) };
}

/** Refuses a digest that has not been live in the environments this one comes after. */
async function checkGate(opts: EnvCommandOptions, env: Environment, digest: string, force: boolean): Promise<void> {
  for (const before of env.after) {
    const { provider } = await environmentFor({ ...opts, envName: before }, env.app, env.health.path);
    const live = await provider.observe();
    const ok = live.history.some((h) => h.image.digest === digest && (h.result === "live" || h.result === "replaced"));
    if (ok) continue;
    if (force) {
      opts.progress.info(`gate overridden with --force: ${digest.slice(0, 19)} has not been live in ${before}`);
      continue;
    }
    throw new InputError(`${env.name} comes after ${before}, and ${digest.slice(0, 19)} has not been healthy there`, {
      hint: `promote it to ${before} first (kiln promote REF --env ${before}), or pass --force`,
    });
  }
}

async function runPlan(opts: EnvCommandOptions, provider: DeployProvider, plan: DeployPlan): Promise<PromoteResult> {
  if (opts.dryRun) return { plan, executed: false, endpoint: await provider.endpoint() };
  await executePlan(plan, provider, opts.progress, {
    ...(opts.beforeStep ? { beforeStep: opts.beforeStep } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { plan, executed: true, endpoint: await provider.endpoint() };
}

async function withLock<T>(provider: DeployProvider, progress: Progress, work: () => Promise<T>, holdSeconds?: number): Promise<T> {
  const release = await provider.lock(`${os.userInfo().username}@${os.hostname()}`, holdSeconds);
  let result: T;
  try {
    result = await work();
  } catch (error) {
    // The error that stopped the work is the one to report; a failed unlock only gets a line.
    await release().catch((e: unknown) => progress.info(`could not release the lock of the environment: ${(e as Error).message}`));
    throw error;
  }
  await release();
  return result;
}

export async function promote(
  opts: EnvCommandOptions & { ref: string; force?: boolean; canary?: CanarySettings; restart?: boolean },
): Promise<PromoteResult> {
  const image = await new ImageStore(opts.home).resolve(opts.ref);
  const { env, provider } = await environmentFor(opts, image.manifest.name, image.manifest.healthcheck.path);
  if (opts.canary && !(provider.splitTraffic && provider.canaryCheck)) {
    throw new InputError(`environment ${env.name} cannot split traffic between two releases, so --canary is not possible there`, {
      hint: "promote without --canary, or use a load-balanced environment",
    });
  }
  await checkGate(opts, env, image.digest, Boolean(opts.force));
  await provider.validate?.();
  const run = async () => {
    const live = await provider.observe();
    const ref = { ref: image.ref, digest: image.digest };
    const plan = planBlueGreen(env, ref, image.manifest.version, live, new Date(), opts.canary, { restart: Boolean(opts.restart) });
    return runPlan(opts, provider, plan);
  };
  return opts.dryRun ? run() : withLock(provider, opts.progress, run, lockHoldSeconds(env, opts.canary));
}

/** Rollback needs something running: after destroy (or before any promote) it says how to start again. */
function refuseRollbackOfNothing(envName: string, live: LiveState): void {
  if (live.releases.length > 0) return;
  const last = live.history.at(-1);
  const ref = [...live.history].reverse().find((h) => h.result === "live" || h.result === "destroyed")?.image.ref;
  const again = `kiln promote ${ref ?? "NAME:VERSION"} --env ${envName}`;
  if (last?.result === "destroyed")
    throw new InputError(`${envName} was destroyed (${last.at}): nothing runs there, so there is nothing to roll back`, {
      hint: `promote an image to create it again: ${again}`,
    });
  throw new InputError(`nothing runs in ${envName}, so there is nothing to roll back`, {
    hint: `promote an image first: ${again}`,
  });
}

/** Back to the previous release, or with `to` to any release history kept (release id, version, name:version, digest). */
export async function rollback(opts: EnvCommandOptions & { app: string; to?: string }): Promise<PromoteResult> {
  const { provider } = await environmentFor(opts, opts.app, "/");
  const live = await provider.observe();
  refuseRollbackOfNothing(opts.envName, live);
  if (opts.to !== undefined) return promote({ ...opts, ref: findRollbackTarget(live, opts.to, opts.envName).digest, force: true });
  const previous = previousRelease(live);
  if (!previous)
    throw new InputError(`${opts.app} has no earlier release in ${opts.envName} to roll back to`, {
      hint: "kiln history --env shows the releases",
    });
  return promote({ ...opts, ref: previous.digest, force: true });
}

/** New instances for the live release: same image, same configuration, blue/green. */
export async function restartEnv(opts: EnvCommandOptions & { app: string }): Promise<PromoteResult> {
  const { provider } = await environmentFor(opts, opts.app, "/");
  const serving = (await provider.observe()).releases.find((r) => r.serving);
  if (!serving)
    throw new InputError(`nothing serves in ${opts.envName}, so there is nothing to restart`, {
      hint: `kiln promote REF --env ${opts.envName} starts a release`,
    });
  return promote({ ...opts, ref: serving.image.digest, force: true, restart: true });
}

/**
 * Releases the environment's live image again after its configuration changed (kiln config
 * set/unset): the same plan as a promote of that image; `undefined` when nothing serves yet.
 */
export async function releaseLiveImage(opts: EnvCommandOptions & { app: string }): Promise<PromoteResult | undefined> {
  const { provider } = await environmentFor(opts, opts.app, "/");
  const serving = (await provider.observe()).releases.find((r) => r.serving);
  return serving ? promote({ ...opts, ref: serving.image.digest, force: true }) : undefined;
}

export async function scaleEnv(opts: EnvCommandOptions & { app: string; instances: number }): Promise<PromoteResult> {
  const { env, provider } = await environmentFor(opts, opts.app, "/");
  return withLock(
    provider,
    opts.progress,
    async () => runPlan(opts, provider, planScale(env, await provider.observe(), opts.instances)),
    lockHoldSeconds(env),
  );
}

export async function destroyEnv(opts: EnvCommandOptions & { app: string; keepLogs?: boolean }): Promise<PromoteResult> {
  const { env, provider } = await environmentFor(opts, opts.app, "/");
  // kiln.yml says whether the environment may go; refused before anything is touched.
  if (env.target === "aws" && env.deletionProtection)
    throw new InputError(`environment ${env.name} has deletion protection on: kiln destroy refuses to delete it`, {
      hint:
        `set deletionProtection: false under environments.${env.name} in kiln.yml, then run kiln destroy again ` +
        "(it turns the load balancer's deletion protection off before deleting it)",
    });
  return withLock(provider, opts.progress, async () => {
    const live = await provider.observe();
    const plan = planDestroy(env, live, new Date(), { keepLogs: opts.keepLogs === true });
    if (opts.dryRun) return { plan, executed: false, endpoint: await provider.endpoint() };
    await executePlan(plan, provider, opts.progress);
    const shared = plan.steps.find((s) => s.kind === "delete-infrastructure");
    const removed: DestroyedResources = {
      releases: live.releases.map((r) => ({ id: r.id, ref: r.image.ref, instances: r.instances.length })),
      ...(shared ? { shared: shared.resources } : {}),
      ...(shared?.logGroup ? { logGroup: shared.logGroup } : {}),
    };
    // Nothing serves any more: no URL.
    return { plan, executed: true, endpoint: undefined, removed };
  });
}

export interface EnvStatus {
  readonly environment: string;
  readonly target: string;
  readonly endpoint: string | undefined;
  /** live, degraded, not-serving, not-deployed or destroyed (status.ts). */
  readonly state: EnvironmentHealth["state"];
  readonly problems: EnvironmentHealth["problems"];
  readonly releases: EnvironmentHealth["releases"];
  readonly live: LiveState;
}

export async function envStatus(opts: EnvCommandOptions & { app: string }): Promise<EnvStatus> {
  const { env, provider } = await environmentFor(opts, opts.app, "/");
  const live = await provider.observe();
  const health = judgeEnvironment(live);
  const endpoint = health.state === "destroyed" || health.state === "not-deployed" ? undefined : await provider.endpoint();
  return { environment: env.name, target: env.target, endpoint, ...health, live };
}
