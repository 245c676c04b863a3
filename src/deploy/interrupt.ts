/**
 * Ctrl-C (SIGINT) or SIGTERM during a promote: the executor stops at a safe point (between
 * steps, or out of a step that only waits), nothing is undone, and the error says where it
 * stopped and what is left, computed from the plan. Re-running the same promote converges: the
 * planner sees what exists and plans only what is missing.
 */
import { KilnError } from "../errors.js";
import { describeStep } from "./plan.js";
import type { DeployPlan, DeployStep } from "./types.js";

export type StopSignal = "SIGINT" | "SIGTERM";

/** The signal an abort stands for (its reason, set by catchStopSignals); SIGINT when it says nothing else. */
export function stopSignalOf(signal: AbortSignal): StopSignal {
  return signal.reason === "SIGTERM" ? "SIGTERM" : "SIGINT";
}

/** Steps that only wait and change nothing: leaving them early is safe. */
export function onlyWaits(step: DeployStep): boolean {
  return step.kind === "wait-healthy" || step.kind === "drain" || step.kind === "canary";
}

/** What exists after the steps before `index` ran (and the one at `index` did not finish). */
export function describeLeft(plan: DeployPlan, index: number): string[] {
  const done = plan.steps.slice(0, index);
  const left: string[] = [];
  const switchStep = plan.steps.find((s): s is Extract<DeployStep, { kind: "switch-traffic" }> => s.kind === "switch-traffic");
  const launch = plan.steps.find((s): s is Extract<DeployStep, { kind: "launch" }> => s.kind === "launch");
  const green = switchStep?.to ?? launch?.release;
  // Without a launch step the new release was launched by an earlier, interrupted run.
  const launched = launch ? done.includes(launch) : green !== undefined;
  const switched = switchStep !== undefined && done.includes(switchStep);
  if (green && launched && !switched) {
    const what = launch ? ` (${launch.instances} × ${launch.image.ref})` : "";
    left.push(`still running: release ${green}${what}, which receives no traffic`);
  }
  if (plan.steps[index]?.kind === "canary")
    left.push(`the canary's share of requests went back to ${switchStep?.from.join(", ") || "the current release"}`);
  if (switchStep && !switched)
    left.push(
      switchStep.from.length ? `traffic stays on ${switchStep.from.join(", ")}` : "nothing serves yet: no release received traffic",
    );
  if (switched) {
    left.push(`traffic is on ${switchStep.to}`);
    const old = plan.steps.filter((s) => s.kind === "delete-release" && !done.includes(s)).map((s) => (s as { release: string }).release);
    if (old.length) left.push(`still running: ${old.join(", ")} (replaced, not deleted yet)`);
  }
  if (plan.steps.some((s, i) => i >= index && s.kind === "record")) left.push("the history does not show this release yet");
  return left;
}

/** The image a plan releases, for the re-run command (from its launch or its `live` record). */
function releasedRef(plan: DeployPlan): string | undefined {
  for (const step of plan.steps) {
    if (step.kind === "launch") return step.image.ref;
    if (step.kind === "record" && step.entry.result === "live") return step.entry.image.ref;
  }
  return undefined;
}

/** A promote stopped by a signal; exit code 130 for SIGINT, 143 for SIGTERM, like a shell. */
export class PromoteInterrupted extends KilnError {
  override readonly exitCode: number;
  readonly left: readonly string[];

  constructor(
    readonly plan: DeployPlan,
    readonly index: number,
    readonly signal: StopSignal,
  ) {
    const step = plan.steps[index];
    const left = describeLeft(plan, index);
    const ref = releasedRef(plan) ?? "REF";
    super(
      `promote of ${ref} to ${plan.environment} interrupted at step ${index + 1} of ${plan.steps.length}` +
        `${step ? ` (${describeStep(step)})` : ""} by ${signal}; nothing was undone${left.map((l) => `\n  - ${l}`).join("")}` +
        "\n  - the environment's lock was released",
      {
        hint: `run the same command again (kiln promote ${ref} --env ${plan.environment}): it converges, planning only what is still missing`,
      },
    );
    this.exitCode = signal === "SIGINT" ? 130 : 143;
    this.left = left;
  }

  toJSON(): Record<string, unknown> {
    const step = this.plan.steps[this.index];
    return {
      interrupted: true,
      signal: this.signal,
      environment: this.plan.environment,
      step: step ? { index: this.index, kind: step.kind, description: describeStep(step) } : undefined,
      left: this.left,
      hint: this.hint,
    };
  }
}

/**
 * Catches SIGINT and SIGTERM for the length of a promote: the first one aborts `signal` (the
 * executor stops at a safe point), a second quits at once; the lock left behind is then taken
 * over by the next kiln because its holder is gone. The abort's reason is the signal's name.
 */
export function catchStopSignals(notice: (message: string) => void): { readonly signal: AbortSignal; readonly dispose: () => void } {
  const controller = new AbortController();
  let received: StopSignal | undefined;
  const onSignal = (name: StopSignal) => {
    if (received) {
      notice(`\nkiln: ${name} again: quitting now, without waiting for a safe point (re-run the promote to converge)`);
      process.exit(name === "SIGINT" ? 130 : 143);
    }
    received = name;
    notice(`\nkiln: ${name}: stopping the promote at the next safe point (press Ctrl-C again to quit at once)`);
    controller.abort(name);
  };
  const onInt = () => onSignal("SIGINT");
  const onTerm = () => onSignal("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
    },
  };
}
