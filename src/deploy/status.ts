/**
 * What `kiln status` concludes from an observed LiveState (pure, both targets): is the serving
 * release whole and healthy (live), short of instances or with unhealthy ones (degraded), is
 * nothing serving although releases exist, or is there nothing at all (never deployed, destroyed).
 */
import type { InstanceState, LiveState, ReleaseState } from "./types.js";

/** `kiln status` exits with this when the environment is degraded or not serving: distinct from every error's exit code. */
export const DEGRADED_EXIT_CODE = 8;

export type EnvironmentState = "live" | "degraded" | "not-serving" | "not-deployed" | "destroyed";

export interface ReleaseHealth {
  readonly id: string;
  readonly image: ReleaseState["image"];
  readonly serving: boolean;
  readonly desired: number;
  /** `standby`: a release that does not serve (left by an interrupted promote, or a rollback target being replaced). */
  readonly state: "live" | "degraded" | "standby";
  readonly instances: readonly InstanceState[];
  /** What is wrong with it, in words (empty when nothing is). */
  readonly problems: readonly string[];
}

export interface EnvironmentHealth {
  readonly state: EnvironmentState;
  readonly releases: readonly ReleaseHealth[];
  readonly problems: readonly string[];
}

function judgeRelease(release: ReleaseState): ReleaseHealth {
  const problems: string[] = [];
  const running = release.instances.length;
  if (running < release.desired)
    problems.push(`${running} of ${release.desired} instances running (${release.desired - running} stopped or terminated outside kiln?)`);
  const unhealthy = release.instances.filter((i) => !i.healthy);
  if (unhealthy.length > 0)
    problems.push(`${unhealthy.length} of ${running} instances unhealthy: ${unhealthy.map((i) => i.id).join(", ")}`);
  const state = !release.serving ? "standby" : problems.length > 0 ? "degraded" : "live";
  return {
    id: release.id,
    image: release.image,
    serving: release.serving,
    desired: release.desired,
    state,
    instances: release.instances,
    problems,
  };
}

export function judgeEnvironment(live: LiveState): EnvironmentHealth {
  const releases = live.releases.map(judgeRelease);
  const serving = releases.filter((r) => r.serving);
  if (serving.length > 0) {
    const problems = serving.flatMap((r) => r.problems.map((p) => `${r.id}: ${p}`));
    if (!live.infrastructure) problems.push("the load balancer is missing or incomplete (kiln promote recreates it)");
    return { state: problems.length > 0 ? "degraded" : "live", releases, problems };
  }
  if (releases.length > 0) return { state: "not-serving", releases, problems: ["no release receives traffic"] };
  return { state: live.history.at(-1)?.result === "destroyed" ? "destroyed" : "not-deployed", releases, problems: [] };
}

/** The exit code of `kiln status` for a state: 0 when it serves as asked or nothing is meant to run. */
export function statusExitCode(state: EnvironmentState): number {
  return state === "degraded" || state === "not-serving" ? DEGRADED_EXIT_CODE : 0;
}
