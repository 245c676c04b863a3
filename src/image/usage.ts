/**
 * Which images the local environments need: the releases they run, and the earlier releases
 * their history keeps as rollback targets (kiln rollback and scale start them from the store).
 * Read from the environments' state files only; AWS environments keep their state in AWS and
 * are not looked at here (kiln amis --region lists what they run).
 */
import { readdir } from "node:fs/promises";
import path from "node:path";
import type { KilnHome } from "../home.js";
import { type LocalEnvState, readState } from "../providers/local/state.js";
import { KilnError } from "../errors.js";

/**
 * How many earlier releases of each environment stay rollback targets, newest first: the same
 * number the AWS target keeps launch templates for by default (keepReleases).
 */
export const ROLLBACK_RELEASES_KEPT = 3;

export interface ImageUse {
  readonly digest: string;
  readonly app: string;
  readonly env: string;
  readonly release: string;
  /** live: receives traffic; running: has instances but no traffic (a green or canary); rollback: a kept earlier release. */
  readonly role: "live" | "running" | "rollback";
}

/** The uses in one environment's state: its releases, then up to ROLLBACK_RELEASES_KEPT earlier healthy ones. */
export function usesInState(app: string, env: string, state: LocalEnvState): ImageUse[] {
  const named = <T extends { image?: { digest?: unknown } }>(list: readonly T[] | undefined) =>
    (list ?? []).filter((x) => typeof x.image?.digest === "string");
  const uses: ImageUse[] = named(state.releases).map((r) => ({
    digest: r.image.digest,
    app,
    env,
    release: r.id,
    role: r.serving ? "live" : "running",
  }));
  const seen = new Set(uses.map((u) => u.digest));
  // Entries that went live are what rollback returns to (plan.ts previousRelease reads the same).
  const lived = named(state.history).filter((h) => h.result === "live" || h.result === "replaced");
  let kept = 0;
  for (let i = lived.length - 1; i >= 0 && kept < ROLLBACK_RELEASES_KEPT; i--) {
    const entry = lived[i]!;
    if (seen.has(entry.image.digest)) continue;
    seen.add(entry.image.digest);
    uses.push({ digest: entry.image.digest, app, env, release: entry.release, role: "rollback" });
    kept++;
  }
  return uses;
}

/** Every use of a stored image by a local environment under KILN_HOME/envs/<app>/<env>/state.json. */
export async function readImageUses(home: KilnHome): Promise<ImageUse[]> {
  const root = path.join(home.root, "envs");
  const uses: ImageUse[] = [];
  for (const app of (await readdir(root).catch(() => [])).sort()) {
    for (const env of (await readdir(path.join(root, app)).catch(() => [])).sort()) {
      // A state file that cannot be read could name images in use: stop rather than guess.
      const state = await readState(path.join(root, app, env)).catch((error: Error) => {
        throw new KilnError(`cannot read the state of environment ${app}/${env}: ${error.message}`, {
          hint: `fix or remove ${path.join(root, app, env, "state.json")}; until then kiln cannot tell which images it needs`,
          cause: error,
        });
      });
      uses.push(...usesInState(app, env, state));
    }
  }
  return uses;
}

/** "live in app/dev (release r-3), rollback target of app/test (release r-1)". */
export function describeUses(uses: readonly ImageUse[]): string {
  return uses
    .map((u) => {
      const where = `${u.app}/${u.env} (release ${u.release})`;
      if (u.role === "live") return `live in ${where}`;
      if (u.role === "running") return `running in ${where}`;
      return `the rollback target of ${where}`;
    })
    .join(", ");
}

/** Short column text for kiln images: "dev, test (rollback)". */
export function whereColumn(uses: readonly ImageUse[]): string {
  return uses.map((u) => `${u.app}/${u.env}${u.role === "live" ? "" : ` (${u.role})`}`).join(", ");
}
