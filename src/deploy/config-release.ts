/**
 * kiln config set/unset: edit environments.<E>.env in kiln.yml, then release the environment's
 * live image with the new configuration (the same plan a promote of that image makes).
 * With dryRun nothing is written: the plan is made with the edited text.
 */
import { readFile } from "node:fs/promises";
import { configFile, loadEnvironment } from "../config/environments.js";
import { editEnvironmentEnv } from "../config/env-edit.js";
import { InputError } from "../errors.js";
import { writeFileAtomic } from "../fsutil.js";
import { type EnvCommandOptions, type PromoteResult, releaseLiveImage } from "./promote.js";

export interface ConfigEditResult {
  readonly file: string;
  /** One phrase per variable: "NAME added", "NAME changed", "NAME removed". */
  readonly changes: readonly string[];
  readonly written: boolean;
  /** The release of the live image; absent with --no-release, without changes, or when nothing serves yet. */
  readonly release?: PromoteResult;
  readonly nothingServes?: boolean;
}

export async function editConfig(
  opts: EnvCommandOptions & { app: string; set: Readonly<Record<string, string>>; unset: readonly string[]; release: boolean },
): Promise<ConfigEditResult> {
  const file = configFile(opts.config);
  const text = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "ENOENT") throw error;
    throw new InputError(`there is no ${file} to edit`, { hint: "run kiln config in the app's directory, or pass --config PATH/kiln.yml" });
  });
  const edited = editEnvironmentEnv(text, file, opts.envName, opts.set, opts.unset);
  const changed = edited.text !== text;
  if (changed && !opts.dryRun) {
    await writeFileAtomic(file, edited.text);
    // Before the release's steps, so a long release shows what started it.
    if (opts.release) opts.progress.info(`${file}: environments.${opts.envName}.env: ${edited.changes.join(", ")}`);
  }
  const base = { file, changes: edited.changes, written: changed && !opts.dryRun };
  if (!opts.release || !changed) return base;
  const release = await releaseLiveImage({ ...opts, ...(opts.dryRun ? { edited: edited.text } : {}) });
  return release ? { ...base, release } : { ...base, nothingServes: true };
}

/** environments.<E>.env as kiln.yml has it (kiln config --env E). */
export async function listConfig(opts: Pick<EnvCommandOptions, "config" | "envName"> & { app: string }): Promise<Record<string, string>> {
  return { ...(await loadEnvironment(opts.config, opts.app, "/", opts.envName)).env };
}
