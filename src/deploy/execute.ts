/** Runs a DeployPlan: one provider call per step, each a timed step on stderr. */
import { KilnError, UnhealthyError } from "../errors.js";
import type { Progress } from "../progress.js";
import { onlyWaits, PromoteInterrupted, stopSignalOf } from "./interrupt.js";
import { describeStep } from "./plan.js";
import type { DeployPlan, DeployProvider, DeployStep } from "./types.js";

/** Splits traffic, then watches the canary for its whole window; any failed check ends it. */
async function runCanary(provider: DeployProvider, step: Extract<DeployStep, { kind: "canary" }>): Promise<void> {
  if (!provider.splitTraffic || !provider.canaryCheck)
    throw new KilnError("this environment cannot split traffic; promote without --canary");
  await provider.splitTraffic(step.release, step.from, step.percent);
  const started = Date.now();
  const every = Math.min(5000, Math.max(500, (step.seconds * 1000) / 10));
  for (;;) {
    const result = await provider.canaryCheck(step.release);
    if (!result.healthy) {
      const tail = await provider.consoleTail(step.release).catch(() => "");
      throw new UnhealthyError(
        `canary ${step.release} failed after ${Math.round((Date.now() - started) / 1000)}s: ${result.detail}${tail ? `\n--- console of a failing instance ---\n${tail}` : ""}`,
        {
          hint: `all traffic went back to ${step.from.join(", ")} and the new release was removed`,
        },
      );
    }
    if (Date.now() - started >= step.seconds * 1000) return;
    await new Promise((r) => setTimeout(r, Math.min(every, Math.max(0, step.seconds * 1000 - (Date.now() - started)))));
  }
}

async function runStep(provider: DeployProvider, step: DeployStep): Promise<void> {
  switch (step.kind) {
    case "ensure-infrastructure":
      return provider.ensureInfrastructure();
    case "launch":
      return provider.launch(step.release, step.image, step.instances, step.zones);
    case "attach":
      if (!provider.attach) throw new KilnError("this environment's load balancer cannot attach a release before it serves");
      return provider.attach(step.release, step.from);
    case "wait-healthy": {
      const result = await provider.waitHealthy(step.release, step.timeoutSeconds);
      if (!result.healthy) {
        const tail = await provider.consoleTail(step.release).catch(() => "");
        throw new UnhealthyError(
          `${step.release} did not become healthy: ${result.detail}${tail ? `\n--- console of a failing instance ---\n${tail}` : ""}`,
          {
            hint: "traffic stayed on the current release; the new release was removed. Check the app's health check path and port",
          },
        );
      }
      return;
    }
    case "canary":
      return runCanary(provider, step);
    case "switch-traffic":
      return provider.switchTraffic(step.to, step.from);
    case "drain":
      return provider.drain(step.release, step.delaySeconds);
    case "delete-release":
      return provider.deleteRelease(step.release, step.keepForRollback);
    case "scale":
      return provider.scale(step.release, step.instances);
    case "record":
      return provider.record(step.entry);
    case "delete-infrastructure":
      return provider.deleteInfrastructure({ keepLogs: step.logGroup?.keep === true });
  }
}

/** Resolves when `signal` aborts (never without one); the listener goes once `settled` does. */
function aborted(signal: AbortSignal | undefined, settled: Promise<unknown>): Promise<"aborted"> {
  return new Promise((resolve) => {
    if (!signal) return;
    const onAbort = () => resolve("aborted");
    signal.addEventListener("abort", onAbort, { once: true });
    settled.finally(() => signal.removeEventListener("abort", onAbort)).catch(() => undefined);
  });
}

/**
 * A step, unless `signal` aborts first: a step that only waits is left at once (it changes
 * nothing; its polling is abandoned and the CLI exits), any other finishes, so the environment
 * is between two steps when the promote stops. A canary left early gives its traffic back first.
 */
async function runInterruptible(
  plan: DeployPlan,
  provider: DeployProvider,
  step: DeployStep,
  index: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const work = runStep(provider, step);
  if (!onlyWaits(step)) return work;
  const outcome = await Promise.race([work, aborted(signal, work)]);
  if (outcome !== "aborted") return;
  work.catch(() => undefined);
  const giveBack = plan.onFailure.find((s) => s.kind === "switch-traffic");
  if (step.kind === "canary" && giveBack) await runStep(provider, giveBack);
  throw new PromoteInterrupted(plan, index, stopSignalOf(signal!));
}

/**
 * Executes the plan. When a step fails before traffic moved, the plan's onFailure steps remove
 * the new release so nothing is left behind; the original error is rethrown. When `signal`
 * aborts (Ctrl-C), it stops at the next safe point and undoes nothing: PromoteInterrupted says
 * what is left, and running the same promote again converges.
 */
export async function executePlan(
  plan: DeployPlan,
  provider: DeployProvider,
  progress: Progress,
  hooks: { beforeStep?: (step: DeployStep, index: number) => Promise<void>; signal?: AbortSignal } = {},
): Promise<void> {
  let switched = false;
  for (const [index, step] of plan.steps.entries()) {
    if (hooks.signal?.aborted) throw new PromoteInterrupted(plan, index, stopSignalOf(hooks.signal));
    await hooks.beforeStep?.(step, index);
    try {
      await progress.step(describeStep(step), () => runInterruptible(plan, provider, step, index, hooks.signal));
      if (step.kind === "switch-traffic") switched = true;
    } catch (error) {
      if (error instanceof PromoteInterrupted) throw error;
      if (!switched) {
        for (const undo of plan.onFailure) {
          await progress
            .step(`undo: ${describeStep(undo)}`, () => runStep(provider, undo))
            .catch((e: unknown) => {
              progress.info(`  could not undo (${(e as Error).message}); re-run kiln promote or kiln destroy to clean up`);
            });
        }
      }
      throw error instanceof KilnError
        ? error
        : new KilnError(`${describeStep(step)} failed: ${(error as Error).message}`, { cause: error });
    }
  }
}
